"""Lots: one lot as its holder, payer or overseer sees it; the payee confirms (确权) or disputes a payment."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.schemas import ConfirmRequest, DisputeRequest
from api.services import Services
from api.services.access import find_lot, resolve_loan_id, visible_lot
from api.services.rows import account_names, lot_out
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import NotFoundError, PermissionDeniedError

__all__ = ["confirm", "dispute", "get_lot"]


def get_lot(session: Session, services: Services, caller: Caller, lot_id: str) -> dict[str, Any]:
    lot, _ = visible_lot(session, caller, lot_id)
    return lot_out(lot, account_names(services))


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
        return resolve_loan_id(session, loan, caller)
    if row.holder not in caller.org_accounts:
        raise PermissionDeniedError(
            f"Only the payee of a payment can {action}; this lot was paid to another organisation.",
            hint="Use the token of the organisation that received the payment.",
        )
    return str(row.loan_id)


def confirm(session: Session, write: Write, lot_id: str, body: ConfirmRequest) -> JSONResponse:
    """Confirm receipt of a payment (its payee)."""
    caller = write.caller
    loan_id = _payee_loan(session, caller, lot_id, body.loan, "confirm payments")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.confirm_lot(
            caller.signer(), loan_id=loan_id, lot_id=lot_id, evidence_hash=body.evidence_hash
        )
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": [lot_id.lower()]})

    return write.record(body, action)


def dispute(session: Session, write: Write, lot_id: str, body: DisputeRequest) -> JSONResponse:
    """Dispute a payment (its payee)."""
    caller = write.caller
    loan_id = _payee_loan(session, caller, lot_id, body.loan, "dispute payments")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.dispute_lot(caller.signer(), loan_id=loan_id, lot_id=lot_id, reason_hash=body.reason_hash)
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": [lot_id.lower()]})

    return write.record(body, action)
