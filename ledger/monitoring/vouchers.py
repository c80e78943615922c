"""Monitoring of supply-chain vouchers (issue 22): a part unpaid past maturity raises an alert.

Rule `voucher_part_overdue` — "Voucher part unpaid past maturity / 到期未兑付": the voucher's maturity has
passed (chain time) and a part still has face value its core enterprise has not settled. One alert per part
(cause key = the part number), in the `alerts` table with `loan_id` holding the voucher id (the table's
subject column; a voucher id and a loan id never collide, both being 32-byte ids chosen by different
parties' hashes). The monitor evaluates it for the vouchers a batch (or a reorg undo) touched and, at each
sweep, for every matured voucher with something unpaid or with an alert still open; settling the part
resolves the alert as `system`; a reorg that removes the events an alert rests on deletes it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

from ledger.mirror.voucher_read import VoucherReader
from ledger.monitoring.rules import Candidate, Severity, fmt_money
from ledger.protocol.codes import PartState

__all__ = [
    "VOUCHER_RULES",
    "VOUCHER_RULE_LABELS",
    "VOUCHER_PART_OVERDUE",
    "overdue_candidates",
    "vouchers_to_sweep",
]

VOUCHER_PART_OVERDUE = "voucher_part_overdue"
VOUCHER_RULE_LABELS: dict[str, tuple[str, str]] = {
    VOUCHER_PART_OVERDUE: ("Voucher part unpaid past maturity", "到期未兑付"),
}
VOUCHER_RULES = frozenset(VOUCHER_RULE_LABELS)


def _t(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def overdue_candidates(conn: sa.Connection, voucher_id: str, now: int) -> list[Candidate] | None:
    """The rule on one voucher at chain time `now`: one candidate per part unpaid past maturity; None when
    the voucher is not in the mirror (its alerts' events are gone)."""
    reader = VoucherReader(conn)
    tree = reader.tree(voucher_id)
    if tree is None:
        return None
    voucher = tree.voucher
    out = []
    for node in tree.parts:
        if not node.overdue(now):
            continue
        part = node.part
        days = (now - voucher.maturity) // 86_400
        amount = fmt_money(part.remaining, voucher.currency)
        matured = datetime.fromtimestamp(voucher.maturity, UTC).strftime("%Y-%m-%d")
        state = PartState(part.state)
        out.append(
            Candidate(
                rule=VOUCHER_PART_OVERDUE,
                severity=Severity.HIGH,
                loan_id=voucher_id,
                cause_key=f"part:{part.part_id}",
                title=f"Voucher part {part.part_id} unpaid past maturity (到期未兑付): {amount}",
                explanation=(
                    f"The core enterprise {voucher.core_org} has not settled part {part.part_id} of voucher "
                    f"{voucher_id}: {amount} to its holder {part.holder} ({state.label}), due {matured}, "
                    f"{days} day(s) ago."
                ),
                source_block=max(part.updated_block, voucher.updated_block),
                details={
                    "voucher_id": voucher_id,
                    "part_id": part.part_id,
                    "holder": part.holder,
                    "remaining": part.remaining,
                    "currency": voucher.currency,
                    "maturity": voucher.maturity,
                    "days_overdue": days,
                    "core_org": voucher.core_org,
                },
            )
        )
    return out


def vouchers_to_sweep(conn: sa.Connection, now: int) -> set[str]:
    """Every matured voucher with something unpaid, and every voucher with an alert of its own still open."""
    vouchers, alerts = _t("vouchers"), _t("alerts")
    unpaid = conn.execute(
        sa.select(vouchers.c.voucher_id).where(
            vouchers.c.maturity <= now, vouchers.c.settled != vouchers.c.face_value
        )
    )
    flagged = conn.execute(
        sa.select(alerts.c.loan_id).where(
            alerts.c.rule.in_(sorted(VOUCHER_RULES)), alerts.c.state != "resolved"
        )
    )
    return {r[0] for r in unpaid} | {r[0] for r in flagged}


def voucher_ids_of(events: Iterable[object]) -> set[str]:
    """The vouchers a batch's (or an undo's) events name."""
    out = set()
    for event in events:
        args = getattr(event, "args", {})
        if "voucherId" in args:
            out.add(str(args["voucherId"]))
    return out
