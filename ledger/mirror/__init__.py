"""The mirror: the chain's events in SQL. Models, the indexer, decoding, projections, and the read model that
every reader (API, dashboard, rules, verification) goes through."""
