"""Fundflow ledger: config, chain client, compiler, deployer, SQL mirror, indexer and trail queries."""
