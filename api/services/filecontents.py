"""The off-chain content of post-loan file records (guarantees, releases, write-off reasons, recoveries):
canonical JSON kept in `file_contents` under its keccak256, the hash that goes on chain. Read back only if it
still hashes to that value. `file_record` puts a record whose content was kept on chain through the write
path, the one sequence every post-loan file write shares."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.guarantees import content_hash
from ledger.store.offchain import FileContent

__all__ = ["file_record", "keep", "read"]

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


def file_record(
    write: Write,
    body: Any,
    *,
    loan_id: str,
    kind: FileRecordKind,
    record_id: str,
    content_hash: str,
    path: str,
    answer: dict[str, Any],
) -> JSONResponse:
    """File a record of `kind` on the loan (its content already kept under `content_hash`) as the caller;
    `answer` is what the write answers with once mined, `body` what its idempotency key is checked against."""

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.file_record(
            write.caller.signer(),
            loan_id=loan_id,
            record_kind=int(kind),
            record_id=record_id,
            content_hash=content_hash,
        )
        return Outcome(tx, answer)

    return write.record(body, action, path=path)
