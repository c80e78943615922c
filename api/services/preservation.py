"""Asset-preservation cases of a loan (财产保全: 诉前保全, 诉讼保全): filed and updated by its lender, read by
the lender and auditors. Each filing is `fileRecord(loan, PRESERVATION_CASE, caseId, hash)`; the latest
filing of a case is the case. Listed with each content checked against its on-chain hash and every deadline,
including the derived 30-day deadline to sue after a pre-suit preservation."""

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
from ledger.mirror.read import Mirror
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.preservation import PreservationCase, PreservationDetails

__all__ = ["file_case", "list_cases"]


def file_case(session: Session, write: Write, loan: str, body: PreservationDetails) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.preservation")
    case = PreservationCase(loan_id=loan_id, **body.model_dump())
    digest = filecontents.keep(session, caller, case.document())
    return filecontents.file_record(
        write, body, loan_id=loan_id, kind=FileRecordKind.PRESERVATION_CASE, record_id=case.record_id,
        content_hash=digest, path=f"/v1/loans/{loan_id}/preservation",
        answer={"loan_id": loan_id, "record_id": case.record_id, "content_hash": digest},
    )  # fmt: skip


def list_cases(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    row = loan_for(session, caller, loan, "loan.preservation_file")
    filed = [
        r
        for r in records(session, "file_records", row.loan_id)
        if r["record_kind"] == FileRecordKind.PRESERVATION_CASE
    ]
    stamps = Mirror(session).block_times(r["block_number"] for r in filed)
    cases: dict[str, dict[str, Any]] = {}
    for r in filed:  # chain order: the latest filing of a case wins
        status, content = filecontents.read(session, r["content_hash"])
        case = PreservationCase.from_document(content) if content is not None else None
        if case is not None and (case.loan_id != row.loan_id or case.record_id != r["record_id"]):
            status, case = "another case's record", None
        day = stamps.get(r["block_number"])
        cases[r["record_id"]] = {
            "record_id": r["record_id"],
            "filings": cases.get(r["record_id"], {}).get("filings", 0) + 1,
            "updated_on": datetime.fromtimestamp(day, UTC).date().isoformat() if day else None,
            "block_number": r["block_number"],
            "content_status": status,
            "case": None
            if case is None
            else {
                **case.model_dump(mode="json", exclude={"loan_id", "deadlines"}),
                "kind_label": case.kind.en,
                "kind_label_zh": case.kind.zh,
                "deadlines": [d.model_dump(mode="json") for d in case.all_deadlines()],
            },
        }
    return list(cases.values())
