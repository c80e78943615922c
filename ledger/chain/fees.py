"""Gas and fees: how much gas a transaction asks for and what it offers to pay per unit.

The rules it keeps:
- EIP-1559 fee fields where the chain has a base fee (twice the base fee plus the tip), a legacy gas price
  where it has none, and nothing to tip on a zero base fee (the free-gas chains common on consortium
  networks). The fields are cached for a couple of seconds: asking per transaction halved throughput.
- An estimated transaction gets the node's estimate plus a fifth plus 10,000 gas of margin; a transaction that
  would revert is refused at the estimate, with its decoded error, before anything is signed.
- No transaction asks for more than `TX_GAS_CAP` (EIP-7825) or the block gas limit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ledger.chain.reverts import ErrorDecoder, as_revert
from ledger.chain.rpc import JsonRpc, RpcError

__all__ = ["Fees", "TX_GAS_CAP", "estimate_gas", "max_tx_gas"]

TX_GAS_CAP = 2**24
"""EIP-7825 (Osaka): no transaction may ask for more gas than 2^24 = 16,777,216. Hardhat 2.29 enforces it;
anvil can; a chain without it still has its block gas limit, and the lower of the two applies."""

_DEFAULT_TIP = 1_000_000_000  # 1 gwei, when the node has no eth_maxPriorityFeePerGas


class Fees:
    """The fee fields for the next transaction on the chain behind `rpc`, cached for `cache_seconds`."""

    def __init__(self, rpc: JsonRpc, cache_seconds: float = 2.0) -> None:
        self._rpc = rpc
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, dict[str, int]] | None = None  # swapped whole: no lock needed

    def fields(self) -> dict[str, int]:
        """`maxFeePerGas`/`maxPriorityFeePerGas`, or `gasPrice` on a chain without a base fee."""
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        latest = self._rpc.call("eth_getBlockByNumber", ["latest", False])
        base_fee = latest.get("baseFeePerGas")
        fees: dict[str, int]
        if base_fee is None:
            fees = {"gasPrice": int(self._rpc.call("eth_gasPrice"), 16)}
        else:
            base = int(base_fee, 16)
            tip = 0
            if base > 0:  # a zero base fee means a free-gas chain: nothing to tip
                try:
                    tip = int(self._rpc.call("eth_maxPriorityFeePerGas"), 16)
                except RpcError:
                    tip = _DEFAULT_TIP
            fees = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
        self._cached = (now, fees)
        return fees


def estimate_gas(rpc: JsonRpc, tx: Mapping[str, Any], errors: ErrorDecoder | None = None) -> int:
    """The gas limit for `tx`: the node's estimate plus a margin. A revert raises its decoded error."""
    try:
        estimate = int(rpc.call("eth_estimateGas", [dict(tx)]), 16)
    except RpcError as exc:
        raise as_revert(exc, errors) from exc
    return estimate + estimate // 5 + 10_000


def max_tx_gas(latest_block: Mapping[str, Any]) -> int:
    """The most gas one transaction may ask for: the lower of the EIP-7825 cap and the block gas limit."""
    return min(TX_GAS_CAP, int(latest_block["gasLimit"], 16))
