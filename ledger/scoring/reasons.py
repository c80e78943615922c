"""Reason codes: why a loan scored what it did, in a banker's words (English and Chinese).

The standard adverse-action method for a points scorecard: for each feature, the points the loan's bin
gives are compared with the most points that feature gives (its best bin in development). The features
that cost the most points are the reasons, worst first, at most three, and only features that cost
points at all (a loan in every best bin has no reasons). Each reason names the feature and the loan's
value: "days past due now: 45 / 当前逾期天数：45".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ledger.scoring.scorecard import Scorecard

__all__ = ["MIN_POINTS_LOST", "Reason", "format_value", "reasons"]

MIN_POINTS_LOST = 0.5
"""A feature costing less than half a point is no reason."""

_SHARE_UNITS = frozenset({"ratio", "fraction", "%"})


@dataclass(frozen=True)
class Reason:
    feature: str
    value: float | str | None
    points_lost: float
    en: str
    zh: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def format_value(value: Any, unit: str) -> tuple[str, str]:
    """The value as a banker reads it, (EN, ZH): a share as a percentage, whole numbers without decimals,
    others to two decimals (one significant digit when smaller), a missing value (no collateral, no payments
    recorded: the feature does not apply) as "none recorded"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none recorded", "无记录"
    if isinstance(value, str):
        return value, value
    v = float(value)
    if unit in _SHARE_UNITS or unit.startswith("share"):
        text = f"{v:.0%}"
    elif v == int(v):
        text = str(int(v))
    elif abs(v) >= 10:
        text = f"{v:.1f}"
    elif abs(v) >= 0.01:
        text = f"{v:.2f}"
    else:
        text = f"{v:.1g}"  # a tiny value stays visible: 0.0007 hours is not "0.00"
    return text, text


def reasons(card: Scorecard, x: pd.DataFrame, top: int = 3) -> list[list[Reason]]:
    """The top `top` reasons for each row of `x` (in row order)."""
    points = card.points(x)
    best = card.best_points()
    names = card.names
    specs = {s.name: s for s in card.specs}
    lost = np.array([best[n] for n in names])[None, :] - points[names].to_numpy(dtype=float)
    # worst first; a stable sort keeps the features' order among equal costs
    order = np.argsort(-lost, axis=1, kind="stable")[:, :top]
    values = x[names].to_numpy(dtype=object)
    out: list[list[Reason]] = []
    for i in range(len(x)):
        mine: list[Reason] = []
        for j in order[i]:
            cost = float(lost[i, j])
            if cost < MIN_POINTS_LOST:
                break
            spec = specs[names[j]]
            raw = values[i, j]
            en_value, zh_value = format_value(raw, spec.unit)
            value: float | str | None
            if isinstance(raw, str):
                value = raw
            elif raw is None or pd.isna(raw):
                value = None
            else:
                value = float(raw)
            mine.append(
                Reason(
                    feature=spec.name,
                    value=value,
                    points_lost=round(cost, 1),
                    en=f"{spec.en}: {en_value}",
                    zh=f"{spec.zh}：{zh_value}",
                )
            )
        out.append(mine)
    return out
