"""Who sees and does what, decided here for every caller (the /v1 routes and the dashboard alike).

Seeing: a lender sees its bank's loans, an enterprise the loans it borrowed and the lots it holds or paid out
of, an auditor everything. The whole trail of a loan (and what covers it: verification, bundle, report,
export) is for the loan's lender, its borrower and auditors. Monitoring alerts are the banks' and auditors'.
Doing: a loan is serviced by the bank that granted it; a payment is confirmed or disputed by its payee.
Also resolves loan numbers ("LN-2026-0001") to on-chain ids.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api.deps import Caller
from ledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from ledger.mirror.models import Loan, Lot, lots_by_id
from ledger.store.offchain import LoanMetadata

__all__ = [
    "check_lender",
    "find_lot",
    "loan_visibility",
    "lot_visible",
    "resolve_loan_id",
    "sees_whole_trail",
    "visible_loan",
    "visible_lot",
    "whole_trail_loan",
]

_ID = re.compile(r"0x[0-9a-fA-F]{64}")
_NUMBER = re.compile(r"LN-[0-9]{4}-[0-9]{4,8}")

loans_t: sa.Table = Loan.__table__  # type: ignore[attr-defined]
lots_t: sa.Table = Lot.__table__  # type: ignore[attr-defined]
meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]


def resolve_loan_id(session: Session, ref: str) -> str:
    """A loan id from a 0x id or a loan number; unknown numbers are a 404."""
    ref = ref.strip()
    if _ID.fullmatch(ref):
        return ref.lower()
    if _NUMBER.fullmatch(ref):
        loan_id = session.execute(sa.select(meta_t.c.loan_id).where(meta_t.c.loan_number == ref)).scalar()
        if loan_id is None:
            raise NotFoundError(f"No loan numbered {ref} is known.", hint="Check the loan number.")
        return str(loan_id)
    raise ValidationError(
        f"{ref!r} is neither a loan id nor a loan number",
        hint='Pass the 0x-prefixed 32-byte loan id or a loan number like "LN-2026-0001".',
    )


def loan_visibility(caller: Caller) -> Any:
    """A SQL condition on `loans` for the loans the caller may see (None: all)."""
    if caller.role == "auditor":
        return None
    if caller.role == "lender":
        return loans_t.c.lender_org == caller.org_id
    accounts = sorted(caller.org_accounts)
    holds = sa.select(lots_t.c.loan_id).where(lots_t.c.holder.in_(accounts))
    return sa.or_(loans_t.c.borrower.in_(accounts), loans_t.c.loan_id.in_(holds))


def sees_whole_trail(caller: Caller, loan: Any) -> bool:
    """The loan's lender, its borrower and auditors see every lot; others only what they hold or paid."""
    if caller.role == "auditor":
        return True
    if caller.role == "lender":
        return bool(loan.lender_org == caller.org_id)
    return loan.borrower in caller.org_accounts


def visible_loan(session: Session, caller: Caller, ref: str) -> Any:
    """The mirrored loan row, or 404 when it does not exist or the caller may not see it."""
    loan_id = resolve_loan_id(session, ref)
    query = sa.select(loans_t).where(loans_t.c.loan_id == loan_id)
    condition = loan_visibility(caller)
    if condition is not None:
        query = query.where(condition)
    row = session.execute(query).first()
    if row is None:
        raise NotFoundError(
            f"No loan {ref} is visible to {caller.name}.",
            hint="It does not exist, is not mirrored yet, or belongs to another organisation.",
        )
    return row


def whole_trail_loan(session: Session, caller: Caller, loan: str, what: str) -> Any:
    """The loan row, if the caller sees the loan's whole trail (404 if not the loan at all, else 403)."""
    row = visible_loan(session, caller, loan)
    if not sees_whole_trail(caller, row):
        raise PermissionDeniedError(
            f"The {what} covers the whole trail of loan {loan}; {caller.name} sees only the lots it holds "
            "or paid out of.",
            hint="Ask the loan's lender, its borrower or an auditor; "
            "GET /v1/loans/{loan}/trail shows your part.",
        )
    return row


def lot_visible(caller: Caller, loan: Any, lot: Any, parent_holder: str | None) -> bool:
    if sees_whole_trail(caller, loan):
        return True
    return lot.holder in caller.org_accounts or (
        parent_holder is not None and parent_holder in caller.org_accounts
    )


def find_lot(session: Session, lot_id: str) -> Any:
    """The mirrored lot `lot_id` (any case), or None; 422 if it is not a lot id at all."""
    if not _ID.fullmatch(lot_id):
        raise ValidationError(f"{lot_id!r} is not a lot id", hint="A lot id is 0x followed by 64 hex digits.")
    return session.execute(sa.select(lots_t).where(lots_by_id(lots_t, [lot_id.lower()]))).first()


def visible_lot(session: Session, caller: Caller, lot_id: str) -> tuple[Any, Any]:
    """(lot, loan) rows for a lot the caller may see, else 404."""
    lot = find_lot(session, lot_id)
    missing = NotFoundError(
        f"No lot {lot_id} is visible to {caller.name}.",
        hint="It does not exist, is not mirrored yet, or you neither hold it nor paid it.",
    )
    if lot is None:
        raise missing
    loan = session.execute(sa.select(loans_t).where(loans_t.c.loan_id == lot.loan_id)).first()
    parent_holder = None
    if lot.parent_lot_id is not None:
        parent_holder = session.execute(
            sa.select(lots_t.c.holder).where(lots_by_id(lots_t, [lot.parent_lot_id]))
        ).scalar()
    if loan is None or not lot_visible(caller, loan, lot, parent_holder):
        raise missing
    return lot, loan


def check_lender(session: Session, caller: Caller, loan_id: str, action: str) -> None:
    """Lenders only, and only for their bank's loans (if mirrored yet; the contract checks again)."""
    caller.require("lender", action=action)
    lender_org = session.execute(sa.select(loans_t.c.lender_org).where(loans_t.c.loan_id == loan_id)).scalar()
    if lender_org is not None and lender_org != caller.org_id:
        raise PermissionDeniedError(
            f"This loan is serviced by another bank; {caller.name} cannot {action} on it.",
            hint="Only the bank that granted a loan services it.",
        )
