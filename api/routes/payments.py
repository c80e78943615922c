"""Payments: pay out of a lot (single or batch) and the payments an enterprise received."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import Offset, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import LotOut, Page, PayBatchRequest, PayRequest, WriteResult
from api.services import payments as payments_service
from api.services.human import humanize
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/payments",
    tags=["payments"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)


@router.get("/received", response_model=Page[LotOut], summary="Payments the caller's organisation received")
def received(
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    confirmation: Annotated[str | None, Query(pattern="^(unconfirmed|confirmed|disputed)$")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    page = payments_service.received(
        session, services, caller, confirmation=confirmation, offset=offset, limit=limit
    )
    payments_service.with_payers(session, services, page["items"])
    return humanize(session, services.settings.bank_zone, page)


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Pay part of a lot to a payee (lot holder or servicing lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def pay(body: PayRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return payments_service.pay(session, write, body)


@router.post(
    "/batch",
    response_model=WriteResult,
    status_code=201,
    summary="Up to 500 payments of one loan in one transaction, all or nothing",
    description="One payBatch transaction with a computed gas limit. It must fit the chain's per-transaction "
    "gas cap (2^24 under EIP-7825): 500 payments out of one lot fit, 471 when each comes out of a different "
    "lot; a larger batch is refused with 422 before anything is sent.",
    responses={409: ERROR_RESPONSES[409]},
)
def pay_batch(body: PayBatchRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return payments_service.pay_batch(session, write, body)
