"""The collateral register (押品登记簿) and the third parties engaged on a loan (issue 19, second half)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import WriteResult
from api.services import register as register_service
from api.services.register import EngagementEnd
from api.writes import WriteDep
from ledger.protocol.collateral import AppraisalDetails, CollateralItemDetails, EngagementDetails

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}",
    tags=["collateral register"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_WRITE = {"response_model": WriteResult, "status_code": 201, "responses": {409: ERROR_RESPONSES[409]}}


@router.get(
    "/collateral-register",
    summary="The loan's collateral items, their valuations (appraisers' signed ones and the lender's own "
    "estimates) and the effective cover after haircuts",
)
def list_register(loan: str, caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    return register_service.list_register(session, caller, loan)


@router.post(
    "/collateral-register",
    summary="Register a collateral item or file a change of its terms: status, haircut, release, "
    "substitution (lender); the latest filing of an item is the item",
    **_WRITE,  # type: ignore[arg-type]
)
def register_item(
    loan: str, body: CollateralItemDetails, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return register_service.register_item(session, write, loan, body)


@router.post(
    "/collateral-register/{item_id}/appraisals",
    summary="Sign a valuation of a collateral item (an appraiser engaged on the loan; the contract checks)",
    **_WRITE,  # type: ignore[arg-type]
)
def appraise(
    loan: str, item_id: str, body: AppraisalDetails, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return register_service.appraise(session, write, loan, item_id, body)


@router.get(
    "/engagements", summary="Third parties engaged on the loan (lender, auditor; a third party: its own)"
)
def list_engagements(loan: str, caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    return register_service.list_engagements(session, caller, loan)


@router.post(
    "/engagements",
    summary="Engage a participant as appraiser, law firm or collection agency on the loan (lender)",
    **_WRITE,  # type: ignore[arg-type]
)
def engage(loan: str, body: EngagementDetails, session: SessionDep, write: WriteDep) -> JSONResponse:
    return register_service.engage(session, write, loan, body)


@router.post(
    "/engagements/{participant}/end",
    summary="End every engagement of a participant on the loan (lender)",
    **_WRITE,  # type: ignore[arg-type]
)
def end_engagement(
    loan: str, participant: str, body: EngagementEnd, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return register_service.end_engagement(session, write, loan, participant, body)
