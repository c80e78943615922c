"""Five-category risk classification (五级分类) of a loan, set by its lender with a reason hash.

Both classify routes (this one and POST /v1/loans/{loan}/classification) go through
`api.services.risk.classify`; this one skips the suggestion check until issue 18 closes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import ClassifyRequest, WriteResult
from api.services import risk as risk_service
from api.services.human import humanize
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/classifications",
    tags=["classifications"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_EXAMPLE = [{"loan_id": "0x2b…", "risk_class": 1, "reason_hash": "0x9c…", "block_number": 39}]


@router.get(
    "",
    summary="A loan's classifications, oldest first",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_classifications(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> list[dict[str, Any]]:
    return humanize(
        session, services.settings.bank_zone, risk_service.list_classifications(session, caller, loan)
    )


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Classify a loan (lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def classify(loan: str, body: ClassifyRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return risk_service.classify(session, write, loan, body)
