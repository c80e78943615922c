"""Guarantees of a loan (保证, 抵押, 质押): given and released by its lender."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import ParticipantDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import WriteResult
from api.services import guarantees as guarantees_service
from api.writes import WriteDep
from ledger.protocol.guarantees import GuaranteeDetails

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/guarantees",
    tags=["guarantees"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)


class ReleaseRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why the guarantee is released")


@router.get("", summary="A loan's guarantees, each checked against its on-chain hash")
def list_guarantees(loan: str, caller: ParticipantDep, session: SessionDep) -> list[dict[str, Any]]:
    return guarantees_service.list_guarantees(session, caller, loan)


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Record a guarantee (lender): content off chain, its hash on chain",
    responses={409: ERROR_RESPONSES[409]},
)
def give_guarantee(loan: str, body: GuaranteeDetails, session: SessionDep, write: WriteDep) -> JSONResponse:
    return guarantees_service.give(session, write, loan, body)


@router.post(
    "/{record_id}/release",
    response_model=WriteResult,
    status_code=201,
    summary="Release a guarantee (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def release_guarantee(
    loan: str, record_id: str, body: ReleaseRequest, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return guarantees_service.release(session, write, loan, record_id, body.reason)
