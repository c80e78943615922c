"""Chain access: the JSON-RPC client (client.py, over transport, rpc, reverts, nonces, fees and journal),
signing and keys, the compiler and deployer, typed calls to the ledger contract, participant onboarding, and
the local node. The only part of ledger/ that talks to a node."""
