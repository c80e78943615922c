"""Loans: the loans a caller sees, one loan, its terms, its whole trail of lots; opening, disbursing and
restructuring (lenders, for their own bank's loans).

The trail is built whole, flat and parents first (`Trail`); how much of it a caller draws is the caller's
choice within the limits stated here: the API's nested form stops at `MAX_TREE_DEPTH` levels (deeper trails
are served flat), the dashboard's picture at `DRAWN_DEPTH` (deeper lots are summarised and listed).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

import sqlalchemy as sa
from eth_utils import keccak
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.schemas import TERMS_CHANGES, DisburseRequest, OpenLoanRequest, RestructureRequest
from api.services import Services
from api.services.access import (
    check_lender,
    loan_for,
    loan_scope,
    lot_visible,
    resolve_loan_id,
    sees_whole_trail,
    visible_loan,
)
from api.services.rows import account_names, created_lots, fields, loan_numbers, loan_out, lot_out
from api.services.scores import loan_score
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import ChainError, ConflictError, FundflowError, ValidationError
from ledger.mirror.models import LoanPublic
from ledger.mirror.read import Mirror
from ledger.monitoring.monitor import Monitor
from ledger.monitoring.rules import past_due, servicing_position
from ledger.protocol.loantypes import parse_policies, policy_for
from ledger.protocol.terms import CarriedArrears
from ledger.store.offchain import LoanMetadata, LoanOpening, keep_terms_version, terms_hash

__all__ = [
    "DRAWN_DEPTH",
    "MAX_TREE_DEPTH",
    "Trail",
    "disburse",
    "get_loan",
    "get_terms",
    "list_loans",
    "loan_id_for",
    "open_loan",
    "restructure",
    "search_loans",
    "trail",
    "trail_answer",
]

meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]
open_t: sa.Table = LoanOpening.__table__  # type: ignore[attr-defined]

# Nested JSON this deep is rejected by the response model's validator (and by most JSON tools); deeper trails
# are served flat, each lot with its parent and depth.
MAX_TREE_DEPTH = 200
# The dashboard's picture draws this many levels; a deeper part is summarised under it (every lot stays in
# the page's table). Each level is a column of the picture: forty are already a wide scroll.
DRAWN_DEPTH = 40


def _classed(mirror: Mirror, caller: Caller, scope: Any, risk_class: int | None) -> list[str] | None:
    """With a risk-class filter, the loans whose class the policy shows the caller (None: all it sees), so
    a supplier cannot learn a class by filtering on it."""
    if risk_class is None:
        return None
    rows = mirror.loan_rows(scope=scope)
    ids = [r.loan_id for r in rows if policy.allowed(caller, "loan.risk_class", r)]
    return None if len(ids) == len(rows) else ids


def list_loans(
    session: Session,
    caller: Caller,
    *,
    status: int | None = None,
    risk_class: int | None = None,
    borrower: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> dict[str, Any]:
    """A page of the loans the caller sees, oldest first."""
    # The page as plain rows: a LoanPublic per loan would cost a tenth of this request (reads.loans_*).
    mirror, scope = Mirror(session), loan_scope(caller)
    filters: dict[str, Any] = {
        "scope": scope,
        "status": status,
        "risk_class": risk_class,
        "borrower": borrower,
        "loan_ids": _classed(mirror, caller, scope, risk_class),
    }
    total = mirror.count_loans(**filters)
    rows = mirror.loan_rows(**filters, offset=offset, limit=limit)
    items = [loan_view(caller, loan_out(session, r)) for r in rows]
    return {"items": items, "total": total, "offset": offset, "limit": limit}


def search_loans(
    session: Session,
    services: Services,
    caller: Caller,
    *,
    text: str = "",
    status: int | None = None,
    risk_class: int | None = None,
) -> list[dict[str, Any]]:
    """Every loan the caller sees, newest first, each with its `loan_number`; `text` matches the number,
    the id, the borrower's name, address or reference (case-insensitive)."""
    mirror, scope = Mirror(session), loan_scope(caller)
    rows: list[LoanPublic] = mirror.loans(
        scope=scope,
        status=status,
        risk_class=risk_class,
        loan_ids=_classed(mirror, caller, scope, risk_class),
        newest_first=True,
    )
    numbers = loan_numbers(session, [r.loan_id for r in rows])
    loans = [
        loan_view(
            caller,
            fields(r)
            | {"loan_number": numbers.get(r.loan_id), "outstanding": int(r.disbursed) - int(r.repaid)},
        )
        for r in rows
    ]
    if not text:
        return loans
    needle, names = text.lower(), account_names(services)
    return [
        r
        for r in loans
        if needle in (r["loan_number"] or "").lower()
        or needle in r["loan_id"].lower()
        or needle in names.get(r["borrower"], "").lower()
        or needle in r["borrower"].lower()
        or needle in r["borrower_ref"].lower()
    ]


