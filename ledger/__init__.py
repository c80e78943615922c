"""Fundflow's library: the protocol, chain access, the SQL mirror and its store, monitoring and audit, one
subpackage each (see docs/architecture.md). It imports nothing from `api` or `fundflow`."""
