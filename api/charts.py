"""Charts for the portfolio page, drawn on the server by matplotlib as SVG (issue 20): no CDN, no script.

Each chart is an SVG document handed to the page as an `<img>` with a data: URL and a text alternative: the
dashboard's CSP allows images from data: but no inline style, and an SVG image keeps its own styles. Text
stays text in the SVG (`svg.fonttype: none`), so the browser draws the Chinese labels with its own fonts.
`matplotlib.figure.Figure` is used directly (no pyplot): no global state, safe in the server's threads.
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Mapping, Sequence

from markupsafe import Markup

__all__ = ["bar_chart", "stacked_bars", "svg_img"]

_COLOURS = ("#2f6f9f", "#e0a526", "#c8553d", "#7a4e9c", "#3d8c5a", "#777777")
_SEVERITY_COLOURS = {
    "info": "#8aa8c2",
    "low": "#5b8db8",
    "medium": "#e0a526",
    "high": "#d0672b",
    "critical": "#a0111b",
}


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: the browser's CJK fonts draw it
    matplotlib.rcParams["font.family"] = ["sans-serif"]
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans", "WenQuanYi Zen Hei", "Noto Sans CJK SC"]
    matplotlib.rcParams["axes.unicode_minus"] = False
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96)
    return fig, fig.add_subplot()


def _svg(fig) -> str:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    with warnings.catch_warnings():
        # Layout measures text with the fonts found here; a CJK glyph missing from them only shifts a label
        # (the browser draws the text with its own fonts).
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        fig.tight_layout()
        fig.savefig(out, format="svg", metadata={"Date": None})  # no timestamp: the same data, the same SVG
    return out.getvalue()


def bar_chart(labels: Sequence[str], values: Sequence[float], *, unit: str, horizontal: bool = False) -> str:
    """One series of bars, each labelled with its value."""
    fig, ax = _figure(7.0, max(2.4, 0.42 * len(labels) + 1.0) if horizontal else 3.2)
    positions = range(len(labels))
    if horizontal:
        bars = ax.barh(list(positions), list(values), color=_COLOURS[0])
        ax.set_yticks(list(positions), list(labels))
        ax.invert_yaxis()
        ax.set_xlabel(unit)
    else:
        bars = ax.bar(list(positions), list(values), color=_COLOURS[0])
        ax.set_xticks(list(positions), list(labels))
        ax.set_ylabel(unit)
    ax.bar_label(bars, labels=[f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" for v in values], fontsize=8)
    _axes(ax, values, horizontal)
    return _svg(fig)


def _axes(ax, totals: Sequence[float], horizontal: bool) -> None:  # type: ignore[no-untyped-def]
    """Counts get whole-number ticks; an all-zero chart still starts at zero instead of centring on it."""
    from matplotlib.ticker import MaxNLocator

    axis = ax.xaxis if horizontal else ax.yaxis
    if all(isinstance(v, int) for v in totals):
        axis.set_major_locator(MaxNLocator(integer=True))
    top = max([*totals, 0]) or 1
    (ax.set_xlim if horizontal else ax.set_ylim)(0, top * 1.12)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def stacked_bars(
    labels: Sequence[str], series: Mapping[str, Sequence[int]], *, unit: str, horizontal: bool = False
) -> str:
    """Bars stacked by series (severity), with a legend."""
    fig, ax = _figure(7.0, max(2.6, 0.42 * len(labels) + 1.2) if horizontal else 3.2)
    positions = list(range(len(labels)))
    base = [0] * len(labels)
    for i, (name, values) in enumerate(series.items()):
        colour = _SEVERITY_COLOURS.get(name, _COLOURS[i % len(_COLOURS)])
        if horizontal:
            ax.barh(positions, list(values), left=base, label=name, color=colour)
        else:
            ax.bar(positions, list(values), bottom=base, label=name, color=colour)
        base = [b + v for b, v in zip(base, values, strict=True)]
    if horizontal:
        ax.set_yticks(positions, list(labels))
        ax.invert_yaxis()
        ax.set_xlabel(unit)
    else:
        ax.set_xticks(positions, list(labels), rotation=30 if len(labels) > 6 else 0, ha="right")
        ax.set_ylabel(unit)
    if series:
        ax.legend(fontsize=8, frameon=False)
    _axes(ax, base, horizontal)
    return _svg(fig)


def svg_img(svg: str, alt: str, element_id: str) -> Markup:
    """An `<img>` of the SVG with its text alternative (what the chart says, for screen readers)."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return Markup('<img class="chart" id="{}" alt="{}" src="data:image/svg+xml;base64,{}">').format(
        element_id, alt, data
    )
