"""What the mirror holds and how far behind the chain it is (for `fundflow status` and the API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import ledger.mirror.models  # noqa: F401  (registers the tables)
from ledger.chain.client import ChainClient
from ledger.errors import ChainError

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
    t = SQLModel.metadata.tables
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        if not inspector.has_table("checkpoint"):
            return IndexerStatus(initialized=False)
        cp = conn.execute(sa.select(t["checkpoint"]).where(t["checkpoint"].c.id == 1)).first()
        if cp is None:
            return IndexerStatus(initialized=False)
        counts = {
            name: int(n)
            for name, n in conn.execute(
                sa.select(t["events"].c.name, sa.func.count())
                .group_by(t["events"].c.name)
                .order_by(t["events"].c.name)
            )
        }

        def count(name: str) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t[name])).scalar_one())

        blocks, loans, lots = count("blocks"), count("loans"), count("lots")
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
        blocks=blocks,
        loans=loans,
        lots=lots,
        event_counts=counts,
    )
