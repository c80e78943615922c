"""The ledger's protocol as Python knows it, one place per fact: the contract's codes and limits (`codes`),
money (`money`), canonical JSON (`canonical`), event layouts and decoding (`events`), event arguments as JSON
(`eventjson`), the hash-chain rule (`hashchain`), purpose codes (`purposes`), loan terms and their hash
(`terms`). Pure: no node, no database."""