# What a loan summary leaves out for a caller the policy does not show the borrower's risk file: the class,
# and what was repaid (outstanding = disbursed - repaid).
_RISK_FIELDS = {
    "risk_class": "loan.risk_class",
    "repaid": "loan.repayments",
    "outstanding": "loan.repayments",
}


def loan_view(caller: Caller, loan: dict[str, Any]) -> dict[str, Any]:
    """A loan summary as the caller may see it: risk-file fields the policy refuses are None."""
    row = _Facts(loan)
    for name, action in _RISK_FIELDS.items():
        if name in loan and not policy.allowed(caller, action, row):
            loan[name] = None
    return loan


class _Facts:
    """A loan dict seen as a row (what `policy.loan_rel` reads)."""

    def __init__(self, loan: dict[str, Any]) -> None:
        self.lender_org, self.borrower = loan["lender_org"], loan["borrower"]
        self.loan_id = loan.get("loan_id")  # a third party's engagement is per loan


def get_loan(session: Session, caller: Caller, ref: str, zone: tzinfo = UTC) -> dict[str, Any]:
    """The loan as the caller may see it; with its latest behaviour score (issue 21) only for a caller the
    policy lets see it: for anyone else the answer has no score field at all."""
    row = visible_loan(session, caller, ref)
    data = loan_view(caller, loan_out(session, row))
    score = loan_score(session, caller, row, zone)
    if score is not None:
        data["behaviour_score"] = score
    return data


def get_terms(session: Session, caller: Caller, ref: str) -> dict[str, Any]:
    """The loan's structured terms and whether they hash to what is on chain (the borrower's risk file)."""
    row = loan_for(session, caller, ref, "loan.terms")
    meta = session.execute(sa.select(meta_t).where(meta_t.c.loan_id == row.loan_id)).first()
    if meta is None:
        return {"loan_id": row.loan_id, "terms": None, "terms_hash": row.terms_hash, "matches_chain": False}
    return {
        "loan_id": row.loan_id,
        "loan_number": meta.loan_number,
        "terms": meta.terms,
        "terms_hash": meta.terms_hash,
        "matches_chain": terms_hash(meta.terms) == row.terms_hash == meta.terms_hash,
    }


