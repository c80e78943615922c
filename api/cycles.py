"""A guarantee circle (互保, 联保) drawn as inline SVG on the server: the members on a ring, an arrow from
each guarantor to the borrower it backs. No script; labels are text, not colour alone."""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["render_cycle"]


def render_cycle(names: Sequence[str], *, highlight: int = 0, size: int = 260) -> Markup:
    """`names[i]` backs `names[i + 1]` (and the last backs the first); `highlight` marks this loan's
    borrower."""
    n = len(names)
    c, r, node = size / 2, size / 2 - 48, 20
    angles = [2 * math.pi * i / n - math.pi / 2 for i in range(n)]
    points = [(c + r * math.cos(a), c + r * math.sin(a)) for a in angles]
    parts = [
        f'<svg class="cycle" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'width="{size}" height="{size}" role="img" aria-label="guarantee circle of {n}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>',
    ]
    for i in range(n):
        (x1, y1), (x2, y2) = points[i], points[(i + 1) % n]
        d = math.hypot(x2 - x1, y2 - y1) or 1
        ux, uy = (x2 - x1) / d, (y2 - y1) / d
        parts.append(
            f'<line class="backs" x1="{x1 + ux * node:.1f}" y1="{y1 + uy * node:.1f}" '
            f'x2="{x2 - ux * node:.1f}" y2="{y2 - uy * node:.1f}" stroke="currentColor" '
            'marker-end="url(#arrow)"><title>backs</title></line>'
        )
    for i, ((x, y), name) in enumerate(zip(points, names, strict=True)):
        cls = "member borrower" if i == highlight else "member"
        parts.append(
            f'<g class="{cls}"><circle cx="{x:.1f}" cy="{y:.1f}" r="{node}" fill="none" '
            f'stroke="currentColor" stroke-width="{3 if i == highlight else 1}"/>'
            f'<text x="{x:.1f}" y="{y + node + 14:.1f}" text-anchor="middle" font-size="11">'
            f"{escape(name)}</text></g>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
