"""The challenger: a small, regularised LightGBM gradient-boosting model on the same features as the
scorecard, there to show whether the scorecard leaves predictive power on the table.

Small on purpose (shallow trees, few leaves, at least 2 % of the rows per leaf, L2 penalty, row and column
subsampling) because a behaviour portfolio is small and its bad loans few. Each feature whose spec says
which way risk goes is constrained monotone in that direction (`risk_when="high"`: the predicted bad
probability never falls as the value rises), so the challenger cannot learn that more days past due is
safer from noise. Missing values are handled by LightGBM itself (they go to the side that fits best).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ledger.scoring.scorecard import SpecLike

__all__ = ["Challenger", "fit_challenger"]


class Challenger:
    def __init__(self, model: Any, names: Sequence[str]) -> None:
        self.model = model
        self.names = list(names)

    def probability(self, x: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model.predict_proba(x[self.names].astype(float))[:, 1], dtype=float)


def fit_challenger(
    x: pd.DataFrame, y: pd.Series | np.ndarray, specs: Sequence[SpecLike], *, seed: int = 7
) -> Challenger:
    """Fit the challenger on numeric features (categorical ones are not given to it)."""
    from lightgbm import LGBMClassifier

    names = [s.name for s in specs]
    constraints = [{"high": 1, "low": -1}.get(s.risk_when, 0) for s in specs]
    leaf = max(20, int(0.02 * len(x)))
    model = LGBMClassifier(
        n_estimators=200,
        learning_rate=0.05,
        num_leaves=8,
        max_depth=3,
        min_child_samples=leaf,
        reg_lambda=5.0,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.8,
        monotone_constraints=constraints,
        monotone_constraints_method="advanced",
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x[names].astype(float), np.asarray(y, dtype=int))
    return Challenger(model, names)
