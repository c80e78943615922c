"""Access checks of the services, each one a question to the policy (`api.policy`, the one table of who
sees and does what), plus the queries that narrow an "own" answer: the loans a caller sees, the lots of a
trail it holds or paid out of. Also resolves loan numbers ("LN-2026-0001") to on-chain ids.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api import policy
from api.deps import Caller
from ledger.chain.participants import THIRD_PARTY_ROLES
from ledger.errors import NotFoundError, ValidationError
from ledger.mirror.models import LoanPublic, LotPublic
from ledger.mirror.read import LoanScope, Mirror
from ledger.store.offchain import LOAN_ID_PATTERN, LOAN_NUMBER_PATTERN, LoanMetadata

__all__ = [
    "check_lender",
    "find_lot",
    "loan_for",
    "loan_scope",
    "lot_visible",
    "resolve_loan_id",
    "sees_whole_trail",
    "visible_loan",
    "visible_lot",
    "whole_trail_loan",
]

_ID = LOAN_ID_PATTERN
_NUMBER = LOAN_NUMBER_PATTERN

meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]


def resolve_loan_id(session: Session, ref: str, caller: Caller | None = None) -> str:
    """A loan id from a 0x id or a loan number; unknown numbers are a 404. Numbers are unique per lender,
    so a number is looked up among the loans `caller` sees (a lender: its bank's)."""
    ref = ref.strip()
    if _ID.fullmatch(ref):
        return ref.lower()
    if _NUMBER.fullmatch(ref):
        query = sa.select(meta_t.c.loan_id).where(meta_t.c.loan_number == ref)
        if caller is not None and caller.role == "lender":
            query = query.where(meta_t.c.lender_org == caller.org_id)
        ids = sorted(str(i) for i in session.execute(query).scalars())
        if len(ids) > 1 and caller is not None:
            ids = sorted(Mirror(session).visible_loan_ids(ids, loan_scope(caller))) or ids[:1]
        if not ids and caller is not None:  # worded as for a loan the caller may not see: no existence leak
            raise NotFoundError(
                f"No loan {ref} is visible to {caller.name}.",
                hint="It does not exist, is not mirrored yet, or belongs to another organisation.",
            )
        if not ids:
            raise NotFoundError(f"No loan numbered {ref} is known.", hint="Check the loan number.")
        if len(ids) > 1:
            raise ValidationError(
                f"Loan number {ref} is used by {len(ids)} banks.",
                hint="Pass the loan's 0x-prefixed 32-byte id instead.",
            )
        return ids[0]
    raise ValidationError(
        f"{ref!r} is neither a loan id nor a loan number",
        hint='Pass the 0x-prefixed 32-byte loan id or a loan number like "LN-2026-0001".',
    )


def loan_scope(caller: Caller) -> LoanScope:
    """The loans the caller may see, as the read model's scope."""
    if caller.role == "auditor":
        return LoanScope()
    if caller.role == "lender":
        return LoanScope.of_lender(caller.org_id)
    if caller.role in THIRD_PARTY_ROLES:
        return LoanScope.of_loans(caller.engaged_loans)
    return LoanScope.of_accounts(caller.org_accounts)


def sees_whole_trail(caller: Caller, loan: Any) -> bool:
    """The policy grants the caller the whole trail (not only its own part)."""
    return policy.grant(caller, "loan.trail", loan) is policy.YES


def visible_loan(session: Session, caller: Caller, ref: str) -> LoanPublic:
    """The mirrored loan, or 404 when it does not exist or the caller may not see it: the same 404 both ways,
    so an unknown loan number and another bank's cannot be told apart."""
    try:
        loan_id: str | None = resolve_loan_id(session, ref, caller)
    except NotFoundError:
        loan_id = None
    row = Mirror(session).loan(loan_id, loan_scope(caller)) if loan_id is not None else None
    if row is None:
        raise NotFoundError(
            f"No loan {ref} is visible to {caller.name}.",
            hint="It does not exist, is not mirrored yet, or belongs to another organisation.",
        )
    return row


def loan_for(session: Session, caller: Caller, loan: str, action: str, **refusal: str) -> LoanPublic:
    """The loan row, if the policy lets the caller do `action` on it (404 if the caller does not see the
    loan at all, else 403 saying who may)."""
    policy.require_role(caller, action)
    row = visible_loan(session, caller, loan)
    policy.require(caller, action, row, label=loan, **refusal)
    return row


def whole_trail_loan(session: Session, caller: Caller, loan: str, what: str) -> LoanPublic:
    """The loan row, if the caller may have what covers its whole trail (404 if not the loan, else 403)."""
    action = "loan.verification" if what == "verification" else "loan.reports"
    return loan_for(session, caller, loan, action, subject=what)


def lot_visible(caller: Caller, loan: Any, lot: Any, parent_holder: str | None) -> bool:
    if sees_whole_trail(caller, loan):
        return True
    return lot.holder in caller.org_accounts or (
        parent_holder is not None and parent_holder in caller.org_accounts
    )


def find_lot(session: Session, lot_id: str) -> LotPublic | None:
    """The mirrored lot `lot_id` (any case), or None; 422 if it is not a lot id at all."""
    if not _ID.fullmatch(lot_id):
        raise ValidationError(f"{lot_id!r} is not a lot id", hint="A lot id is 0x followed by 64 hex digits.")
    return Mirror(session).lot(lot_id)


def visible_lot(session: Session, caller: Caller, lot_id: str) -> tuple[LotPublic, LoanPublic]:
    """(lot, loan) for a lot the caller may see, else 404."""
    lot = find_lot(session, lot_id)
    missing = NotFoundError(
        f"No lot {lot_id} is visible to {caller.name}.",
        hint="It does not exist, is not mirrored yet, or you neither hold it nor paid it.",
    )
    if lot is None:
        raise missing
    mirror = Mirror(session)
    loan = mirror.loan(lot.loan_id)
    parent = mirror.lot(lot.parent_lot_id) if lot.parent_lot_id is not None else None
    parent_holder = parent.holder if parent is not None else None
    if loan is None or not lot_visible(caller, loan, lot, parent_holder):
        raise missing
    return lot, loan


def check_lender(session: Session, caller: Caller, loan_id: str, action: str) -> None:
    """A write on a loan the policy gives its lender (`action`, e.g. "loan.disburse"): decided on the
    mirrored loan, or by role while it is not mirrored yet (the contract checks again)."""
    row = Mirror(session).loan(loan_id)
    policy.require(caller, action, row, label=loan_id)