@dataclass
class Trail:
    """The lots of a loan the caller sees, parents first, each a lot dict with `depth` (0 for a lot whose
    parent the caller does not see) and an empty `children` list; `children` maps a lot id to its visible
    children. `partial`: the caller sees only the lots it holds or paid out of."""

    row: LoanPublic
    loan: dict[str, Any]
    lots: list[dict[str, Any]]
    children: dict[str, list[dict[str, Any]]]
    partial: bool

    @property
    def head(self) -> str:
        return str(self.row.head)

    @property
    def levels(self) -> int:
        """How many levels deep the trail is (0 without lots)."""
        return max((n["depth"] for n in self.lots), default=-1) + 1

    def counts(self) -> dict[str, int]:
        return {
            "lot_count": len(self.lots),
            "undeclared_use": sum(1 for n in self.lots if not n["declared_use"]),
            "disputed": sum(1 for n in self.lots if n["confirmation"] == "disputed"),
        }

    def tree(self) -> list[dict[str, Any]]:
        """The roots, each lot a copy with its children nested (recursion-free, any depth)."""
        copies = {n["lot_id"]: n | {"children": []} for n in self.lots}
        roots: list[dict[str, Any]] = []
        for n in self.lots:
            parent = copies.get(n["parent_lot_id"]) if n["parent_lot_id"] else None
            (parent["children"] if parent is not None else roots).append(copies[n["lot_id"]])
        return roots

    def within(self, depth: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(lots less than `depth` levels deep, the deeper rest), both parents first."""
        return (
            [n for n in self.lots if n["depth"] < depth],
            [n for n in self.lots if n["depth"] >= depth],
        )


def trail(session: Session, services: Services, caller: Caller, ref: str) -> Trail:
    """The whole trail of a loan as the caller may see it (404 if the caller may not see the loan)."""
    row = visible_loan(session, caller, ref)
    lots = Mirror(session).lot_rows(row.loan_id)  # plain rows: a trail serves every lot of the loan
    names = account_names(services)
    holders = {lot.lot_id: lot.holder for lot in lots}
    nodes: dict[str, dict[str, Any]] = {}
    children: dict[str, list[dict[str, Any]]] = {}
    for lot in lots:  # chain order: a parent always comes before its children
        parent_holder = holders.get(lot.parent_lot_id) if lot.parent_lot_id else None
        if not lot_visible(caller, row, lot, parent_holder):
            continue
        parent = nodes.get(lot.parent_lot_id) if lot.parent_lot_id else None
        node = lot_out(lot, names) | {"children": [], "depth": parent["depth"] + 1 if parent else 0}
        nodes[lot.lot_id] = node
        if parent is not None:
            children.setdefault(parent["lot_id"], []).append(node)
    return Trail(
        row=row,
        loan=loan_view(caller, loan_out(session, row)),
        lots=list(nodes.values()),
        children=children,
        partial=not sees_whole_trail(caller, row),
    )


def trail_answer(
    session: Session, services: Services, caller: Caller, ref: str, format: Literal["tree", "flat"]
) -> dict[str, Any]:
    """The API's trail: nested (up to MAX_TREE_DEPTH levels, else 422 naming the flat form) or flat."""
    policy.require_role(caller, "loan.trail")  # a third party sees the loan, not its trail
    t = trail(session, services, caller, ref)
    policy.require(caller, "loan.trail", t.row, label=ref)
    deepest = t.levels - 1
    if format == "tree" and deepest >= MAX_TREE_DEPTH:
        raise ValidationError(
            f"the trail of loan {ref} is {deepest + 1} levels deep; nested JSON stops at {MAX_TREE_DEPTH}",
            hint="ask for ?format=flat: every lot with its parent_lot_id and depth, parents first",
        )
    return {
        "loan": t.loan,
        "head": t.head,
        "format": format,
        "lots": t.tree() if format == "tree" else t.lots,
        **t.counts(),
        "partial": t.partial,
    }


_NUMBER = re.compile(r"LN-(\d{4})-(\d+)")


def _next_number(db: sa.Connection | Session, lender_org: str) -> str:
    """The lender's next free number this year (numbers are per lender: two banks may both have
    LN-2026-0001); openings in flight hold their numbers too."""
    year = datetime.now(UTC).year
    numbers: list[str] = []
    for table in (meta_t, open_t):
        numbers += db.execute(
            sa.select(table.c.loan_number).where(
                table.c.lender_org == lender_org, table.c.loan_number.like(f"LN-{year}-%")
            )
        ).scalars()
    highest = max((int(m[2]) for n in numbers if (m := _NUMBER.fullmatch(n))), default=0)
    return f"LN-{year}-{highest + 1:04d}"


def loan_id_for(lender_org: str, number: str, salt: str) -> str:
    """A loan id no one can predict or take from another bank: the lender's organisation, the number and a
    random 32-byte salt (kept in `loan_openings` before the send, so a retry reuses the id)."""
    return "0x" + keccak(text=f"fundflow-loan:{lender_org.lower()}:{number}:{salt}").hex()


class _NumberTaken(Exception):
    pass


def _reserve_opening(
    services: Services, caller: Caller, number: str | None, key: str | None
) -> dict[str, Any]:
    """The opening this request sends: the one written by an earlier try of the same request (same caller,
    same Idempotency-Key), else a new one with a fresh salt and the asked-for or next free number."""
    if key is not None:
        with services.engine.connect() as conn:
            found = conn.execute(
                sa.select(open_t).where(open_t.c.created_by == caller.address, open_t.c.request_key == key)
            ).first()
        if found is not None:
            return dict(found._mapping)
    for _ in range(20):
        if number is None:
            with services.engine.connect() as conn:  # a fresh read each try, not the request's snapshot
                candidate = _next_number(conn, caller.org_id)
        else:
            candidate = number
        salt = "0x" + secrets.token_hex(32)
        row = {
            "loan_id": loan_id_for(caller.org_id, candidate, salt),
            "lender_org": caller.org_id,
            "loan_number": candidate,
            "salt": salt,
            "borrower_salt": secrets.token_hex(16),
            "created_by": caller.address,
            "request_key": key,
            "created_at": datetime.now(UTC),
        }
        try:
            with services.engine.begin() as conn:
                conn.execute(sa.insert(open_t).values(**row))
                # Checked after the insert, in its transaction: an opening that finishes concurrently moves
                # its number from loan_openings to loan_metadata in one transaction, so one of us sees it.
                taken = conn.execute(
                    sa.select(meta_t.c.loan_id).where(
                        meta_t.c.lender_org == caller.org_id, meta_t.c.loan_number == candidate
                    )
                ).first()
                if taken is not None:
                    raise _NumberTaken
            return row
        except (sa.exc.IntegrityError, _NumberTaken):
            if number is not None:
                raise ConflictError(
                    f"Loan number {number} is already taken.",
                    hint="Your bank has a loan with this number: pick another or leave it out.",
                ) from None
    raise ConflictError("Could not assign a loan number.", hint="Retry.")  # pragma: no cover


def open_loan(session: Session, write: Write, body: OpenLoanRequest) -> JSONResponse:
    """Number the loan and open it on chain under a salted id (lenders); its terms are kept off chain once
    it opened. A refused or failed opening leaves no terms behind."""
    caller, services = write.caller, write.services
    policy.require(caller, "loans.open")
    terms = body.terms.document()
    thash = terms_hash(terms)
    purposes = body.allowed_purposes
    if purposes is None:  # the loan type's default set, as this bank configured it
        assert body.terms.loan_type is not None  # the request model makes sure
        table = parse_policies(services.settings.loan_type_policies)
        purposes = sorted(policy_for(body.terms.loan_type, caller.org_id, table).allowed)

    def action(ledger: LedgerContract) -> Outcome:
        opening = _reserve_opening(services, caller, body.loan_number, write.idempotency_key)
        loan_id, number = opening["loan_id"], opening["loan_number"]
        who = body.borrower_id or body.borrower
        borrower_ref = "0x" + keccak(text=f"{opening['borrower_salt']}:{who}").hex()
        forget = sa.delete(open_t).where(open_t.c.loan_id == loan_id)
        try:
            tx = ledger.open_loan(
                caller.signer(),
                loan_id=loan_id,
                borrower=body.borrower,
                borrower_ref=borrower_ref,
                principal=body.principal,
                currency=body.currency,
                allowed_purposes=purposes,
                maturity=body.maturity,
                terms_hash=thash,
            )
        except BaseException as exc:
            # Refused: forget it. Otherwise, with an Idempotency-Key, it may have been sent and mined: keep
            # it, so the retry resumes this very opening (same id) and never opens a second loan.
            refused = isinstance(exc, FundflowError) and not isinstance(exc, ChainError)
            if refused or write.idempotency_key is None:
                with services.engine.begin() as conn:
                    conn.execute(forget)
            raise
        now = datetime.now(UTC)
        with services.engine.begin() as conn:  # the opening becomes the loan's metadata, in one unit
            conn.execute(forget)
            conn.execute(
                sa.insert(meta_t).values(
                    loan_id=loan_id,
                    loan_number=number,
                    lender_org=caller.org_id,
                    terms=terms,
                    terms_hash=thash,
                    borrower_salt=opening["borrower_salt"],
                    created_by=caller.address,
                    created_at=now,
                    updated_at=now,
                )
            )
            keep_terms_version(conn, loan_id, terms, thash, now)
        return Outcome(tx, {"loan_id": loan_id, "loan_number": number, "terms_hash": thash})

    return write.record(body, action)


def disburse(session: Session, write: Write, loan: str, body: DisburseRequest) -> JSONResponse:
    """Disburse part of the principal into a new lot (the loan's lender)."""
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, write.caller)
    check_lender(session, caller, loan_id, "loan.disburse")

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.disburse(
            caller.signer(),
            loan_id=loan_id,
            payee=body.payee,
            amount=body.amount,
            purpose=body.purpose,
            evidence_hash=body.evidence_hash,
        )
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": created_lots(tx)})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/disbursements")


