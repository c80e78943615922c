"""The database: engines (SQLite, PostgreSQL), Alembic migrations, the one-writer lock, and the off-chain
tables the API writes (tokens, idempotency, documents, loan metadata)."""
