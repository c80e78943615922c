"""Auditors' attestations that they verified a loan's trail up to its current head.

An attestation through the API verifies first (`ledger.audit.attestation.attest_verified`): a trail that
fails verification, or grew after the block verified at, is refused (409 AttestationRefused) and nothing is
sent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import AttestRequest, WriteResult
from api.services import attestations as attestations_service
from api.services.human import humanize
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/attestations",
    tags=["attestations"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_409: dict[str, Any] = {
    "description": "The trail failed verification or grew since (AttestationRefused), or the head given "
    "is not the current one (LedgerStaleHead)",
    "content": {
        "application/json": {
            "example": {
                "error": "AttestationRefused",
                "message": "loan 0x2b… failed verification at block 118; an auditor does not attest a trail "
                "that does not verify",
                "hint": "see `fundflow verify` (or GET /v1/loans/{loan}/verification) for what differs; "
                "rebuild the mirror if it was tampered with",
            }
        }
    },
}
_EXAMPLE = [{"loan_id": "0x2b…", "auditor_org": "0x8e…", "head": "0x77…", "report_hash": "0x9c…"}]


@router.get(
    "",
    summary="A loan's attestations",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_attestations(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> list[dict[str, Any]]:
    return humanize(
        session, services.settings.bank_zone, attestations_service.list_attestations(session, caller, loan)
    )


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Verify the loan's trail, then attest its head (auditor)",
    description="Verifies the trail against the chain first (as GET /v1/loans/{loan}/verification) and "
    "attests the head it proved with `report_hash` (e.g. the `X-Report-Hash` of "
    "GET /v1/loans/{loan}/report). A trail that fails verification or grew since the mirror's block is "
    "refused with 409 AttestationRefused; a `head` other than the verified one is left to the contract "
    "(409 LedgerStaleHead).",
    responses={409: _409},
)
def attest(loan: str, body: AttestRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return attestations_service.attest(session, write, loan, body)
