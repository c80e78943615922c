"""Payments: the payments a caller's organisation received (and who paid each); paying out of a lot, one
payment or a batch (a lot's holder or the servicing lender)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.schemas import PayBatchRequest, PayRequest
from api.services import Services
from api.services.access import resolve_loan_id
from api.services.rows import account_names, created_lots, lot_out
from api.services.signers import signers
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract, PaymentSpec
from ledger.mirror.read import Mirror

__all__ = ["pay", "pay_batch", "payers", "received"]


def received(
    session: Session,
    services: Services,
    caller: Caller,
    *,
    confirmation: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """A page of the lots paid to the caller's organisation, oldest first."""
    policy.require(caller, "payments.received")  # a third party is paid nothing through the ledger
    mirror = Mirror(session)
    total = mirror.count_held_lots(caller.org_accounts, confirmation=confirmation)
    # The page as plain rows (a LotPublic per lot costs ~6 us: benchmarks reads.payments_received_*).
    rows = mirror.held_lot_rows(caller.org_accounts, confirmation=confirmation, offset=offset, limit=limit)
    names = account_names(services)
    return {"items": [lot_out(r, names) for r in rows], "total": total, "offset": offset, "limit": limit}


def with_payers(session: Session, services: Services, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Adds `paid_by` (the signing account) and `paid_by_name` to each lot dict; None where unknown."""
    signed = signers(session, services, [i["transaction_hash"] for i in items])
    names = account_names(services)
    for i in items:
        signer = signed.get(str(i["transaction_hash"]).lower())
        i["paid_by"], i["paid_by_name"] = signer, names.get(signer) if signer else None
    return items


def payers(session: Session, services: Services, items: list[dict[str, Any]]) -> dict[str, str]:
    """Who paid each received lot (by lot id): the account that signed its payment or disbursement, by name
    where it is a registered participant (a lender may pay out of the borrower's lot, so the parent lot's
    holder is not the payer). "" when the node could not be asked."""
    signed = signers(session, services, [i["transaction_hash"] for i in items])
    names = account_names(services)
    out: dict[str, str] = {}
    for i in items:
        signer = signed.get(str(i["transaction_hash"]).lower())
        out[i["lot_id"]] = names.get(signer, signer) if signer else ""
    return out


def _require_payer(caller: Caller) -> None:
    policy.require(caller, "payments.pay")


def pay(session: Session, write: Write, body: PayRequest) -> JSONResponse:
    caller = write.caller
    _require_payer(caller)
    loan_id = resolve_loan_id(session, body.loan, write.caller)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.pay(
            caller.signer(),
            loan_id=loan_id,
            from_lot=body.from_lot,
            payee=body.payee,
            amount=body.amount,
            purpose=body.purpose,
            evidence_hash=body.evidence_hash,
        )
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": created_lots(tx)})

    return write.record(body, action)


def pay_batch(session: Session, write: Write, body: PayBatchRequest) -> JSONResponse:
    """All payments of the batch in one transaction, or none; a batch too big for one transaction is a
    422 before anything is sent (and the idempotency key stays unused)."""
    caller, services = write.caller, write.services
    _require_payer(caller)
    loan_id = resolve_loan_id(session, body.loan, write.caller)
    specs = [PaymentSpec(p.from_lot, p.payee, p.amount, p.purpose, p.evidence_hash) for p in body.payments]
    services.ledger.check_batch(specs)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.pay_batch(caller.signer(), loan_id=loan_id, payments=specs)
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": created_lots(tx)})

    return write.record(body, action)
