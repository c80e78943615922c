"""Guarantees of a loan (担保): given and released by its lender, read by its lender, borrower and auditors.

Giving a guarantee stores its canonical JSON in `file_contents` (keyed by its keccak256, the guarantee's
record id) and sends `fileRecord(loan, GUARANTEE, id, hash)`; releasing sends `fileRecord(loan,
GUARANTEE_RELEASED, id, hash of the release)`. Listing reads the mirrored `RecordFiled` events and shows each
guarantee's content only if it still hashes to the on-chain hash, with the alerts the monitoring rules keep
(expiry before maturity, guarantor past due, above capacity, circles).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.services import filecontents
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Write
from ledger.errors import NotFoundError, ValidationError
from ledger.mirror.read import Mirror
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.guarantees import Guarantee, GuaranteeDetails, GuaranteeRelease

__all__ = ["give", "list_guarantees", "release"]


def give(session: Session, write: Write, loan: str, body: GuaranteeDetails) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.guarantee")
    guarantee = Guarantee(loan_id=loan_id, **body.model_dump())
    record_id = filecontents.keep(session, caller, guarantee.document())
    return filecontents.file_record(
        write, body, loan_id=loan_id, kind=FileRecordKind.GUARANTEE, record_id=record_id,
        content_hash=record_id, path=f"/v1/loans/{loan_id}/guarantees",
        answer={"loan_id": loan_id, "record_id": record_id},
    )  # fmt: skip


def release(session: Session, write: Write, loan: str, record_id: str, reason: str) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.guarantee")
    record_id = record_id.lower()
    given = {(r["record_kind"], r["record_id"]) for r in records(session, "file_records", loan_id)}
    if (FileRecordKind.GUARANTEE, record_id) not in given:
        raise NotFoundError(
            f"Loan {loan} has no guarantee {record_id}.", hint="GET /v1/loans/{loan}/guarantees lists them."
        )
    if (FileRecordKind.GUARANTEE_RELEASED, record_id) in given:
        raise ValidationError(f"Guarantee {record_id} is already released.")
    released = GuaranteeRelease(
        loan_id=loan_id, record_id=record_id, released_on=datetime.now(UTC).date(), reason=reason
    )
    digest = filecontents.keep(session, caller, released.document())
    return filecontents.file_record(
        write, {"reason": reason}, loan_id=loan_id, kind=FileRecordKind.GUARANTEE_RELEASED,
        record_id=record_id, content_hash=digest, path=f"/v1/loans/{loan_id}/guarantees/{record_id}",
        answer={"loan_id": loan_id, "record_id": record_id},
    )  # fmt: skip


def list_guarantees(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    """The loan's guarantees in chain order: each with its content (if it checks out) and release."""
    row = loan_for(session, caller, loan, "loan.guarantees")
    rows = records(session, "file_records", row.loan_id)
    stamps = Mirror(session).block_times(r["block_number"] for r in rows)
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        day = stamps.get(r["block_number"])
        on = datetime.fromtimestamp(day, UTC).date().isoformat() if day is not None else None
        if r["record_kind"] == FileRecordKind.GUARANTEE:
            status, content = filecontents.read(session, r["content_hash"])
            if content is not None and content.get("loan_id") != row.loan_id:
                status, content = "another loan's record", None
            details = None
            if content is not None:
                g = Guarantee.from_document(content)
                details = {
                    **g.model_dump(mode="json", exclude={"loan_id"}),
                    "kind_label": g.kind.en,
                    "kind_label_zh": g.kind.zh,
                }
            out[r["record_id"]] = {
                "record_id": r["record_id"],
                "recorded_on": on,
                "block_number": r["block_number"],
                "transaction_hash": r["transaction_hash"],
                "content_hash": r["content_hash"],
                "content_status": status,
                "guarantee": details,
                "released": None,
            }
        elif r["record_kind"] == FileRecordKind.GUARANTEE_RELEASED and r["record_id"] in out:
            status, content = filecontents.read(session, r["content_hash"])
            out[r["record_id"]]["released"] = {
                "recorded_on": on,
                "block_number": r["block_number"],
                "content_status": status,
                "reason": content.get("reason") if content else None,
            }
    return list(out.values())
