"""Score bands A–E (A best): four cut-off scores, at the development sample's score quintiles (each band
holds a fifth of the development rows), recorded with the model.

A band is what people act on. A loan whose new band is worse than its previous one raises the alert
`score_band_worse` (ledger.monitoring.rules), and in band D or E its site visits fall due every
`FUNDFLOW_SCORE_VISIT_DAYS` days (bank policy, default 30) when that is sooner than its risk class asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ledger.protocol.scores import BANDS, WATCH_BANDS, band_rank, is_worse

__all__ = ["BANDS", "WATCH_BANDS", "Bands", "band_rank", "is_worse"]


@dataclass(frozen=True)
class Bands:
    cutoffs: tuple[float, float, float, float]
    """Ascending: E below cutoffs[0], D from cutoffs[0], C from [1], B from [2], A from [3]."""

    def __post_init__(self) -> None:
        if len(self.cutoffs) != 4 or list(self.cutoffs) != sorted(self.cutoffs):
            raise ValueError(f"band cut-offs must be four ascending scores, got {self.cutoffs}")

    @classmethod
    def from_scores(cls, scores: Sequence[float] | np.ndarray) -> Bands:
        """Cut-offs at the 20th, 40th, 60th and 80th percentiles of development scores (rounded)."""
        q = np.quantile(np.asarray(scores, dtype=float), [0.2, 0.4, 0.6, 0.8])
        cut = [round(float(v), 1) for v in q]
        for i in range(1, 4):  # ties (a portfolio with few distinct scores) keep the order strict
            cut[i] = max(cut[i], cut[i - 1] + 0.1)
        return cls((cut[0], cut[1], cut[2], cut[3]))

    def band(self, score: float) -> str:
        return BANDS[4 - int(np.searchsorted(np.asarray(self.cutoffs), score, side="right"))]

    def bands(self, scores: Sequence[float] | np.ndarray) -> list[str]:
        idx = np.searchsorted(np.asarray(self.cutoffs), np.asarray(scores, dtype=float), side="right")
        return [BANDS[4 - int(i)] for i in idx]

    def ranges(self) -> list[tuple[str, float | None, float | None]]:
        """(band, lowest score, score it stays below) best first; None = open-ended."""
        c = self.cutoffs
        return [("A", c[3], None), ("B", c[2], c[3]), ("C", c[1], c[2]), ("D", c[0], c[1]), ("E", None, c[0])]
