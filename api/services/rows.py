"""Mirror rows as the dicts callers get: a loan with its number and outstanding amount, a lot with its
purpose label and holder's name, a loan's records of one kind, and participant names by account and org."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from api.services import Services
from ledger.chain.client import TxResult
from ledger.mirror.models import LoanPublic, LotPublic
from ledger.mirror.read import Mirror
from ledger.protocol.purposes import describe
from ledger.store.offchain import LoanMetadata

__all__ = [
    "account_names",
    "created_lots",
    "fields",
    "loan_numbers",
    "loan_out",
    "lot_out",
    "org_names",
    "records",
]

meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]


def fields(item: SQLModel | Any) -> dict[str, Any]:
    """A read model's value (`LoanPublic`, `LotPublic`, ...) or a mirror row as a new dict of its fields."""
    return dict(item.__dict__) if isinstance(item, SQLModel) else dict(item._mapping)


def loan_out(session: Session, loan: LoanPublic | Any) -> dict[str, Any]:
    data = fields(loan)
    data["loan_number"] = session.execute(
        sa.select(meta_t.c.loan_number).where(meta_t.c.loan_id == data["loan_id"])
    ).scalar()
    data["outstanding"] = int(data["disbursed"]) - int(data["repaid"])
    return data


def lot_out(lot: LotPublic | Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    data = fields(lot)
    data["purpose_label"] = describe(int(data["purpose"]))
    data["holder_name"] = (names or {}).get(data["holder"])
    return data


def records(session: Session, kind: str, loan_id: str) -> list[dict[str, Any]]:
    """A loan's mirrored records of one kind (repayments, classifications, ...), oldest first."""
    return [fields(r) for r in Mirror(session).records(loan_id, [kind]).of(kind)]


def loan_numbers(session: Session, loan_ids: Iterable[str]) -> dict[str, str]:
    """Loan number by loan id, for the loans that have one."""
    ids = sorted(set(loan_ids))
    if not ids:
        return {}
    rows = session.execute(sa.select(meta_t.c.loan_id, meta_t.c.loan_number).where(meta_t.c.loan_id.in_(ids)))
    return {str(i): str(n) for i, n in rows}


def created_lots(tx: TxResult) -> list[str]:
    return [str(e.args["lotId"]) for e in tx.events if e.name in ("Disbursed", "Paid")]


def account_names(services: Services) -> dict[str, str]:
    """Participant name by account address."""
    return {a: p.name for p in services.directory.get() for a in p.accounts.values()}


def org_names(services: Services) -> dict[str, str]:
    """Participant name by organisation id."""
    return {p.org_id: p.name for p in services.directory.get()}
