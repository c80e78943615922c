"""The mirror's read model for supply-chain vouchers (issue 22), beside `ledger.mirror.read` for loans.

`VoucherReader(db)` wraps a Connection or Session (the caller owns the transaction) and answers with the
`...Public` models of `ledger.mirror.models` and the frozen dataclasses below: a voucher's trail as a tree
of parts (`voucher_tree`), a core enterprise's payables against its line, the parts an account holds, a
bank's financing book and exposure per core enterprise. Lists come in chain order unless a method says
otherwise; amounts are integer fen; who may see what is the caller's policy.

A part is overdue ("voucher part unpaid past maturity / 到期未兑付") when the voucher's maturity has passed
and the part still has something to pay (`PartNode.overdue(now)`); `ledger.monitoring` raises the alert.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

import ledger.mirror.models  # noqa: F401  (registers the tables)
from ledger.mirror.models import (
    CreditLinePublic,
    VoucherFinancingPublic,
    VoucherPartPublic,
    VoucherPublic,
    VoucherSettlementPublic,
)
from ledger.mirror.read import _model, event_from_row
from ledger.protocol.codes import PartState
from ledger.protocol.eventjson import ArgsCodec
from ledger.protocol.events import DecodedEvent, EventDecoder

__all__ = ["BankExposure", "PartNode", "VoucherReader", "VoucherTree", "voucher_tree"]


def _t(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


@dataclass
class PartNode:
    """One part in a voucher's tree, with what happened to it and the parts split off it (chain order)."""

    part: VoucherPartPublic
    maturity: int
    financing: VoucherFinancingPublic | None = None
    settlement: VoucherSettlementPublic | None = None
    children: list[PartNode] = field(default_factory=list)

    @property
    def state(self) -> PartState:
        return PartState(self.part.state)

    def overdue(self, now: int) -> bool:
        """Unpaid past maturity (到期未兑付): maturity passed and something is left to pay."""
        return now >= self.maturity and self.part.remaining > 0 and self.state != PartState.SETTLED

    def walk(self) -> list[PartNode]:
        """This part and every part below it, depth first in chain order."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass(frozen=True)
class VoucherTree:
    """A voucher's trail: the voucher, its credit line, and its parts as a tree from the root (part 1)."""

    voucher: VoucherPublic
    line: CreditLinePublic | None
    root: PartNode

    @property
    def parts(self) -> list[PartNode]:
        return self.root.walk()

    def outstanding(self) -> int:
        """What the core enterprise still owes on the voucher: face value less what it settled."""
        return self.voucher.face_value - self.voucher.settled


@dataclass(frozen=True)
class BankExposure:
    """A bank's exposure to one core enterprise through vouchers: the parts it financed and still holds
    unsettled (the face it will be paid at maturity), and the line it granted."""

    core_org: str
    financed_parts: int
    face_outstanding: int
    line_limit: int | None
    line_outstanding: int | None


