"""The ledger's protocol as Python knows it: event layouts and decoding, the hash-chain rule, purpose
codes, loan terms. Pure: no node, no database."""
