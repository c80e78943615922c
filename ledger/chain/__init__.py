"""Chain access: the JSON-RPC client, signing and keys, the compiler and deployer, typed calls to the ledger
contract, participant onboarding, and the local node. The only part of ledger/ that talks to a node."""
