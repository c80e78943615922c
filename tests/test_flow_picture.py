"""Issue 20: the flow picture reads at any size: a root for the bank and the borrower, a date on every box,
what a lot still holds where its children leave most of it, and a wide trail collapsed to its largest
payments with one line for the rest (every lot stays in the paged table). Pure: render_flow on FlowNodes."""

from __future__ import annotations

import re

from api.flow import MAX_CHILDREN, FlowNode, FlowRoot, render_flow
from api.i18n import translator

LABELS = translator("en").flat()


def _node(i: int, parent: str | None, amount: int, remaining: int | None = None) -> FlowNode:
    return FlowNode(
        lot_id=f"0x{i:064x}",
        parent_lot_id=parent,
        holder=f"Holder {i}",
        amount=amount,
        remaining=amount if remaining is None else remaining,
        purpose="raw materials",
        declared_use=True,
        confirmation="confirmed",
        date=f"2026-12-06 21:{i % 60:02d}",
    )


def _svg(nodes: list[FlowNode], root: FlowRoot | None = None) -> str:
    return str(
        render_flow(
            nodes,
            href=lambda n: f"?lot={n.lot_id}",
            money=lambda v: f"{v / 100:,.2f}",
            labels=LABELS,
            root=root,
        )
    )


def test_the_picture_starts_at_the_bank_and_the_borrower_and_dates_every_box() -> None:
    root = FlowRoot("Lakeside Commercial Bank", "Brightpath Robotics", "CNY 8,000,000.00", "2026-12-06 21:40")
    parent = _node(1, None, 150_000_000, remaining=120_000_000)
    child = _node(2, parent.lot_id, 30_000_000)
    svg = _svg([parent, child], root)
    assert (
        '<g class="flow-root">' in svg
        and "Lakeside Commercial Bank" in svg
        and "→ Brightpath Robotics" in svg
    )
    assert svg.count('class="root-link"') == 1  # one line from the root to the one disbursement
    assert '<text class="date"' in svg and "2026-12-06 21:01" in svg and "2026-12-06 21:02" in svg
    # the 1.5M lot with one 300k child says what it still holds, so its empty part reads
    assert "Remaining 1,200,000.00" in svg
    first_box_x = float(re.search(r'data-lot-id="0x0{63}1".*?<rect x="([0-9.]+)"', svg, re.S)[1])  # type: ignore[index]
    assert first_box_x > 170  # right of the root box


def test_a_wide_trail_draws_its_largest_payments_and_counts_the_rest() -> None:
    parent = _node(1, None, 10_000_000_00)
    children = [_node(10 + i, parent.lot_id, (i + 1) * 1_000_00) for i in range(MAX_CHILDREN + 3)]
    svg = _svg([parent, *children])
    drawn = re.findall(r'class="lot-node[^"]*" data-lot-id="(0x[0-9a-f]{64})"', svg)
    assert len(drawn) == 1 + MAX_CHILDREN - 1
    largest = {c.lot_id for c in sorted(children, key=lambda c: -c.amount)[: MAX_CHILDREN - 1]}
    assert set(drawn[1:]) == largest
    rest = sorted(children, key=lambda c: -c.amount)[MAX_CHILDREN - 1 :]
    total = sum(c.amount for c in rest) / 100
    assert f"+{len(rest)} more payments, {total:,.2f}" in svg


def test_a_trail_at_the_limit_is_drawn_whole() -> None:
    parent = _node(1, None, 10_000_000_00)
    children = [_node(10 + i, parent.lot_id, 1_000_00) for i in range(MAX_CHILDREN)]
    svg = _svg([parent, *children])
    assert len(re.findall(r'class="lot-node', svg)) == 1 + MAX_CHILDREN and "more payments" not in svg
