"""Fundflow HTTP API and dashboard (FastAPI); reads the SQL mirror, writes through the chain client."""
