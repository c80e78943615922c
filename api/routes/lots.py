"""Lots: one lot's state; the payee confirms (收款确认) or disputes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import ConfirmRequest, DisputeRequest, LotOut, WriteResult
from api.services import lots as lots_service
from api.services.human import humanize
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/lots", tags=["lots"], responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)}
)


@router.get("/{lot_id}", response_model=LotOut, summary="One lot the caller holds, paid, or oversees")
def get_lot(
    lot_id: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return humanize(
        session, services.settings.bank_zone, lots_service.get_lot(session, services, caller, lot_id)
    )


@router.post(
    "/{lot_id}/confirm",
    response_model=WriteResult,
    status_code=201,
    summary="Confirm receipt of a payment (payee)",
    responses={409: ERROR_RESPONSES[409]},
)
def confirm(lot_id: str, body: ConfirmRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return lots_service.confirm(session, write, lot_id, body)


@router.post(
    "/{lot_id}/dispute",
    response_model=WriteResult,
    status_code=201,
    summary="Dispute a payment (payee)",
    responses={409: ERROR_RESPONSES[409]},
)
def dispute(lot_id: str, body: DisputeRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return lots_service.dispute(session, write, lot_id, body)
