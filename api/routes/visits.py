"""Visits and interviews of a loan (site visits, in-person and video interviews), recorded by its lender."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import WriteResult
from api.services import visits as visits_service
from api.writes import WriteDep
from ledger.protocol.visits import VisitDetails

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}",
    tags=["visits"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_EXAMPLE = [
    {
        "recorded_on": "2026-12-01",
        "chain_kind": "site_visit",
        "kind_label": "site visit",
        "kind_label_zh": "实地走访",
        "report_hash": "0x9c…",
        "report_status": "verified",
        "report": {"kind": "site_visit", "visit_date": "2026-11-30", "findings": "…"},
    }
]


@router.get(
    "/visits",
    summary="A loan's visits and interviews, each report checked against its on-chain hash",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_visits(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> list[dict[str, Any]]:
    return visits_service.list_visits(session, services, caller, loan)


@router.get("/visit-schedule", summary="When the next site visit is due (visit frequency by risk class)")
def visit_schedule(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return visits_service.visit_schedule(session, services, caller, loan)


@router.post(
    "/visits",
    response_model=WriteResult,
    status_code=201,
    summary="Record a site visit or an interview (lender): report off chain, its hash on chain",
    responses={409: ERROR_RESPONSES[409]},
)
def record_visit(loan: str, body: VisitDetails, session: SessionDep, write: WriteDep) -> JSONResponse:
    return visits_service.record_visit(session, write, loan, body)
