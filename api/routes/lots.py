"""Lots: one lot's state; the payee confirms (确权) or disputes it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.access import find_lot, resolve_loan_id, visible_lot
from api.deps import Caller, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.routes.common import lot_out
from api.schemas import ConfirmRequest, DisputeRequest, LotOut, WriteResult
from api.writes import Outcome, WriteDep
from ledger.chain.contract import LedgerContract
from ledger.errors import NotFoundError, PermissionDeniedError

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/lots", tags=["lots"], responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)}
)


@router.get("/{lot_id}", response_model=LotOut, summary="One lot the caller holds, paid, or oversees")
def get_lot(
    lot_id: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    lot, _ = visible_lot(session, caller, lot_id)
    names = {a: p.name for p in services.directory.get() for a in p.accounts.values()}
    return lot_out(lot, names)


def _payee_loan(session: Session, caller: Caller, lot_id: str, loan: str | None, action: str) -> str:
    """The lot's loan id; refuses (403) when the mirror shows the caller is not the payee."""
    caller.require("enterprise", action=action)
    row = find_lot(session, lot_id)
    if row is None:
        if loan is None:
            raise NotFoundError(
                f"Lot {lot_id} is not mirrored yet.",
                hint="Pass `loan` in the body, or retry with ?wait=true writes.",
            )
        return resolve_loan_id(session, loan)
    if row.holder not in caller.org_accounts:
        raise PermissionDeniedError(
            f"Only the payee of a payment can {action}; this lot was paid to another organisation.",
            hint="Use the token of the organisation that received the payment.",
        )
    return str(row.loan_id)


@router.post(
    "/{lot_id}/confirm",
    response_model=WriteResult,
    status_code=201,
    summary="Confirm receipt of a payment (payee)",
    responses={409: ERROR_RESPONSES[409]},
)
def confirm(
    lot_id: str,
    body: ConfirmRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller = write.caller
    loan_id = _payee_loan(session, caller, lot_id, body.loan, "confirm payments")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.confirm_lot(
            caller.signer(), loan_id=loan_id, lot_id=lot_id, evidence_hash=body.evidence_hash
        )
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": [lot_id.lower()]})

    return write.record(body, action)


@router.post(
    "/{lot_id}/dispute",
    response_model=WriteResult,
    status_code=201,
    summary="Dispute a payment (payee)",
    responses={409: ERROR_RESPONSES[409]},
)
def dispute(
    lot_id: str,
    body: DisputeRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller = write.caller
    loan_id = _payee_loan(session, caller, lot_id, body.loan, "dispute payments")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.dispute_lot(caller.signer(), loan_id=loan_id, lot_id=lot_id, reason_hash=body.reason_hash)
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": [lot_id.lower()]})

    return write.record(body, action)
