"""A synthetic, learnable behaviour dataset of the shape part A's `build_dataset` gives (loan_id, as_of, one
float column per feature, bad), for testing the models without driving a chain: a hidden propensity moves
each feature and the label, as the simulator's generative model does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

__all__ = ["SPECS", "Spec", "feature_dataset", "synthetic_dataset"]


@dataclass(frozen=True)
class Spec:
    name: str
    en: str
    zh: str
    unit: str
    risk_when: str


SPECS = (
    Spec("days_past_due_now", "days past due now", "当前逾期天数", "days", "high"),
    Spec("late_instalments_12m", "late instalments in 12 months", "近12个月逾期期数", "count", "high"),
    Spec("misused_share", "share paid outside the declared use", "挪用资金占比", "share", "high"),
    Spec("collateral_cover", "collateral cover", "抵押覆盖率", "ratio", "low"),
)


def synthetic_dataset(loans: int = 600, snapshots: int = 6, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2024, 1, 31, tzinfo=UTC)
    rows = []
    hidden = rng.beta(2, 5, loans)
    for s in range(snapshots):
        as_of = start + timedelta(days=30 * s)
        h = np.clip(hidden + rng.normal(0, 0.05, loans), 0, 1)
        dpd = np.where(rng.random(loans) < h, rng.integers(1, 80, loans), 0).astype(float)
        late = rng.poisson(4 * h).astype(float)
        misused = np.clip(rng.normal(0.3 * h, 0.05), 0, 1)
        cover = np.where(rng.random(loans) < 0.2, np.nan, np.clip(rng.normal(1.6 - h, 0.2), 0.1, 3))
        bad = (rng.random(loans) < 1 / (1 + np.exp(-(-4 + 7 * h)))).astype(int)
        rows.append(
            pd.DataFrame(
                {
                    "loan_id": [f"0x{i:064x}" for i in range(loans)],
                    "as_of": as_of,
                    "days_past_due_now": dpd,
                    "late_instalments_12m": late,
                    "misused_share": misused,
                    "collateral_cover": cover,
                    "bad": bad,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def feature_dataset(loans: int = 400, snapshots: int = 4, seed: int = 5) -> pd.DataFrame:
    """The same generative idea over part A's FEATURES (ledger.scoring.synthetic)."""
    from ledger.scoring.synthetic import synthetic_frame

    return synthetic_frame(loans, snapshots, seed)
