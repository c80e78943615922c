"""The fund-flow picture of a loan: a Sankey-style tree of lots drawn as inline SVG on the server.

One box per lot, in columns by depth (disbursements on the left, final payees on the right). A box's height
grows with its amount; the band from a parent to a child is as wide as the child's amount on the same scale,
so the bands leaving a box never take more than the box received (conservation), and what a lot still holds
is the part of its edge no band leaves from. Flagged lots (outside the declared use, under an open alert,
disputed) are marked by colour *and* a text label, so the picture reads in black and white too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

__all__ = ["FlowNode", "FlowRoot", "flow_nodes", "render_flow"]

BOX_W = 200
COL_GAP = 110
MIN_H = 58
V_GAP = 14
PAD = 12
SCALE_PX = 420  # the biggest disbursement is drawn this tall (at least MIN_H)
MAX_CHILDREN = 12  # a lot with more onward payments shows the largest 11 and one line for the rest
ROOT_W = 170  # the root box: the lender and the borrower of the loan


@dataclass(frozen=True)
class FlowRoot:
    """The loan at the picture's root: who lent to whom, how much, when (issue 20)."""

    lender: str
    borrower: str
    principal: str
    opened: str


@dataclass
class FlowNode:
    """One lot as the picture needs it."""

    lot_id: str
    parent_lot_id: str | None
    holder: str
    amount: int
    remaining: int
    purpose: str
    declared_use: bool
    confirmation: str
    alerts: int = 0
    date: str = ""  # the lot's block time as a person reads it ("2026-12-06 21:45")
    children: list[FlowNode] = field(default_factory=list)
    more: int = 0  # children left out of the picture (a wide trail), summarised in one line
    more_amount: int = 0
    status: str = ""  # a status line of its own (a voucher part's state), instead of the confirmation's
    # layout
    depth: int = 0
    x: float = 0.0
    y: float = 0.0
    h: float = 0.0
    band: float = 0.0
    span: float = 0.0

    @property
    def flagged(self) -> bool:
        return not self.declared_use or self.alerts > 0

    @property
    def kind(self) -> str:
        return "disbursement" if self.parent_lot_id is None else "payment"


def _build(nodes: list[FlowNode]) -> list[FlowNode]:
    by_id = {n.lot_id: n for n in nodes}
    roots: list[FlowNode] = []
    for n in nodes:
        parent = by_id.get(n.parent_lot_id) if n.parent_lot_id else None
        if parent is None:
            roots.append(n)  # a disbursement, or a payment whose parent the caller may not see
        else:
            parent.children.append(n)
    for n in nodes:  # a wide trail: the largest payments drawn, the rest counted (all are in the table)
        if len(n.children) > MAX_CHILDREN:
            keep = sorted(n.children, key=lambda c: -c.amount)[: MAX_CHILDREN - 1]
            kept = {c.lot_id for c in keep}
            rest = [c for c in n.children if c.lot_id not in kept]
            n.more, n.more_amount = len(rest), sum(c.amount for c in rest)
            n.children = [c for c in n.children if c.lot_id in kept]
    return roots


def _lines(node: FlowNode) -> int:
    """Text lines a box prints beyond name, amount and status: date, what it still holds, flags, more."""
    extra = len(_flags(node, None)) + (1 if node.date else 0) + (1 if node.more else 0)
    return extra + (1 if node.children and node.remaining else 0)


def _measure(node: FlowNode, depth: int, scale: float) -> float:
    node.depth = depth
    node.band = max(1.0, node.amount * scale)
    node.h = max(MIN_H + 16 * _lines(node), node.band)
    below = sum(_measure(c, depth + 1, scale) for c in node.children) + V_GAP * max(0, len(node.children) - 1)
    node.span = max(node.h, below)
    return node.span


def _place(node: FlowNode, top: float, left: float = PAD) -> None:
    node.x = left + node.depth * (BOX_W + COL_GAP)
    node.y = top
    y = top
    for c in node.children:
        _place(c, y, left)
        y += c.span + V_GAP


def _flags(n: FlowNode, labels: dict[str, str] | None) -> list[str]:
    """The flag lines of a box (labels None: only count them)."""
    get = (labels or {}).get
    flags: list[str] = []
    if not n.declared_use:
        flags.append(f"⚠ {get('outside_use', '')}")
    if n.alerts:
        flags.append(f"! {get('alert', '')} ×{n.alerts}")
    return flags


def _walk(nodes: list[FlowNode]) -> list[FlowNode]:
    out: list[FlowNode] = []
    for n in nodes:
        out.append(n)
        out.extend(_walk(n.children))
    return out


