"""Auditors' attestations that they verified a loan's trail up to its current head."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.access import resolve_loan_id, visible_loan
from api.deps import IdempotencyKeyDep, ParticipantDep, ServicesDep, SessionDep, WaitDep
from api.errors import ERROR_RESPONSES
from api.routes.common import records
from api.schemas import AttestRequest, WriteResult
from api.writes import Outcome, run_write

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}/attestations",
    tags=["attestations"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
_EXAMPLE = [{"loan_id": "0x2b…", "auditor_org": "0x8e…", "head": "0x77…", "report_hash": "0x9c…"}]


@router.get(
    "",
    summary="A loan's attestations",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def list_attestations(loan: str, caller: ParticipantDep, session: SessionDep) -> list[dict[str, Any]]:
    return records(session, "attestations", visible_loan(session, caller, loan).loan_id)


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Attest the loan's trail (auditor); head defaults to the chain's current head",
    responses={409: ERROR_RESPONSES[409]},
)
def attest(
    loan: str,
    body: AttestRequest,
    request: Request,
    caller: ParticipantDep,
    services: ServicesDep,
    session: SessionDep,
    idempotency_key: IdempotencyKeyDep,
    wait: WaitDep,
) -> JSONResponse:
    caller.require("auditor", action="attest trails")
    loan_id = resolve_loan_id(session, loan)

    def action() -> Outcome:
        head = body.head or services.ledger.head_of(loan_id)
        tx = services.ledger.attest(caller.signer(), loan_id=loan_id, head=head, report_hash=body.report_hash)
        return Outcome(tx, {"loan_id": loan_id})

    return run_write(
        services,
        caller,
        method="POST",
        path=f"/v1/loans/{loan_id}/attestations",
        body=body,
        idempotency_key=idempotency_key,
        wait=wait,
        action=action,
    )
