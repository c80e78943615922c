"""A behaviour model as the product trains, evaluates and applies it: the scorecard (the model that scores),
the challenger (judged beside it, never used to score), the bands, and the facts of its training data.

`train` splits a dataset (rows `loan_id, as_of, <features>, bad`) out of time, fits both models on the
development period only, sets band cut-offs from development scores, and evaluates both on the most recent
period, which neither saw. The model that is evaluated is the model that is applied: it is not refitted on
the test period afterwards, so the card's figures describe exactly what scores the loans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ledger.scoring.bands import BANDS, Bands
from ledger.scoring.challenger import Challenger, fit_challenger
from ledger.scoring.evaluation import (
    auc,
    calibration,
    ks,
    out_of_time_split,
    psi,
    psi_from_counts,
    psi_label,
)
from ledger.scoring.reasons import Reason, reasons
from ledger.scoring.scorecard import Scorecard, SpecLike, fit_scorecard

__all__ = ["BehaviourModel", "LoanScore", "Progress", "score_frame", "train"]

Progress = Callable[[str], None]


@dataclass
class BehaviourModel:
    scorecard: Scorecard
    challenger: Challenger
    bands: Bands
    trained_on: str  # "simulated" or "mirror"
    label: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    """Data dates, counts, performance: what the model card is made of (`ledger.scoring.modelcard`)."""

    @property
    def specs(self) -> tuple[SpecLike, ...]:
        return self.scorecard.specs


@dataclass(frozen=True)
class LoanScore:
    loan_id: str
    score: float
    band: str
    pd: float
    reasons: list[Reason]


def _both(frame: pd.DataFrame) -> bool:
    return frame["bad"].nunique() == 2


def _period(frame: pd.DataFrame, dates: tuple[datetime, datetime]) -> dict[str, Any]:
    return {
        "from": dates[0].date().isoformat(),
        "to": dates[1].date().isoformat(),
        "snapshots": int(frame["as_of"].nunique()),
        "rows": len(frame),
        "loans": int(frame["loan_id"].nunique()),
        "bad": int(frame["bad"].sum()),
        "bad_rate": float(frame["bad"].mean()) if len(frame) else 0.0,
    }


def train(
    data: pd.DataFrame,
    specs: Sequence[SpecLike],
    *,
    trained_on: str,
    label: dict[str, Any],
    test_share: float = 0.3,
    progress: Progress | None = None,
) -> BehaviourModel:
    """Fit and evaluate on `data`; raises ValueError saying what is missing when it cannot be done honestly
    (one snapshot date, or a period without both good and bad loans)."""
    say = progress or (lambda _step: None)
    if trained_on not in ("simulated", "mirror"):
        raise ValueError(f"trained_on must be 'simulated' or 'mirror', not {trained_on!r}")
    split = out_of_time_split(data, test_share)
    dev, test = split.dev, split.test
    for name, part in (("development", dev), ("test", test)):
        if not _both(part):
            raise ValueError(
                f"the {name} period has only {'bad' if part['bad'].all() else 'good'} loans "
                f"({len(part)} rows): a model cannot be fitted or judged on it; build the dataset over "
                "more snapshots or a longer history"
            )
    # A feature with fewer than two distinct values in development (all missing or all equal: nothing in
    # the mirror feeds it yet, e.g. no guarantees recorded) carries no information; it is left out and the
    # card says so.
    left_out = [s for s in specs if dev[s.name].dropna().nunique() < 2]
    specs = [s for s in specs if s not in left_out]
    if not specs:
        raise ValueError("no feature varies in the development period: there is nothing to learn from")
    names = [s.name for s in specs]
    say("scorecard")
    card = fit_scorecard(dev, dev["bad"], specs)
    say("challenger")
    challenger = fit_challenger(dev, dev["bad"], specs)
    say("evaluation")
    dev_score, test_score = card.score(dev), card.score(test)
    bands = Bands.from_scores(dev_score)
    test_pd, dev_pd = card.probability(test), card.probability(dev)
    ch_test, ch_dev = challenger.probability(test), challenger.probability(dev)
    dev_bins, test_bins = card.bin_labels(dev), card.bin_labels(test)
    feature_psi = {}
    for name in names:
        size = int(max(dev_bins[name].max(), test_bins[name].max())) + 1
        feature_psi[name] = psi_from_counts(
            np.bincount(dev_bins[name], minlength=size), np.bincount(test_bins[name], minlength=size)
        )
    score_psi = psi(dev_score, test_score)
    iv = card.information_values()
    facts = {
        "snapshots": {
            "from": split.dev_dates[0].date().isoformat(),
            "to": split.test_dates[1].date().isoformat(),
        },
        "development": _period(dev, split.dev_dates),
        "test": _period(test, split.test_dates),
        "features": [
            {
                "name": s.name,
                "en": s.en,
                "zh": s.zh,
                "unit": s.unit,
                "risk_when": s.risk_when,
                "information_value": round(iv.get(s.name, 0.0), 4),
                "psi": round(feature_psi[s.name], 4),
                "psi_label": psi_label(feature_psi[s.name]),
            }
            for s in specs
        ],  # fmt: skip
        "left_out": [
            {"name": s.name, "en": s.en, "zh": s.zh, "why": "no variation in the development period"}
            for s in left_out
        ],
        "bins": [
            {
                "feature": b.feature,
                "bin": b.bin,
                "count": b.count,
                "bad_rate": round(b.bad_rate, 4),
                "woe": round(b.woe, 4),
                "points": round(b.points, 1),
            }
            for b in card.bins()
            if b.count > 0
        ],  # fmt: skip
        "performance": {
            "scorecard": {
                "test": {"auc": auc(test["bad"], test_pd), "ks": ks(test["bad"], test_pd)},
                "development": {"auc": auc(dev["bad"], dev_pd), "ks": ks(dev["bad"], dev_pd)},
            },
            "challenger": {
                "test": {"auc": auc(test["bad"], ch_test), "ks": ks(test["bad"], ch_test)},
                "development": {"auc": auc(dev["bad"], ch_dev), "ks": ks(dev["bad"], ch_dev)},
            },
        },  # fmt: skip
        "psi": {"score": score_psi, "label": psi_label(score_psi)},
        "calibration": [
            vars(row) for row in calibration(bands.bands(test_score), test_pd, test["bad"], BANDS)
        ],
        "bands": [{"band": b, "from": lo, "below": hi} for b, lo, hi in bands.ranges()],
    }
    return BehaviourModel(card, challenger, bands, trained_on, dict(label), facts)


def score_frame(model: BehaviourModel, x: pd.DataFrame) -> list[LoanScore]:
    """Score every row of a feature frame (index loan_id): points, band, PD and the top three reasons."""
    if x.empty:
        return []
    scores = model.scorecard.score(x)
    pds = model.scorecard.probability(x)
    why = reasons(model.scorecard, x)
    bands = model.bands.bands(scores)
    return [
        LoanScore(str(loan_id), round(float(s), 1), b, float(p), r)
        for loan_id, s, b, p, r in zip(x.index, scores, bands, pds, why, strict=True)
    ]