class VoucherReader:
    """Reads the voucher tables through `db` (a Connection or Session, in the caller's transaction).
    `decoder` (an `EventDecoder` knowing the voucher contract's events, or an `ArgsCodec` of one) is needed
    only by `events()`."""

    def __init__(
        self, db: sa.Connection | Session, *, decoder: EventDecoder | ArgsCodec | None = None
    ) -> None:
        self.db = db
        self._codec = ArgsCodec(decoder) if isinstance(decoder, EventDecoder) else decoder

    def _rows(self, statement: sa.Executable) -> Sequence[Any]:
        return self.db.execute(statement).all()

    # ------------------------------------------------------------------ one voucher

    def voucher(self, voucher_id: str) -> VoucherPublic | None:
        t = _t("vouchers")
        row = self.db.execute(sa.select(t).where(t.c.voucher_id == voucher_id)).first()
        return None if row is None else _model(VoucherPublic, row)

    def parts(self, voucher_id: str) -> list[VoucherPartPublic]:
        t = _t("voucher_parts")
        query = sa.select(t).where(t.c.voucher_id == voucher_id).order_by(t.c.block_number, t.c.log_index)
        return [_model(VoucherPartPublic, r) for r in self._rows(query)]

    def financings(self, voucher_id: str) -> list[VoucherFinancingPublic]:
        t = _t("voucher_financings")
        query = sa.select(t).where(t.c.voucher_id == voucher_id).order_by(t.c.block_number, t.c.log_index)
        return [_model(VoucherFinancingPublic, r) for r in self._rows(query)]

    def settlements(self, voucher_id: str) -> list[VoucherSettlementPublic]:
        t = _t("voucher_settlements")
        query = sa.select(t).where(t.c.voucher_id == voucher_id).order_by(t.c.block_number, t.c.log_index)
        return [_model(VoucherSettlementPublic, r) for r in self._rows(query)]

    def credit_line(self, core_org: str) -> CreditLinePublic | None:
        t = _t("credit_lines")
        row = self.db.execute(sa.select(t).where(t.c.core_org == core_org)).first()
        return None if row is None else _model(CreditLinePublic, row)

    def tree(self, voucher_id: str) -> VoucherTree | None:
        """The voucher's parts as a tree (each part's financing and settlement attached); None if unknown."""
        voucher = self.voucher(voucher_id)
        if voucher is None:
            return None
        nodes = {p.part_id: PartNode(p, voucher.maturity) for p in self.parts(voucher_id)}
        for financing in self.financings(voucher_id):
            nodes[financing.part_id].financing = financing
        for settlement in self.settlements(voucher_id):
            nodes[settlement.part_id].settlement = settlement
        for node in nodes.values():  # chain order, so each parent's children are in chain order too
            parent = node.part.parent_part_id
            if parent is not None:
                nodes[parent].children.append(node)
        return VoucherTree(voucher, self.credit_line(voucher.core_org), nodes[1])

    def events(self, voucher_id: str) -> list[DecodedEvent]:
        """The voucher's raw events in chain order, as decoded."""
        if self._codec is None:
            raise ValueError("VoucherReader.events needs the voucher contract's event decoder")
        events = _t("events")
        query = (
            sa.select(events)
            .where(events.c.voucher_id == voucher_id)
            .order_by(events.c.block_number, events.c.log_index)
        )
        return [event_from_row(r, self._codec) for r in self._rows(query)]

    # ------------------------------------------------------------------ views (core, supplier, bank)

    def payables(self, core_org: str) -> list[VoucherPublic]:
        """The core enterprise's vouchers by due date (earliest first), settled ones included."""
        t = _t("vouchers")
        query = sa.select(t).where(t.c.core_org == core_org).order_by(t.c.maturity, t.c.block_number)
        return [_model(VoucherPublic, r) for r in self._rows(query)]

    def held_parts(self, accounts: Collection[str], *, open_only: bool = True) -> list[VoucherPartPublic]:
        """The parts these accounts hold (with something left to be paid, unless `open_only` is False)."""
        t = _t("voucher_parts")
        query = sa.select(t).where(t.c.holder.in_(sorted(accounts)))
        if open_only:
            query = query.where(t.c.state != int(PartState.SETTLED), t.c.remaining != 0)
        return [
            _model(VoucherPartPublic, r) for r in self._rows(query.order_by(t.c.block_number, t.c.log_index))
        ]

    def financing_requests(self, bank_org: str) -> list[VoucherPartPublic]:
        """Parts whose holders asked this bank to finance them and wait for its answer."""
        t = _t("voucher_parts")
        query = sa.select(t).where(t.c.bank_org == bank_org, t.c.state == int(PartState.FINANCING_REQUESTED))
        return [_model(VoucherPartPublic, r) for r in self._rows(query.order_by(t.c.block_number))]

    def financing_book(self, bank_org: str) -> list[VoucherFinancingPublic]:
        """Every part this bank financed, in chain order."""
        t = _t("voucher_financings")
        query = sa.select(t).where(t.c.bank_org == bank_org).order_by(t.c.block_number, t.c.log_index)
        return [_model(VoucherFinancingPublic, r) for r in self._rows(query)]

    def exposure(self, bank_org: str, bank_accounts: Collection[str]) -> list[BankExposure]:
        """Per core enterprise: what the bank's accounts hold in financed, unsettled parts, and its line."""
        parts, vouchers, lines = _t("voucher_parts"), _t("vouchers"), _t("credit_lines")
        held = self._rows(
            sa.select(vouchers.c.core_org, parts.c.remaining)
            .join(vouchers, vouchers.c.voucher_id == parts.c.voucher_id)
            .where(parts.c.holder.in_(sorted(bank_accounts)), parts.c.state == int(PartState.FINANCED))
        )
        totals: dict[str, list[int]] = {}
        for core, remaining in held:
            entry = totals.setdefault(core, [0, 0])
            entry[0] += 1
            entry[1] += int(remaining)
        granted = {r.core_org: r for r in self._rows(sa.select(lines).where(lines.c.bank_org == bank_org))}
        out = []
        for core in sorted(set(totals) | set(granted)):
            n, face = totals.get(core, [0, 0])
            line = granted.get(core)
            out.append(
                BankExposure(
                    core,
                    n,
                    face,
                    None if line is None else int(line.line_limit),
                    None if line is None else int(line.outstanding),
                )
            )
        return out

    def overdue_parts(self, now: int, voucher_ids: Collection[str] | None = None) -> list[VoucherPartPublic]:
        """Parts unpaid past maturity (到期未兑付): the voucher matured at or before `now`, the part has
        something left and is not settled. Limited to `voucher_ids` when given."""
        parts, vouchers = _t("voucher_parts"), _t("vouchers")
        query = (
            sa.select(parts)
            .join(vouchers, vouchers.c.voucher_id == parts.c.voucher_id)
            .where(
                vouchers.c.maturity <= now, parts.c.remaining != 0, parts.c.state != int(PartState.SETTLED)
            )
        )
        if voucher_ids is not None:
            query = query.where(parts.c.voucher_id.in_(sorted(voucher_ids)))
        return [_model(VoucherPartPublic, r) for r in self._rows(query.order_by(parts.c.block_number))]


def voucher_tree(db: sa.Connection | Session, voucher_id: str) -> VoucherTree | None:
    """A voucher's trail as a tree of parts (see `VoucherReader.tree`)."""
    return VoucherReader(db).tree(voucher_id)
