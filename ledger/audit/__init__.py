"""Audit: verification of a mirrored trail against the chain, offline proof bundles, reports and exports, and
auditor attestations."""
