"""Helpers the resource routers share: rows to dicts, record lists, the lender check, event picking."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel

from api.deps import Caller
from ledger.chain.client import TxResult
from ledger.errors import PermissionDeniedError
from ledger.mirror.models import Loan
from ledger.protocol.purposes import describe
from ledger.store.offchain import LoanMetadata

__all__ = ["check_lender", "created_lots", "loan_out", "lot_out", "records"]

loans_t: sa.Table = Loan.__table__  # type: ignore[attr-defined]
meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]


def loan_out(session: Session, row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    data["loan_number"] = session.execute(
        sa.select(meta_t.c.loan_number).where(meta_t.c.loan_id == data["loan_id"])
    ).scalar()
    data["outstanding"] = int(data["disbursed"]) - int(data["repaid"])
    return data


def lot_out(row: Any, names: dict[str, str] | None = None) -> dict[str, Any]:
    data = dict(row._mapping)
    data["purpose_label"] = describe(int(data["purpose"]))
    data["holder_name"] = (names or {}).get(data["holder"])
    return data


def records(session: Session, table_name: str, loan_id: str) -> list[dict[str, Any]]:
    table = SQLModel.metadata.tables[table_name]
    rows = session.execute(
        sa.select(table).where(table.c.loan_id == loan_id).order_by(table.c.block_number, table.c.log_index)
    )
    return [dict(r._mapping) for r in rows]


def check_lender(session: Session, caller: Caller, loan_id: str, action: str) -> None:
    """Lenders only, and only for their bank's loans (if mirrored yet; the contract checks again)."""
    caller.require("lender", action=action)
    lender_org = session.execute(sa.select(loans_t.c.lender_org).where(loans_t.c.loan_id == loan_id)).scalar()
    if lender_org is not None and lender_org != caller.org_id:
        raise PermissionDeniedError(
            f"This loan is serviced by another bank; {caller.name} cannot {action} on it.",
            hint="Only the bank that granted a loan services it.",
        )


def created_lots(tx: TxResult) -> list[str]:
    return [str(e.args["lotId"]) for e in tx.events if e.name in ("Disbursed", "Paid")]
