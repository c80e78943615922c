"""Migration between risk classes over a period (迁徙率) for a lender's portfolio, from the mirror.

A loan counts when it was open with principal outstanding at the period's start. Its class at a moment is the
last `RiskClassified` at or before it (正常 before any); its balance at the start is what was disbursed minus
the principal repaid by then, both dated by their blocks. At the end it is in its class then, or "repaid"
when it was closed as repaid within the period (a loan written off within the period is 损失). Each cell holds
the number of loans and their balance at the start; a cell's rate is its balance over its row's balance
(the share of the start-of-period balance of a class that migrated to the other), four decimals.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import SQLModel

from ledger.protocol.codes import LoanStatus, RiskClass

__all__ = ["MigrationMatrix", "REPAID", "migration_matrix"]

REPAID = "repaid"
_COLUMNS: tuple[str, ...] = (*(c.name.lower() for c in RiskClass), REPAID)


@dataclass
class MigrationMatrix:
    start: int  # unix seconds (block time)
    end: int
    currency: str
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    balances: dict[str, dict[str, int]] = field(default_factory=dict)
    loans: int = 0

    def rate(self, row: str, col: str) -> Decimal | None:
        total = sum(self.balances[row].values())
        if not total:
            return None
        return (Decimal(self.balances[row][col]) / Decimal(total)).quantize(Decimal("0.0001"))

    def rows(self) -> list[dict[str, object]]:
        """One dict per start class: counts, balances (fen) and rates per end class."""
        out = []
        for row in _COLUMNS[:-1]:
            out.append(
                {
                    "from": row,
                    "loans": sum(self.counts[row].values()),
                    "balance": sum(self.balances[row].values()),
                    "to": {
                        col: {
                            "loans": self.counts[row][col],
                            "balance": self.balances[row][col],
                            "rate": None if (r := self.rate(row, col)) is None else str(r),
                        }
                        for col in _COLUMNS
                    },
                }
            )
        return out


def _t(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def migration_matrix(
    conn: sa.Connection, *, start: int, end: int, lender_orgs: Collection[str] | None, currency: str = "CNY"
) -> MigrationMatrix:
    """The matrix for the loans of `lender_orgs` (None: every bank's) in `currency`, between two block
    times."""
    if end <= start:
        raise ValueError("the period's end must come after its start")
    m = MigrationMatrix(start, end, currency)
    m.counts = {r: dict.fromkeys(_COLUMNS, 0) for r in _COLUMNS[:-1]}
    m.balances = {r: dict.fromkeys(_COLUMNS, 0) for r in _COLUMNS[:-1]}
    loans, blocks = _t("loans"), _t("blocks")
    checkpoint = _t("checkpoint")
    chain = sa.select(checkpoint.c.chain_id).where(checkpoint.c.id == 1).scalar_subquery()

    def timed(table: sa.Table, *cols: sa.ColumnElement[object]) -> sa.Select[tuple[object, ...]]:
        return (
            sa.select(table.c.loan_id, blocks.c.timestamp, *cols)
            .select_from(
                table.join(
                    blocks, sa.and_(blocks.c.chain_id == chain, blocks.c.number == table.c.block_number)
                )
            )
            .order_by(table.c.block_number, table.c.log_index)
        )

    query = sa.select(loans.c.loan_id, loans.c.status, loans.c.block_number).where(
        loans.c.currency == currency
    )
    if lender_orgs is not None:
        query = query.where(loans.c.lender_org.in_(list(lender_orgs)))
    rows = conn.execute(
        query.add_columns(blocks.c.timestamp).join_from(
            loans, blocks, sa.and_(blocks.c.chain_id == chain, blocks.c.number == loans.c.block_number)
        )
    ).all()
    ids = [r.loan_id for r in rows if int(r.timestamp) <= start]
    if not ids:
        return m
    lots, repayments, classes, events = _t("lots"), _t("repayments"), _t("classifications"), _t("events")
    disbursed: dict[str, int] = {}
    for r in conn.execute(
        timed(lots, lots.c.amount).where(lots.c.loan_id.in_(ids), lots.c.parent_lot_id.is_(None))
    ):
        if int(r.timestamp) <= start:
            disbursed[r.loan_id] = disbursed.get(r.loan_id, 0) + int(r.amount)
    repaid: dict[str, int] = {}
    for r in conn.execute(timed(repayments, repayments.c.amount).where(repayments.c.loan_id.in_(ids))):
        if int(r.timestamp) <= start:
            repaid[r.loan_id] = repaid.get(r.loan_id, 0) + int(r.amount)
    history: dict[str, list[tuple[int, int]]] = {}
    for r in conn.execute(timed(classes, classes.c.risk_class).where(classes.c.loan_id.in_(ids))):
        history.setdefault(r.loan_id, []).append((int(r.timestamp), int(r.risk_class)))
    closed: dict[str, tuple[int, int]] = {}
    closing = (
        sa.select(events.c.loan_id, events.c.args, blocks.c.timestamp)
        .select_from(
            events.join(
                blocks, sa.and_(blocks.c.chain_id == events.c.chain_id, blocks.c.hash == events.c.block_hash)
            )
        )
        .where(events.c.chain_id == chain, events.c.name == "LoanClosed", events.c.loan_id.in_(ids))
    )
    for c in conn.execute(closing):
        closed[c.loan_id] = (int(c.timestamp), int(c.args["status"]))

    def class_at(loan_id: str, ts: int) -> RiskClass:
        cls = RiskClass.NORMAL
        for when, value in history.get(loan_id, []):
            if when <= ts:
                cls = RiskClass(value)
        return cls

    for loan_id in ids:
        balance = disbursed.get(loan_id, 0) - repaid.get(loan_id, 0)
        if balance <= 0 or (loan_id in closed and closed[loan_id][0] <= start):
            continue
        row = class_at(loan_id, start).name.lower()
        col = class_at(loan_id, end).name.lower()
        if loan_id in closed and closed[loan_id][0] <= end:
            col = REPAID if closed[loan_id][1] == int(LoanStatus.REPAID) else RiskClass.LOSS.name.lower()
        m.counts[row][col] += 1
        m.balances[row][col] += balance
        m.loans += 1
    return m
