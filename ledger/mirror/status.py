"""What the mirror holds and how far behind the chain it is (for `fundflow status` and the API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from ledger.chain.client import ChainClient
from ledger.errors import ChainError
from ledger.mirror.read import Mirror

__all__ = ["IndexerStatus", "indexer_status"]


@dataclass(frozen=True)
class IndexerStatus:
    """`head` and `lag` are None when the node was not asked or could not be reached."""

    initialized: bool
    chain_id: int | None = None
    contract_address: str | None = None
    start_block: int | None = None
    indexed_block: int | None = None
    indexed_hash: str | None = None
    updated_at: datetime | None = None
    head: int | None = None
    lag: int | None = None
    node_error: str | None = None
    blocks: int = 0
    loans: int = 0
    lots: int = 0
    event_counts: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.event_counts.values())


def indexer_status(engine: Engine, client: ChainClient | None = None) -> IndexerStatus:
    """Read the checkpoint and counts; with `client`, also the node's head and the lag behind it."""
    with engine.connect() as conn:
        mirror = Mirror(conn)
        if not mirror.exists():
            return IndexerStatus(initialized=False)
        cp = mirror.checkpoint()
        if cp is None:
            return IndexerStatus(initialized=False)
        counts = mirror.counts()
    head: int | None = None
    lag: int | None = None
    node_error: str | None = None
    if client is not None:
        try:
            head = client.block_number()
            lag = max(0, head - cp.block_number)
        except ChainError as exc:
            node_error = exc.message
    return IndexerStatus(
        initialized=True,
        chain_id=cp.chain_id,
        contract_address=cp.contract_address,
        start_block=cp.start_block,
        indexed_block=cp.block_number,
        indexed_hash=cp.block_hash,
        updated_at=cp.updated_at,
        head=head,
        lag=lag,
        node_error=node_error,
        blocks=counts.blocks,
        loans=counts.loans,
        lots=counts.lots,
        event_counts=counts.event_counts,
    )
