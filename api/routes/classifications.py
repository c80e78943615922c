"""Five-category risk classification (五级分类) of a loan, set by its lender."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.access import resolve_loan_id, visible_loan
from api.deps import ParticipantDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.routes.common import check_lender, records
from api.schemas import ClassifyRequest, WriteResult
from api.writes import Outcome, WriteDep
from ledger.chain.contract import LedgerContract

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/classifications",
    tags=["classifications"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_EXAMPLE = [{"loan_id": "0x2b…", "risk_class": 1, "reason_hash": "0x9c…", "block_number": 39}]


@router.get(
    "",
    summary="A loan's classifications, oldest first",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_classifications(loan: str, caller: ParticipantDep, session: SessionDep) -> list[dict[str, Any]]:
    return records(session, "classifications", visible_loan(session, caller, loan).loan_id)


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Classify a loan (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def classify(
    loan: str,
    body: ClassifyRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan)
    check_lender(session, caller, loan_id, "classify loans")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.classify(
            caller.signer(), loan_id=loan_id, risk_class=body.risk_class, reason_hash=body.reason_hash
        )
        return Outcome(tx, {"loan_id": loan_id})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/classifications")
