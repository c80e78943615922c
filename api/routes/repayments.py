"""Repayments of a loan's principal (recorded by its lender)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import RepayRequest, WriteResult
from api.services import repayments as repayments_service
from api.services.human import humanize
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/repayments",
    tags=["repayments"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_EXAMPLE = [
    {
        "loan_id": "0x2b…",
        "amount": 25000000,
        "outstanding": 325000000,
        "evidence_hash": "0x9c…",
        "block_number": 40,
    }
]


@router.get(
    "",
    summary="A loan's repayments",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_repayments(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> list[dict[str, Any]]:
    return humanize(
        session, services.settings.bank_zone, repayments_service.list_repayments(session, caller, loan)
    )


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Record a repayment (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def repay(loan: str, body: RepayRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return repayments_service.repay(session, write, loan, body)
