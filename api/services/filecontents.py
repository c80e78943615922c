"""The off-chain content of post-loan file records (guarantees, releases, write-off reasons, recoveries):
canonical JSON kept in `file_contents` under its keccak256, the hash that goes on chain. Read back only if it
still hashes to that value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api.deps import Caller
from ledger.protocol.canonical import canonical_json
from ledger.protocol.guarantees import content_hash
from ledger.store.offchain import FileContent

__all__ = ["keep", "read"]

contents_t: sa.Table = FileContent.__table__  # type: ignore[attr-defined]


def keep(session: Session, caller: Caller, document: dict[str, Any]) -> str:
    """Store a record's canonical JSON under its hash (the same content twice is one row); the hash."""
    digest = content_hash(canonical_json(document))
    exists = session.execute(sa.select(contents_t.c.hash).where(contents_t.c.hash == digest)).first()
    if exists is None:
        session.execute(
            sa.insert(contents_t).values(
                hash=digest,
                schema_name=document["schema"],
                content=document,
                created_by=caller.address,
                created_at=datetime.now(UTC),
            )
        )
        session.commit()
    return digest


def read(session: Session, digest: str) -> tuple[str, dict[str, Any] | None]:
    """('verified', content) if the stored content hashes to `digest`; else ('not stored' or 'altered',
    None)."""
    row = session.execute(sa.select(contents_t.c.content).where(contents_t.c.hash == digest)).first()
    if row is None:
        return "not stored", None
    if not isinstance(row.content, dict) or content_hash(canonical_json(row.content)) != digest:
        return "altered", None
    return "verified", row.content