def render_flow(
    nodes: list[FlowNode],
    *,
    href: Callable[[FlowNode], str],
    money: Callable[[int], str],
    labels: dict[str, str],
    selected: str | None = None,
    root: FlowRoot | None = None,
) -> Markup:
    """The SVG for `nodes` (flat, parents before children). `href` makes each box a link; `labels` holds
    the translated words the picture prints (flag and confirmation texts); `root` draws the loan (lender →
    borrower) left of the disbursements."""
    roots = _build(nodes)
    if not roots:
        return Markup("")
    biggest = max(r.amount for r in roots) or 1
    scale = SCALE_PX / biggest
    left = PAD + (ROOT_W + COL_GAP if root is not None else 0)
    top: float = PAD
    for r in roots:
        _measure(r, 0, scale)
        _place(r, top, left)
        top += r.span + V_GAP * 2
    every = _walk(roots)
    width = left + PAD + (max(n.depth for n in every) + 1) * (BOX_W + COL_GAP) - COL_GAP
    height = max(top - V_GAP * 2 + PAD, 4 * 16 + 2 * PAD + 12)

    parts: list[str] = [
        f'<svg class="flow" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="group" aria-labelledby="flow-title">',
        f'<title id="flow-title">{escape(labels["flow_title"])}</title>',
        '<defs><pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="8" height="8" class="hatch-bg"/>'
        '<line x1="0" y1="0" x2="0" y2="8" class="hatch-line"/></pattern></defs>',
    ]
    if root is not None:  # the loan: lender → borrower, with lines to each disbursement
        ry = PAD
        for r in roots:
            parts.append(
                f'<path class="root-link" d="M{PAD + ROOT_W:.1f},{ry + 30:.1f} '
                f"C{PAD + ROOT_W + COL_GAP / 2:.1f},{ry + 30:.1f} {PAD + ROOT_W + COL_GAP / 2:.1f},"
                f'{r.y + r.h / 2:.1f} {r.x:.1f},{r.y + r.h / 2:.1f}"/>'
            )
        parts.append(
            f'<g class="flow-root"><rect x="{PAD}" y="{ry}" width="{ROOT_W}" height="{4 * 16 + 12}" rx="4"/>'
        )
        for i, (text, cls) in enumerate(
            [
                (root.lender, "name"),
                ("→ " + root.borrower, "name"),
                (root.principal, "amount"),
                (root.opened, "date"),
            ]
        ):
            clipped = text if len(text) <= 25 else text[:24] + "…"
            parts.append(
                f'<text class="{cls}" x="{PAD + 8}" y="{ry + 18 + i * 16:.1f}">{escape(clipped)}</text>'
            )
        parts.append("</g>")
    # Bands first, so boxes sit on top of them.
    for n in every:
        offset = n.y + (n.h - n.band) / 2
        for c in n.children:
            x0, x1 = n.x + BOX_W, c.x
            y0a, y0b = offset, offset + c.band
            y1a = c.y + (c.h - c.band) / 2
            y1b = y1a + c.band
            mid = (x0 + x1) / 2
            cls = "band flagged" if c.flagged else "band"
            parts.append(
                f'<path class="{cls}" d="M{x0:.1f},{y0a:.1f} C{mid:.1f},{y0a:.1f} {mid:.1f},{y1a:.1f} '
                f"{x1:.1f},{y1a:.1f} L{x1:.1f},{y1b:.1f} C{mid:.1f},{y1b:.1f} {mid:.1f},{y0b:.1f} "
                f'{x0:.1f},{y0b:.1f} Z"/>'
            )
            offset += c.band
    for n in every:
        classes = ["lot-node", n.kind, n.confirmation]
        flags = _flags(n, labels)
        if not n.declared_use:
            classes.append("undeclared")
        if n.alerts:
            classes.append("alerted")
        if n.flagged:
            classes.append("flagged")
        if n.lot_id == selected:
            classes.append("selected")
        status = {
            "confirmed": "✓ " + labels["confirmed"],
            "disputed": "✗ " + labels["disputed"],
        }.get(n.confirmation, "… " + labels["unconfirmed"])
        if n.status:
            status = n.status
        lines = [(n.holder, "name"), (f"{money(n.amount)} · {n.purpose}", "amount"), (status, "status")]
        if n.date:
            lines.append((n.date, "date"))
        if n.children and n.remaining:  # the part of the box no band leaves from: what the lot still holds
            lines.append((f"{labels['remaining']} {money(n.remaining)}", "kept"))
        if n.more:
            lines.append((f"+{n.more} {labels['more_payments']} {money(n.more_amount)}", "more"))
        lines += [(flag, "flag") for flag in flags]
        tip = f"{n.holder}: {money(n.amount)} ({n.purpose}), {n.status or labels[n.confirmation]}"
        if flags:
            tip += "; " + "; ".join(flags)
        parts.append(
            f'<a href="{escape(href(n))}" class="{" ".join(classes)}" data-lot-id="{n.lot_id}" '
            f'data-flagged="{str(n.flagged).lower()}">'
            f"<title>{escape(tip)}</title>"
            f'<rect x="{n.x:.1f}" y="{n.y:.1f}" width="{BOX_W}" height="{n.h:.1f}" rx="4"/>'
        )
        for i, (text, cls) in enumerate(lines):
            clipped = text if len(text) <= 30 else text[:29] + "…"
            parts.append(
                f'<text class="{cls}" x="{n.x + 8:.1f}" y="{n.y + 17 + i * 16:.1f}">{escape(clipped)}</text>'
            )
        parts.append("</a>")
    parts.append("</svg>")
    return Markup("".join(parts))


def flow_nodes(
    lots: list[Any], names: dict[str, str], purpose: Callable[[int], str], alerts: dict[str, int]
) -> list[FlowNode]:
    """FlowNodes from mirrored lot rows (ordered by block and log index, so parents come first)."""
    return [
        FlowNode(
            lot_id=lot.lot_id,
            parent_lot_id=lot.parent_lot_id,
            holder=names.get(lot.holder, lot.holder[:10] + "…"),
            amount=int(lot.amount),
            remaining=int(lot.remaining),
            purpose=purpose(int(lot.purpose)),
            declared_use=bool(lot.declared_use),
            confirmation=str(lot.confirmation),
            alerts=alerts.get(lot.lot_id, 0),
            date=(getattr(lot, "block_time", None) or "")[:16].replace("T", " "),
        )
        for lot in lots
    ]
