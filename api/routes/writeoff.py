"""Write-off (核销) with its reason, and recoveries after it (核销后清收), by the loan's lender."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import ParticipantDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import WriteResult
from api.services import writeoff as writeoff_service
from api.writes import WriteDep
from ledger.protocol.writeoff import RecoveryDetails

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}",
    tags=["write-off"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)


class WriteOffRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=5000, description="why (stays off chain; its hash goes on)")


@router.get("/write-off", summary="The write-off, its reason, and recoveries since (lender, auditor)")
def write_off_file(loan: str, caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    return writeoff_service.write_off_file(session, caller, loan)


@router.post(
    "/write-off",
    response_model=WriteResult,
    status_code=201,
    summary="Write the loan off with a reason (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def write_off(loan: str, body: WriteOffRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return writeoff_service.write_off(session, write, loan, body.reason)


@router.post(
    "/recoveries",
    response_model=WriteResult,
    status_code=201,
    summary="Record money recovered after write-off (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def record_recovery(loan: str, body: RecoveryDetails, session: SessionDep, write: WriteDep) -> JSONResponse:
    return writeoff_service.record_recovery(session, write, loan, body)
