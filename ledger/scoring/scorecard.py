"""The behaviour scorecard (B卡): weight-of-evidence binning and a logistic regression, points per bin.

Built on optbinning, not written by hand: `BinningProcess` finds each feature's bins (optimal binning solved
as a mixed-integer programme, with a monotonic event-rate trend so that a bin's points never reverse the
feature's direction), the WoE of each bin, and `Scorecard` fits sklearn's `LogisticRegression` on the WoE
and turns coefficients into points per bin.

Scaling ("PDO and base odds", `scaling_method="pdo_odds"`): a score of `BASE_SCORE` points stands for good:bad
odds of `BASE_ODDS`:1, and every `PDO` points more doubles the odds. So score = offset + factor·ln(odds) with
factor = PDO / ln 2 and offset = BASE_SCORE − factor·ln(BASE_ODDS); higher is better. The points of a loan
are the sum of its bins' points, one bin per feature (a missing value has its own bin).

`SpecLike` is what the scorecard needs to know of a feature: its name, banker's words (EN, ZH), unit and
whether a high value is risky. `ledger.scoring.features.Feature` is one; the German-credit check builds its
own.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

__all__ = [
    "BASE_ODDS",
    "BASE_SCORE",
    "PDO",
    "BinRow",
    "Scorecard",
    "SpecLike",
    "fit_scorecard",
    "odds_to_score",
]

BASE_SCORE = 600
BASE_ODDS = 50
PDO = 20


class SpecLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def en(self) -> str: ...
    @property
    def zh(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def risk_when(self) -> str: ...


def odds_to_score(odds: float) -> float:
    """The score the PDO/base-odds scaling gives good:bad `odds` (documentation and tests)."""
    factor = PDO / math.log(2)
    return BASE_SCORE - factor * math.log(BASE_ODDS) + factor * math.log(odds)


@dataclass(frozen=True)
class BinRow:
    """One bin of one feature: its label, development rows in it, their bad rate, WoE and points."""

    feature: str
    bin: str
    count: int
    bad_rate: float
    woe: float
    points: float


class Scorecard:
    """A fitted scorecard: `score` (points, higher is better), `pd` (probability of going bad), the points
    table, and each row's points per feature (what the reason codes compare)."""

    def __init__(self, model: Any, specs: Sequence[SpecLike], categorical: Sequence[str]) -> None:
        self.model = model
        self.specs = tuple(specs)
        self.names = [s.name for s in specs]
        self.categorical = tuple(categorical)
        with warnings.catch_warnings():  # optbinning on pandas 3 warns of its own deprecated calls
            warnings.simplefilter("ignore")
            table = model.table(style="detailed")
        self._table = table[table["Bin"].astype(str) != ""].reset_index(drop=True)

    def _frame(self, x: pd.DataFrame) -> pd.DataFrame:
        missing = [n for n in self.names if n not in x.columns]
        if missing:
            raise KeyError(f"the frame lacks the scorecard's features {missing}")
        frame = x[self.names].copy()
        for name in self.names:
            if name not in self.categorical:
                frame[name] = frame[name].astype(float)
        return frame

    def score(self, x: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model.score(self._frame(x)), dtype=float)

    def probability(self, x: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.model.predict_proba(self._frame(x))[:, 1], dtype=float)

    def bins(self) -> list[BinRow]:
        """The points table: every bin of every feature (the Special and Missing bins included)."""
        t = self._table
        return [
            BinRow(
                str(r["Variable"]),
                str(r["Bin"]),
                int(r["Count"]),
                float(r["Event rate"]) if not pd.isna(r["Event rate"]) else 0.0,
                float(r["WoE"]),
                float(r["Points"]),
            )
            for _, r in t.iterrows()
        ]

    def points(self, x: pd.DataFrame) -> pd.DataFrame:
        """Each row's points per feature (columns in feature order); they sum to `score` up to rounding."""
        bins = self.bin_labels(x)
        out = {}
        for name in self.names:
            rows = self._table[self._table["Variable"] == name]
            out[name] = rows["Points"].to_numpy(dtype=float)[bins[name].to_numpy()]
        return pd.DataFrame(out, index=x.index)

    def _indices(self, name: str, values: pd.Series) -> np.ndarray:
        """Each value's row in the feature's points table. optbinning's "indices" put a missing value in
        bin 0; the scorecard scores it by its Missing bin, so it is mapped there."""
        optb = self.model.binning_process_.get_binned_variable(name)
        idx = np.asarray(optb.transform(values.to_numpy(), metric="indices"), dtype=int)
        labels = self._table[self._table["Variable"] == name]["Bin"].astype(str).tolist()
        return np.where(values.isna().to_numpy(), labels.index("Missing"), idx)

    def best_points(self) -> dict[str, float]:
        """The most points each feature gives a development loan (its best bin that held any): the reference
        of the reason codes."""
        t = self._table[self._table["Count"] > 0]
        return {name: float(t[t["Variable"] == name]["Points"].max()) for name in self.names}

    def bin_labels(self, x: pd.DataFrame) -> pd.DataFrame:
        """Each row's bin per feature, as its row number in the feature's points table (the per-feature PSI
        counts them; `points` looks them up)."""
        frame = self._frame(x)
        out = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in self.names:
                out[name] = self._indices(name, frame[name])
        return pd.DataFrame(out, index=x.index)

    def information_values(self) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = self.model.binning_process_.summary()
        return {str(r["name"]): float(r["iv"]) for _, r in summary.iterrows()}


