"""Collateral valuations of a loan: listed for whoever sees the loan, recorded by its lender."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.schemas import CollateralRequest
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract

__all__ = ["list_collateral", "value_collateral"]


def list_collateral(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    row = loan_for(session, caller, loan, "loan.collateral")
    return records(session, "collateral_valuations", row.loan_id)


def value_collateral(session: Session, write: Write, loan: str, body: CollateralRequest) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, write.caller)
    check_lender(session, caller, loan_id, "loan.value_collateral")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.value_collateral(
            caller.signer(),
            loan_id=loan_id,
            collateral_id=body.collateral_id,
            value=body.value,
            evidence_hash=body.evidence_hash,
        )
        return Outcome(tx, {"loan_id": loan_id})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/collateral")
