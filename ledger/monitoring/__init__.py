"""Post-loan monitoring: rules over mirrored facts, alerts and their lifecycle, the monitor that runs the
rules in each indexer batch, classification suggestions, and webhook delivery."""
