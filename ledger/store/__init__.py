"""The database: engines (SQLite, PostgreSQL) and migrating them, the one-writer lock, and the off-chain
tables the API writes (tokens, idempotency, documents, loan metadata)."""
