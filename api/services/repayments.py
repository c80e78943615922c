"""Repayments of a loan's principal: listed for whoever sees the loan, recorded by its lender."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.schemas import RepayRequest
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract

__all__ = ["list_repayments", "repay"]


def list_repayments(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    return records(session, "repayments", loan_for(session, caller, loan, "loan.repayments").loan_id)


def repay(session: Session, write: Write, loan: str, body: RepayRequest) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, write.caller)
    check_lender(session, caller, loan_id, "loan.repay")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.repay(
            caller.signer(), loan_id=loan_id, amount=body.amount, evidence_hash=body.evidence_hash
        )
        return Outcome(tx, {"loan_id": loan_id})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/repayments")
