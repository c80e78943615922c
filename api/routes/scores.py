"""The behaviour score (issue 21): the portfolio by band and the newest model's card. A loan's own score is
part of GET /v1/loans/{loan} for those the policy lets see it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.services import scores as scores_service

__all__ = ["models_router", "router"]

router = APIRouter(
    prefix="/v1/portfolio", tags=["portfolio"], responses={k: ERROR_RESPONSES[k] for k in (401, 403)}
)
models_router = APIRouter(
    prefix="/v1/score-models", tags=["scores"], responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404)}
)


@router.get("/scores", summary="Open loans by behaviour-score band: loans, outstanding, observed bad rate")
def portfolio_scores(caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    return scores_service.portfolio_scores(session, caller, services.settings.bank_zone)


@models_router.get("/latest", summary="The newest behaviour-score model and its model card")
def latest_model(caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    return scores_service.latest_card(session, caller)
