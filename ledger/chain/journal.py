"""The send journal: the signed transactions of one logical write, recorded before each leaves the process.

Why: a write whose node fails mid-send may or may not have reached the chain. If every transaction is stored
(hash and raw bytes) before it is broadcast, a retry can look each one up and rebroadcast the same bytes if
the node lost it, so the write lands at most once and never as a second transaction.

How it travels - explicitly, never through global or context state. A journal is an argument:

    journal = SendJournal(recorded, on_signed=store)         # the API builds one per idempotent request
    ledger.journaled(journal).disburse(signer, ...)          # a bound view of the contract: its sends record
    client.send(account, to, data, journal=journal)          # ... by handing the journal to the client
    ledger.disburse(signer, ...)                             # no journal: nothing is recorded

`LedgerContract.journaled(journal)` returns a view of the same contract (same client, nonces and caches) whose
every send passes `journal=`; the plain contract never records. So whether a send is journaled can be read at
the call site, a send elsewhere on the same thread or client is never journaled by accident, and the client
never calls back into a caller it was not handed. (The journal used to sit in a ContextVar that the API set
around a write and the client read mid-send.)

The rules a journal keeps:
- `add` calls `on_signed` with every transaction signed so far *before* the newest one is broadcast; if
  `on_signed` raises, the transaction is not broadcast.
- A retry builds a journal with the `recorded` transactions: `ChainClient.send` takes them in order
  (`next_recorded`), keeps each one that is mined, pending or could be rebroadcast, and signs a new one only
  when a recorded one provably can never land (its nonce went to another transaction).
- One journal belongs to one logical write, run by one thread at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["SendJournal", "SignedTx"]


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction: its hash and the raw bytes (0x-hex) that can be broadcast again unchanged."""

    tx_hash: str
    raw: str


class SendJournal:
    """Signed transactions of one logical write, recorded before each is broadcast (see the module)."""

    def __init__(
        self,
        recorded: Sequence[SignedTx] = (),
        on_signed: Callable[[list[SignedTx]], None] | None = None,
    ) -> None:
        self.recorded = list(recorded)
        self.signed: list[SignedTx] = []
        self._on_signed = on_signed

    def next_recorded(self) -> SignedTx | None:
        """The recorded transaction the next send should resume, if the earlier attempt got that far."""
        i = len(self.signed)
        return self.recorded[i] if i < len(self.recorded) else None

    def keep(self, tx: SignedTx) -> None:
        """The recorded transaction stands (mined, pending or rebroadcast)."""
        self.signed.append(tx)

    def add(self, tx: SignedTx) -> None:
        """A newly signed transaction, about to be broadcast: stored first."""
        self.signed.append(tx)
        if self._on_signed is not None:
            self._on_signed(list(self.signed))
