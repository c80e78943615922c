"""Asset-preservation cases for the monitoring rules: each case's latest record (same `recordId`) whose
off-chain content still hashes to the on-chain `contentHash`; a case whose content is missing or altered is
left out (never asserted unchecked)."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.guarantees import content_hash
from ledger.protocol.preservation import PreservationCase

__all__ = ["CaseFact", "load_cases"]


@dataclass(frozen=True)
class CaseFact:
    record_id: str
    case: PreservationCase
    block_number: int


def load_cases(conn: sa.Connection, loan_id: str) -> tuple[CaseFact, ...]:
    inspector = sa.inspect(conn)
    if not inspector.has_table("file_records") or not inspector.has_table("file_contents"):
        return ()
    records = sa.table(
        "file_records",
        sa.column("loan_id"),
        sa.column("block_number"),
        sa.column("log_index"),
        sa.column("record_kind"),
        sa.column("record_id"),
        sa.column("content_hash"),
    )
    contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))
    latest: dict[str, tuple[str, int]] = {}
    for r in conn.execute(
        sa.select(records)
        .where(records.c.loan_id == loan_id, records.c.record_kind == int(FileRecordKind.PRESERVATION_CASE))
        .order_by(records.c.block_number, records.c.log_index)
    ):
        latest[r.record_id] = (r.content_hash, int(r.block_number))
    out = []
    for record_id, (digest, block) in latest.items():
        row = conn.execute(sa.select(contents.c.content).where(contents.c.hash == digest)).first()
        content = row.content if row is not None else None
        if not isinstance(content, dict) or content_hash(canonical_json(content)) != digest:
            continue
        try:
            case = PreservationCase.from_document(content)
        except ValueError:
            continue
        if case.loan_id != loan_id or case.record_id != record_id:
            continue
        out.append(CaseFact(record_id, case, block))
    return tuple(out)
