"""A synthetic feature frame of the FEATURES' shape, for benchmarks and tests of the models only (never to
train a bank's model): a hidden propensity p ~ Beta(2, 5) per loan moves every feature in its risky direction
(plus noise), every fourth feature is missing for a quarter of the loans, and the label is bad with
probability 1 / (1 + exp(4 − 7 p)). Model time and learnability depend on rows, columns and signal, not on
where the numbers came from; features computed from a mirror are `ledger.scoring.features`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from ledger.scoring.features import FEATURES

__all__ = ["synthetic_frame"]


def synthetic_frame(loans: int, snapshots: int = 1, seed: int = 5) -> pd.DataFrame:
    """Columns `loan_id, as_of, <FEATURES...>, bad`: `loans` loans at `snapshots` monthly dates."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 31, tzinfo=UTC)
    hidden = rng.beta(2, 5, loans)
    ids = [f"0x{i:064x}" for i in range(loans)]
    frames = []
    for s in range(snapshots):
        h = np.clip(hidden + rng.normal(0, 0.05, loans), 0, 1)
        columns: dict[str, object] = {"loan_id": ids, "as_of": start + timedelta(days=30 * s)}
        for i, f in enumerate(FEATURES):
            signal = h if f.risk_when == "high" else 1 - h
            value = np.clip(signal * (1 + i % 3) + rng.normal(0, 0.3, loans), 0, None)
            if i % 4 == 3:
                value = np.where(rng.random(loans) < 0.25, np.nan, value)
            columns[f.name] = value
        columns["bad"] = (rng.random(loans) < 1 / (1 + np.exp(-(-4 + 7 * h)))).astype(int)
        frames.append(pd.DataFrame(columns))
    return pd.concat(frames, ignore_index=True)
