"""A loan's suggested five-category class (五级分类), and applying a class with a written reason: the text is
kept off chain, its keccak256 goes on chain as the reason hash. Departing from the suggestion needs one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import ClassificationWithReason
from api.services import risk as risk_service
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}",
    tags=["classifications"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422)},
)


@router.get("/classification-suggestion", summary="The suggested class, with its reasons")
def get_suggestion(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return risk_service.suggestion(session, services, caller, loan)


@router.post("/classification", status_code=201, summary="Apply a class with a written reason (lender)")
def classify_with_reason(
    loan: str, body: ClassificationWithReason, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return risk_service.classify(session, write, loan, body)
