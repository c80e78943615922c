"""Guarantee facts for the monitoring rules: the active guarantees on the ledger (given on chain, not
released, whose off-chain content still hashes to the on-chain `contentHash`), how far each guarantor that
is itself a borrower here is past due, and the guarantee graph's cycles (互保, 联保).

The loader reads the mirror (`file_records`, `loans`) and the API's `file_contents`; `cycles_through` is pure.
A guarantee whose content is missing or altered is left out: the product never asserts a fact it did not
check (the guarantees API shows such a record as altered).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import FileRecordKind, LoanStatus
from ledger.protocol.guarantees import Guarantee, content_hash

__all__ = ["GuaranteeBook", "GuaranteeFact", "cycles_through", "load_book"]


@dataclass(frozen=True)
class GuaranteeFact:
    record_id: str
    loan_id: str
    borrower: str
    guarantor: str  # an address, or a salted reference for a party off the ledger
    kind: str
    amount: int
    start: date
    expiry: date
    capacity: int | None
    block_number: int
    log_index: int


@dataclass(frozen=True)
class GuaranteeBook:
    """Every active guarantee on open loans, and each guarantor's own days past due as a borrower here."""

    active: tuple[GuaranteeFact, ...] = ()
    overdue: Mapping[str, int] = field(default_factory=dict)

    def of_loan(self, loan_id: str) -> list[GuaranteeFact]:
        return [g for g in self.active if g.loan_id == loan_id]

    def by_guarantor(self, guarantor: str) -> list[GuaranteeFact]:
        return [g for g in self.active if g.guarantor == guarantor]

    def edges(self) -> dict[str, set[str]]:
        """guarantor -> the borrowers it backs."""
        out: dict[str, set[str]] = {}
        for g in self.active:
            out.setdefault(g.guarantor.lower(), set()).add(g.borrower.lower())
        return out


def cycles_through(edges: Mapping[str, set[str]], start: str, limit: int = 8) -> list[tuple[str, ...]]:
    """The elementary cycles of the guarantee graph through `start` (at most `limit` nodes each), each as
    the nodes in order starting at `start`: (A, B) is A backs B backs A (互保); (A, B, C) a chain (联保)."""
    start = start.lower()
    found: list[tuple[str, ...]] = []

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start and len(path) >= 2:
                found.append(tuple(path))
            elif nxt not in path and len(path) < limit:
                walk(nxt, [*path, nxt])

    walk(start, [start])
    return found


def load_book(conn: sa.Connection, overdue_of: Callable[[str], int]) -> GuaranteeBook:
    """The active guarantees on open loans; `overdue_of(address)` gives a guarantor's days past due."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("file_records") or not inspector.has_table("file_contents"):
        return GuaranteeBook()
    records = sa.table(
        "file_records",
        sa.column("loan_id"),
        sa.column("block_number"),
        sa.column("log_index"),
        sa.column("record_kind"),
        sa.column("record_id"),
        sa.column("content_hash"),
    )
    loans = sa.table("loans", sa.column("loan_id"), sa.column("borrower"), sa.column("status"))
    contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))
    rows = conn.execute(
        sa.select(records, loans.c.borrower)
        .select_from(records.join(loans, loans.c.loan_id == records.c.loan_id))
        .where(loans.c.status == int(LoanStatus.OPEN))
        .order_by(records.c.block_number, records.c.log_index)
    ).all()
    released = {(r.loan_id, r.record_id) for r in rows if r.record_kind == FileRecordKind.GUARANTEE_RELEASED}
    given = [
        r
        for r in rows
        if r.record_kind == FileRecordKind.GUARANTEE
        and (r.loan_id, r.record_id) not in released
        and r.record_id == r.content_hash  # a guarantee's id is its content's hash
    ]
    hashes = sorted({r.content_hash for r in given})
    stored = (
        {c.hash: c.content for c in conn.execute(sa.select(contents).where(contents.c.hash.in_(hashes)))}
        if hashes
        else {}
    )
    active = []
    for r in given:
        content = stored.get(r.content_hash)
        if not isinstance(content, dict) or content_hash(canonical_json(content)) != r.content_hash:
            continue  # missing or altered off chain: not a checked fact
        try:
            g = Guarantee.from_document(content)
        except ValueError:
            continue
        if g.loan_id != r.loan_id:
            continue
        active.append(
            GuaranteeFact(
                record_id=r.record_id,
                loan_id=r.loan_id,
                borrower=r.borrower,
                guarantor=g.party,
                kind=g.kind.value,
                amount=g.amount,
                start=g.start,
                expiry=g.expiry,
                capacity=g.capacity,
                block_number=int(r.block_number),
                log_index=int(r.log_index),
            )
        )
    overdue = {}
    for party in {g.guarantor for g in active if g.guarantor.startswith("0x") and len(g.guarantor) == 42}:
        days = overdue_of(party)
        if days > 0:
            overdue[party] = days
    return GuaranteeBook(tuple(active), overdue)
