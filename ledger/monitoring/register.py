"""The collateral register for the monitoring rules and the access policy, read from the mirrored post-loan
file: each item's latest record whose content still hashes to its on-chain `contentHash`, the appraisers'
signed valuations (content checked the same way). Missing or altered content is left out, never asserted.
Which third parties are engaged is `Mirror.engagements` (record kinds alone: the chain's own account)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.collateral import Appraisal, CollateralItem
from ledger.protocol.guarantees import content_hash

__all__ = ["AppraisalFact", "ItemFact", "load_appraisals", "load_items"]

T = TypeVar("T")

_records = sa.table(
    "file_records",
    sa.column("loan_id"),
    sa.column("block_number"),
    sa.column("log_index"),
    sa.column("record_kind"),
    sa.column("record_id"),
    sa.column("content_hash"),
    sa.column("actor"),
)
_contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))


@dataclass(frozen=True)
class ItemFact:
    record_id: str
    item: CollateralItem
    block_number: int
    log_index: int
    changes: int  # records filed under this id (1 = registered, never changed)
    first_block: int  # the block it was registered in
    registered_at: int = 0  # that block's timestamp (set by the monitor, which reads block times)


@dataclass(frozen=True)
class AppraisalFact:
    appraisal: Appraisal
    block_number: int
    log_index: int
    actor: str


def _has_tables(conn: sa.Connection) -> bool:
    inspector = sa.inspect(conn)
    return inspector.has_table("file_records") and inspector.has_table("file_contents")


def _rows(conn: sa.Connection, loan_id: str, kind: FileRecordKind) -> list[Any]:
    return list(
        conn.execute(
            sa.select(_records)
            .where(_records.c.loan_id == loan_id, _records.c.record_kind == int(kind))
            .order_by(_records.c.block_number, _records.c.log_index)
        )
    )


def _checked(conn: sa.Connection, digest: str, parse: Callable[[dict[str, Any]], T]) -> T | None:
    row = conn.execute(sa.select(_contents.c.content).where(_contents.c.hash == digest)).first()
    content = row.content if row is not None else None
    if not isinstance(content, dict) or content_hash(canonical_json(content)) != digest:
        return None
    try:
        return parse(content)
    except ValueError:
        return None


def load_items(conn: sa.Connection, loan_id: str) -> tuple[ItemFact, ...]:
    """The loan's register: each item's latest record (chain order), if its content checks out."""
    if not _has_tables(conn):
        return ()
    latest: dict[str, Any] = {}
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    for r in _rows(conn, loan_id, FileRecordKind.COLLATERAL_ITEM):
        latest[r.record_id] = r
        count[r.record_id] = count.get(r.record_id, 0) + 1
        first.setdefault(r.record_id, int(r.block_number))
    out = []
    for record_id, r in latest.items():
        item = _checked(conn, r.content_hash, CollateralItem.from_document)
        if item is None or item.loan_id != loan_id or item.record_id != record_id:
            continue
        out.append(
            ItemFact(
                record_id, item, int(r.block_number), int(r.log_index), count[record_id], first[record_id]
            )
        )
    return tuple(out)


def load_appraisals(conn: sa.Connection, loan_id: str) -> tuple[AppraisalFact, ...]:
    """Valuations signed by engaged appraisers (the contract checked the engagement), content checked."""
    if not _has_tables(conn):
        return ()
    out = []
    for r in _rows(conn, loan_id, FileRecordKind.APPRAISAL):
        a = _checked(conn, r.content_hash, Appraisal.from_document)
        if a is None or a.loan_id != loan_id or a.item_id != r.record_id:
            continue
        out.append(AppraisalFact(a, int(r.block_number), int(r.log_index), str(r.actor)))
    return tuple(out)
