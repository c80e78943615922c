"""The composition root and the command line: builds settings -> chain client -> indexer, monitor and API
services once, for `fundflow up`, `serve` and `index`. The only package that imports both `ledger` and
`api`."""
