"""`python -m fundflow ...`: the `fundflow` program (the cluster starts its replicas this way)."""

from fundflow.cli.main import main

main()
