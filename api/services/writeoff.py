"""Write-off (核销) with its reason, and recoveries after it (核销后清收), by the loan's lender; read by the
lender and auditors (the bank's own decision file).

Writing off sends `closeLoan(loan, WrittenOff, reasonHash)` with the hash of the reason's canonical JSON
(kept in `file_contents`); a recovery sends `fileRecord(loan, RECOVERY, id, hash)` and is accepted only on a
written-off loan (before write-off, money back is a repayment). The file lists both with each content checked
against its on-chain hash, and the total recovered.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.services import filecontents
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import ValidationError
from ledger.mirror.read import Mirror
from ledger.protocol.codes import FileRecordKind, LoanStatus
from ledger.protocol.writeoff import Recovery, RecoveryDetails, WriteOff

__all__ = ["record_recovery", "write_off", "write_off_file"]


def _date(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).date().isoformat()


def write_off(session: Session, write: Write, loan: str, reason: str) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.write_off")
    row = Mirror(session).loan(loan_id)
    if row is not None and int(row.status) != LoanStatus.OPEN:
        raise ValidationError(
            f"Loan {loan} is not open ({LoanStatus(int(row.status)).name.lower()}); only an open loan is "
            "written off."
        )
    document = WriteOff(loan_id=loan_id, reason=reason, decided_on=datetime.now(UTC).date()).document()
    digest = filecontents.keep(session, caller, document)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.close_loan(
            caller.signer(), loan_id=loan_id, status=int(LoanStatus.WRITTEN_OFF), reason_hash=digest
        )
        return Outcome(tx, {"loan_id": loan_id, "reason_hash": digest})

    return write.record({"reason": reason}, action, path=f"/v1/loans/{loan_id}/write-off")


def record_recovery(session: Session, write: Write, loan: str, body: RecoveryDetails) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.write_off")
    row = Mirror(session).loan(loan_id)
    if row is None or int(row.status) != LoanStatus.WRITTEN_OFF:
        raise ValidationError(
            f"Loan {loan} is not written off: money received on it is a repayment.",
            hint="POST /v1/loans/{loan}/repayments records it.",
        )
    recovery = Recovery(loan_id=loan_id, **body.model_dump())
    digest = filecontents.keep(session, caller, recovery.document())
    return filecontents.file_record(
        write, body, loan_id=loan_id, kind=FileRecordKind.RECOVERY, record_id=digest, content_hash=digest,
        path=f"/v1/loans/{loan_id}/recoveries", answer={"loan_id": loan_id, "record_id": digest},
    )  # fmt: skip


def write_off_file(session: Session, caller: Caller, loan: str) -> dict[str, Any]:
    """The write-off (reason checked against the on-chain reasonHash) and the recoveries since, with their
    total: what a banker reports after a write-off."""
    row = loan_for(session, caller, loan, "loan.write_off_file")
    mirror = Mirror(session)
    closed: list[dict[str, Any]] = []  # the LoanClosed that wrote the loan off
    if int(row.status) == LoanStatus.WRITTEN_OFF:
        names = ("loan_id", "name", "block_number", "log_index")
        events = sa.table("events", *(sa.column(n) for n in names))
        block = session.execute(
            sa.select(events.c.block_number)
            .where(events.c.loan_id == row.loan_id, events.c.name == "LoanClosed")
            .order_by(events.c.block_number.desc(), events.c.log_index.desc())
            .limit(1)
        ).scalar()
        closed = [{"block_number": int(block or 0), "reason_hash": str(row.closing_reason_hash or "")}]
    filed = records(session, "file_records", row.loan_id)
    recoveries = [r for r in filed if r["record_kind"] == FileRecordKind.RECOVERY]
    stamps = mirror.block_times(
        [r["block_number"] for r in recoveries] + [e["block_number"] for e in closed if e["block_number"]]
    )
    write_off_entry = None
    if closed:
        e = closed[-1]
        status, content = filecontents.read(session, e["reason_hash"])
        write_off_entry = {
            "recorded_on": _date(stamps.get(e["block_number"])),
            "block_number": e["block_number"],
            "reason_hash": e["reason_hash"],
            "reason_status": status,
            "reason": content.get("reason") if content else None,
        }
    items = []
    total = 0
    for r in recoveries:
        status, content = filecontents.read(session, r["content_hash"])
        amount = int(content["amount"]) if content else None
        total += amount or 0
        items.append(
            {
                "record_id": r["record_id"],
                "recorded_on": _date(stamps.get(r["block_number"])),
                "block_number": r["block_number"],
                "content_status": status,
                "amount": amount,
                "received_on": content.get("received_on") if content else None,
                "source": content.get("source") if content else None,
            }
        )
    return {
        "loan_id": row.loan_id,
        "status": LoanStatus(int(row.status)).name.lower(),
        "write_off": write_off_entry,
        "recoveries": items,
        "recovered": total,
        "currency": row.currency,
    }
