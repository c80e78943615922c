"""Honest evaluation of a behaviour model: out of time, on the most recent data it was not fitted on.

- Split: by snapshot date (`as_of`). Development = the older snapshots, test = the most recent ones. A loan
  appears in several snapshots; rows of the test period are never seen in fitting.
- AUC (sklearn `roc_auc_score`) and KS = max over thresholds of |TPR − FPR| (from sklearn's ROC curve: the
  largest gap between the cumulative bad and good distributions).
- PSI (population stability index) between development and recent data: Σ (a − e)·ln(a / e) over bins,
  e and a the shares of development and recent rows in each bin (an empty bin counts as 0.0001 so the log
  stays finite). For the score: ten bins at the development deciles; per feature: the scorecard's bins.
  Rule of thumb: < 0.10 stable, 0.10–0.25 watch, > 0.25 shifted.
- Calibration by band: per score band, rows, mean predicted probability of going bad, observed bad rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "EPSILON",
    "CalibrationRow",
    "Split",
    "auc",
    "calibration",
    "ks",
    "out_of_time_split",
    "psi",
    "psi_from_counts",
    "psi_label",
]

EPSILON = 1e-4


def auc(y: Sequence[int] | np.ndarray, risk: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve of `risk` (higher = more likely bad) against the 0/1 labels."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(y, dtype=int), np.asarray(risk, dtype=float)))


def ks(y: Sequence[int] | np.ndarray, risk: Sequence[float] | np.ndarray) -> float:
    """Kolmogorov–Smirnov statistic: the largest gap between the bad and good cumulative distributions."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(y, dtype=int), np.asarray(risk, dtype=float))
    return float(np.max(np.abs(tpr - fpr)))


def psi_from_counts(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """PSI of two histograms over the same bins (counts or shares)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("PSI needs two non-empty histograms over the same bins")
    e = np.maximum(e / e.sum(), EPSILON)
    a = np.maximum(a / a.sum(), EPSILON)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(
    expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """PSI of a continuous value (the score): bins at the quantiles of `expected` (development)."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    e_counts = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    a_counts = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    return psi_from_counts(e_counts, a_counts)


def psi_label(value: float) -> str:
    return "stable" if value < 0.10 else "watch" if value <= 0.25 else "shifted"


@dataclass(frozen=True)
class Split:
    dev: pd.DataFrame
    test: pd.DataFrame
    dev_dates: tuple[datetime, datetime]
    test_dates: tuple[datetime, datetime]


def out_of_time_split(data: pd.DataFrame, test_share: float = 0.3) -> Split:
    """Development = the older snapshots, test = the most recent ones holding about `test_share` of the rows
    (at least the newest snapshot; at least one snapshot stays for development)."""
    dates = sorted(pd.to_datetime(data["as_of"]).unique())
    if len(dates) < 2:
        raise ValueError(
            f"an out-of-time split needs at least two snapshot dates; the dataset has {len(dates)}"
        )
    counts = pd.to_datetime(data["as_of"]).value_counts()
    total, held = len(data), 0
    cut = len(dates) - 1
    while cut > 1 and held + counts[dates[cut]] < test_share * total:
        held += counts[dates[cut]]
        cut -= 1
    when = pd.to_datetime(data["as_of"])
    dev = data[when < dates[cut]]
    test = data[when >= dates[cut]]

    def span(ds: Sequence[Any]) -> tuple[datetime, datetime]:
        return (pd.Timestamp(ds[0]).to_pydatetime(), pd.Timestamp(ds[-1]).to_pydatetime())

    return Split(dev, test, span(dates[:cut]), span(dates[cut:]))


@dataclass(frozen=True)
class CalibrationRow:
    band: str
    count: int
    bad: int
    predicted_bad_rate: float
    observed_bad_rate: float | None


def calibration(
    bands: Sequence[str],
    pd_: Sequence[float] | np.ndarray,
    y: Sequence[int] | np.ndarray,
    order: Sequence[str],
) -> list[CalibrationRow]:
    """Per band (in `order`): rows, bad rows, mean predicted PD and observed bad rate (None: no rows)."""
    frame = pd.DataFrame({"band": list(bands), "pd": np.asarray(pd_, dtype=float), "y": np.asarray(y, int)})
    out = []
    for band in order:
        rows = frame[frame["band"] == band]
        n = len(rows)
        out.append(
            CalibrationRow(
                band,
                n,
                int(rows["y"].sum()),
                float(rows["pd"].mean()) if n else 0.0,
                float(rows["y"].mean()) if n else None,
            )
        )
    return out