def restructure(session: Session, write: Write, loan: str, body: RestructureRequest) -> JSONResponse:
    """A change of terms (`changeTerms`): new maturity and terms, what changed and whether the debtor is in
    financial difficulty. Days past due are never reset: arrears at the change are carried into the new terms
    (`carried_arrears`, hashed with them) unless the lender states them."""
    caller, services = write.caller, write.services
    loan_id = resolve_loan_id(session, loan, write.caller)
    check_lender(session, caller, loan_id, "loan.restructure")
    new_terms = body.terms
    if new_terms.carried_arrears is None:
        carried = _arrears(session, services, loan_id)
        if carried is not None:
            new_terms = new_terms.model_copy(update={"carried_arrears": carried})
    terms = new_terms.document()
    thash = terms_hash(terms)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.change_terms(
            caller.signer(),
            loan_id=loan_id,
            maturity=body.maturity,
            terms_hash=thash,
            change=TERMS_CHANGES[body.change],
            financial_difficulty=body.financial_difficulty,
        )
        now = datetime.now(UTC)
        with services.engine.begin() as conn:  # the current terms and the kept version, in one unit
            conn.execute(
                sa.update(meta_t)
                .where(meta_t.c.loan_id == loan_id)
                .values(terms=terms, terms_hash=thash, updated_at=now)
            )
            keep_terms_version(conn, loan_id, terms, thash, now)
        return Outcome(
            tx,
            {
                "loan_id": loan_id,
                "terms_hash": thash,
                "change": body.change,
                "financial_difficulty": body.financial_difficulty,
                "carried_arrears": terms.get("carried_arrears"),
            },
        )

    return write.record(body, action, path=f"/v1/loans/{loan_id}/restructure")


def _arrears(session: Session, services: Services, loan_id: str) -> CarriedArrears | None:
    """What is past due now (principal and interest), to carry into new terms; None when nothing is."""
    facts = Monitor.from_settings(services.settings).facts(session.connection(), loan_id)
    if facts is None:
        return None
    pd = past_due(facts)
    if pd.days <= 0 or pd.since is None:
        return None
    pos = servicing_position(facts)
    amount = (pos.principal_overdue + pos.interest_overdue) if pos is not None else 0
    if facts.now > facts.maturity:
        amount = max(amount, facts.outstanding)
    if not amount and facts.terms is not None and facts.terms.carried_arrears is not None:
        amount = facts.terms.carried_arrears.amount  # arrears an earlier change carried, still unpaid
    return CarriedArrears(since=pd.since, amount=amount) if amount else None
