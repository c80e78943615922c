"""Collateral valuations of a loan, recorded by its lender."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import CollateralRequest, WriteResult
from api.services import collateral as collateral_service
from api.services.human import humanize
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/collateral",
    tags=["collateral"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_EXAMPLE = [{"loan_id": "0x2b…", "collateral_id": "0x4d…", "value": 350000000, "evidence_hash": "0x9c…"}]


@router.get(
    "",
    summary="A loan's collateral valuations",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_collateral(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> list[dict[str, Any]]:
    return humanize(
        session, services.settings.bank_zone, collateral_service.list_collateral(session, caller, loan)
    )


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Record a collateral valuation (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def value_collateral(
    loan: str, body: CollateralRequest, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return collateral_service.value_collateral(session, write, loan, body)
