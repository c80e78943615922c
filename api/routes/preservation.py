"""Asset-preservation cases of a loan (诉前保全, 诉讼保全), filed and updated by its lender."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import WriteResult
from api.services import preservation as preservation_service
from api.writes import WriteDep
from ledger.protocol.preservation import PreservationDetails

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/preservation",
    tags=["preservation"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)


@router.get("", summary="A loan's asset-preservation cases and their deadlines (lender, auditor)")
def list_cases(loan: str, caller: ParticipantDep, session: SessionDep) -> list[dict[str, Any]]:
    return preservation_service.list_cases(session, caller, loan)


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="File or update an asset-preservation case (lender); the latest filing of a case is the case",
    responses={409: ERROR_RESPONSES[409]},
)
def file_case(loan: str, body: PreservationDetails, session: SessionDep, write: WriteDep) -> JSONResponse:
    return preservation_service.file_case(session, write, loan, body)