def fit_scorecard(
    x: pd.DataFrame,
    y: pd.Series | np.ndarray,
    specs: Sequence[SpecLike],
    *,
    categorical: Sequence[str] = (),
    min_bin_size: float = 0.05,
    max_n_bins: int = 6,
) -> Scorecard:
    """Fit the scorecard on a development frame `x` (one column per spec) and its 0/1 labels `y`.

    Numeric features are binned with a monotonic event-rate trend in the direction the spec states
    (`risk_when="high"`: ascending, "low": descending, anything else: optbinning's "auto"); categorical
    ones are binned by event rate. A feature whose bins carry
    no information (one bin) simply gets the same points for every loan."""
    from optbinning import BinningProcess
    from optbinning import Scorecard as OptScorecard
    from sklearn.linear_model import LogisticRegression

    names = [s.name for s in specs]
    params: dict[str, dict[str, Any]] = {}
    for s in specs:
        if s.name in categorical:
            params[s.name] = {"max_n_bins": max_n_bins}
        else:
            trend = {"high": "ascending", "low": "descending"}.get(s.risk_when, "auto")
            params[s.name] = {"monotonic_trend": trend, "max_n_bins": max_n_bins}
    process = BinningProcess(
        names,
        categorical_variables=list(categorical) or None,
        min_bin_size=min_bin_size,
        binning_fit_params=params,
    )
    model = OptScorecard(
        binning_process=process,
        estimator=LogisticRegression(solver="lbfgs", max_iter=1000),
        scaling_method="pdo_odds",
        scaling_method_params={"pdo": PDO, "odds": BASE_ODDS, "scorecard_points": BASE_SCORE},
        intercept_based=False,
        reverse_scorecard=False,
    )
    frame = x[names].copy()
    for name in names:
        if name not in categorical:
            frame[name] = frame[name].astype(float)
    with warnings.catch_warnings(), _python_keeps_sigint():
        warnings.simplefilter("ignore")
        model.fit(frame, np.asarray(y, dtype=int))
    return Scorecard(model, specs, categorical)


@contextlib.contextmanager
def _python_keeps_sigint() -> Iterator[None]:
    """OR-Tools (optbinning's solver) installs its own SIGINT handler, which ends the process at once on
    Ctrl-C: `fundflow up` would then leave its chain node running. Python's handler is put back after."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    try:
        yield
    finally:
        if main and previous is not None:
            signal.signal(signal.SIGINT, previous)
