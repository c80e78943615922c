"""Nonces: which nonce each sender's next transaction gets, handed out in this process.

The rules it keeps:
- A nonce is taken under the sender's lock, so concurrent threads sending from one account never get the same
  one; the first is read from the node's pending count, the rest are counted here (one round trip saved per
  transaction).
- A send whose fate is unknown (the node failed, or a signed transaction was never broadcast) is followed by
  `forget`, so the next one asks the node again instead of trusting the count.
- Nothing here talks to a node: the caller passes the function that reads the pending count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Nonces"]


class Nonces:
    """Next nonces per sender address, and one lock per sender to hold while signing with one."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, address: str) -> threading.Lock:
        """The sender's lock: hold it from `take` until the transaction is broadcast (or known lost)."""
        with self._guard:
            return self._locks.setdefault(address, threading.Lock())

    def take(self, address: str, pending: Callable[[str], int]) -> int:
        """The sender's next nonce (the caller holds `lock(address)`); `pending` reads the node's count."""
        if address not in self._next:
            self._next[address] = int(pending(address))
        nonce = self._next[address]
        self._next[address] = nonce + 1
        return nonce

    def forget(self, address: str | None = None) -> None:
        """Ask the node next time: for `address`, or for every sender (after a reorg or snapshot revert)."""
        if address is None:
            self._next.clear()
        else:
            self._next.pop(address, None)
