"""Loans: list and detail (as mirrored), the whole trail of lots, terms; open, disburse, restructure."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from eth_utils import keccak
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.access import loan_visibility, lot_visible, resolve_loan_id, sees_whole_trail, visible_loan
from api.deps import Offset, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.routes.common import check_lender, created_lots, loan_out, lot_out
from api.schemas import (
    DisburseRequest,
    LoanOut,
    OpenLoanRequest,
    Page,
    RestructureRequest,
    Trail,
    WriteResult,
)
from api.writes import Outcome, WriteDep
from ledger.chain.contract import LedgerContract
from ledger.errors import ConflictError, FundflowError, ValidationError
from ledger.mirror.models import Loan, Lot
from ledger.store.offchain import LoanMetadata, terms_hash

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans",
    tags=["loans"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)

loans_t: sa.Table = Loan.__table__  # type: ignore[attr-defined]
lots_t: sa.Table = Lot.__table__  # type: ignore[attr-defined]
meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]

_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {409: ERROR_RESPONSES[409]}


@router.get("", response_model=Page[LoanOut], summary="Loans visible to the caller")
def list_loans(
    caller: ParticipantDep,
    session: SessionDep,
    status: Annotated[int | None, Query(ge=1, le=3, description="1 open, 2 repaid, 3 written off")] = None,
    risk_class: Annotated[int | None, Query(ge=0, le=4)] = None,
    borrower: Annotated[str | None, Query(description="borrower address")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    query = sa.select(loans_t)
    condition = loan_visibility(caller)
    if condition is not None:
        query = query.where(condition)
    if status is not None:
        query = query.where(loans_t.c.status == status)
    if risk_class is not None:
        query = query.where(loans_t.c.risk_class == risk_class)
    if borrower is not None:
        query = query.where(sa.func.lower(loans_t.c.borrower) == borrower.lower())
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(loans_t.c.block_number, loans_t.c.log_index).offset(offset).limit(limit)
    )
    return {"items": [loan_out(session, r) for r in rows], "total": total, "offset": offset, "limit": limit}


@router.get("/{loan}", response_model=LoanOut, summary="One loan, by id or loan number")
def get_loan(loan: str, caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    return loan_out(session, visible_loan(session, caller, loan))


@router.get("/{loan}/terms", summary="The loan's structured terms and whether they match the on-chain hash")
def get_terms(loan: str, caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    row = visible_loan(session, caller, loan)
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


# Nested JSON this deep is rejected by the response model's validator (and by most JSON tools); deeper trails
# are served flat, each lot with its parent and depth.
MAX_TREE_DEPTH = 200


@router.get(
    "/{loan}/trail",
    response_model=Trail,
    summary="The whole tree of lots of a loan",
    description="`format=tree` (default) nests each lot's onward payments under it; `format=flat` lists the "
    "lots parents-first, each with `parent_lot_id` and `depth`, for trails deeper than "
    f"{MAX_TREE_DEPTH} levels or for tabular use.",
)
def get_trail(
    loan: str,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    format: Annotated[Literal["tree", "flat"], Query(description="tree or flat")] = "tree",  # noqa: A002
) -> dict[str, Any]:
    row = visible_loan(session, caller, loan)
    lots = list(
        session.execute(
            sa.select(lots_t)
            .where(lots_t.c.loan_id == row.loan_id)
            .order_by(lots_t.c.block_number, lots_t.c.log_index)
        )
    )
    names = {a: p.name for p in services.directory.get() for a in p.accounts.values()}
    holders = {lot.lot_id: lot.holder for lot in lots}
    whole = sees_whole_trail(caller, row)
    nodes: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for lot in lots:  # chain order: a parent always comes before its children
        parent_holder = holders.get(lot.parent_lot_id) if lot.parent_lot_id else None
        if not lot_visible(caller, row, lot, parent_holder):
            continue
        parent = nodes.get(lot.parent_lot_id) if lot.parent_lot_id else None
        node = lot_out(lot, names) | {"children": [], "depth": parent["depth"] + 1 if parent else 0}
        nodes[lot.lot_id] = node
        if format == "flat":
            roots.append(node)
        else:
            (parent["children"] if parent is not None else roots).append(node)
    deepest = max((n["depth"] for n in nodes.values()), default=0)
    if format == "tree" and deepest >= MAX_TREE_DEPTH:
        raise ValidationError(
            f"the trail of loan {loan} is {deepest + 1} levels deep; nested JSON stops at {MAX_TREE_DEPTH}",
            hint="ask for ?format=flat: every lot with its parent_lot_id and depth, parents first",
        )
    return {
        "loan": loan_out(session, row),
        "head": row.head,
        "format": format,
        "lots": roots,
        "lot_count": len(nodes),
        "undeclared_use": sum(1 for n in nodes.values() if not n["declared_use"]),
        "disputed": sum(1 for n in nodes.values() if n["confirmation"] == "disputed"),
        "partial": not whole,
    }


_NUMBER = re.compile(r"LN-(\d{4})-(\d+)")


def _next_number(session: Session) -> str:
    year = datetime.now(UTC).year
    numbers = session.execute(
        sa.select(meta_t.c.loan_number).where(meta_t.c.loan_number.like(f"LN-{year}-%"))
    )
    highest = max((int(m[2]) for (n,) in numbers if (m := _NUMBER.fullmatch(n))), default=0)
    return f"LN-{year}-{highest + 1:04d}"


def loan_id_for(number: str) -> str:
    """Loan ids derive from the loan number, so a retried opening can never make a second loan."""
    return "0x" + keccak(text=f"fundflow-loan:{number}").hex()


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Open a loan (lenders)",
    responses=_WRITE_RESPONSES,
)
def open_loan(
    body: OpenLoanRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller, services = write.caller, write.services
    caller.require("lender", action="open loans")
    terms = body.terms.document()
    thash = terms_hash(terms)

    def action(ledger: LedgerContract) -> Outcome:
        number = body.loan_number
        salt = secrets.token_hex(16)
        for _ in range(20):
            candidate = number or _next_number(session)
            loan_id = loan_id_for(candidate)
            try:
                with services.engine.begin() as conn:
                    conn.execute(
                        sa.insert(meta_t).values(
                            loan_id=loan_id,
                            loan_number=candidate,
                            terms=terms,
                            terms_hash=thash,
                            borrower_salt=salt,
                            created_by=caller.address,
                            created_at=datetime.now(UTC),
                            updated_at=datetime.now(UTC),
                        )
                    )
                break
            except sa.exc.IntegrityError:
                if number is not None:
                    raise ConflictError(
                        f"Loan number {number} is already taken.", hint="Pick another number or leave it out."
                    ) from None
        else:  # pragma: no cover - twenty concurrent openings in one instant
            raise ConflictError("Could not assign a loan number.", hint="Retry.")
        who = body.borrower_id or body.borrower
        borrower_ref = "0x" + keccak(text=f"{salt}:{who}").hex()
        try:
            tx = ledger.open_loan(
                caller.signer(),
                loan_id=loan_id,
                borrower=body.borrower,
                borrower_ref=borrower_ref,
                principal=body.principal,
                currency=body.currency,
                allowed_purposes=body.allowed_purposes,
                maturity=body.maturity,
                terms_hash=thash,
            )
        except BaseException as exc:
            if not (isinstance(exc, FundflowError) and getattr(exc, "error_name", "") == "LedgerLoanExists"):
                with services.engine.begin() as conn:
                    conn.execute(sa.delete(meta_t).where(meta_t.c.loan_id == loan_id))
            raise
        return Outcome(tx, {"loan_id": loan_id, "loan_number": candidate, "terms_hash": thash})

    return write.record(body, action)


@router.post(
    "/{loan}/disbursements",
    response_model=WriteResult,
    status_code=201,
    summary="Disburse part of the principal into a new lot (lenders)",
    responses=_WRITE_RESPONSES,
)
def disburse(
    loan: str,
    body: DisburseRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan)
    check_lender(session, caller, loan_id, "disburse")

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


@router.post(
    "/{loan}/restructure",
    response_model=WriteResult,
    status_code=201,
    summary="Restructure: new maturity and terms; the new terms hash goes on chain (lenders)",
    responses=_WRITE_RESPONSES,
)
def restructure(
    loan: str,
    body: RestructureRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller, services = write.caller, write.services
    loan_id = resolve_loan_id(session, loan)
    check_lender(session, caller, loan_id, "restructure loans")
    terms = body.terms.document()
    thash = terms_hash(terms)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.restructure(caller.signer(), loan_id=loan_id, maturity=body.maturity, terms_hash=thash)
        with services.engine.begin() as conn:
            conn.execute(
                sa.update(meta_t)
                .where(meta_t.c.loan_id == loan_id)
                .values(terms=terms, terms_hash=thash, updated_at=datetime.now(UTC))
            )
        return Outcome(tx, {"loan_id": loan_id, "terms_hash": thash})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/restructure")
