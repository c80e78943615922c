"""A loan's five-category risk classifications (五级分类) as recorded on chain, oldest first.

A class changes only through maker-checker (POST /v1/loans/{loan}/classification proposes, POST
/v1/classification-proposals/{id}/approve sends it); the former bare-reason-hash POST here is gone."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.services import risk as risk_service
from api.services.human import humanize

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
