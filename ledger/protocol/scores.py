"""Behaviour-score bands as every part reads them (the scoring that sets them, the monitoring rule that
alerts on a worse one, the visit frequency that tightens for D and E, the pages that show them): A best,
E worst. Pure: no database, no model."""

from __future__ import annotations

__all__ = ["BANDS", "BAND_WORDS", "WATCH_BANDS", "band_rank", "is_worse"]

BANDS = ("A", "B", "C", "D", "E")
"""Best first."""
WATCH_BANDS = frozenset({"D", "E"})
"""Bands whose loans get the shorter site-visit interval (`FUNDFLOW_SCORE_VISIT_DAYS`)."""

BAND_WORDS = {
    "A": ("lowest risk", "风险最低"),
    "B": ("low risk", "风险较低"),
    "C": ("medium risk", "风险中等"),
    "D": ("high risk", "风险较高"),
    "E": ("highest risk", "风险最高"),
}


def band_rank(band: str) -> int:
    """0 for A … 4 for E."""
    return BANDS.index(band)


def is_worse(new: str, old: str) -> bool:
    return band_rank(new) > band_rank(old)
