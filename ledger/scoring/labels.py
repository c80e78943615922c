"""The behaviour score's label and training set: "reaches 90+ days past due within the next 12 months".

`build_labels(engine, as_of)` is 1 for a loan that reaches at least `dpd_threshold` days past due on some day
in (as_of, as_of + horizon] (or is written off in that window), 0 otherwise. It reads the mirror up to the
window's end and measures days past due exactly as the features do (`ledger.scoring.features.dpd_spells`):
a spell starting on day s and paid on day e (NaN: unpaid) is d days past due on day s + d while s + d < e, so
the loan reaches the threshold T on day s + T if s + T < e. Loans already at T or more on the as-of day are
left out (they are already bad); so are loans not open then (not opened yet, or closed before).
Defaults come from the settings FUNDFLOW_SCORE_LABEL_DPD and FUNDFLOW_SCORE_HORIZON_DAYS.

`build_dataset(engine, snapshots)` stacks features and label for several as-of dates, keeping only the
snapshots whose label window is fully observed: as_of + horizon at or before the newest indexed block's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.config import Settings
from ledger.protocol.codes import LoanStatus
from ledger.scoring.features import DAY, FEATURE_NAMES, BlockTimes, as_of_block, compute_features, dpd_spells

__all__ = ["build_dataset", "build_labels", "latest_block_time"]


def _settings_defaults(
    horizon_days: int | None, dpd_threshold: int | None, settings: Settings | None = None
) -> tuple[int, int]:
    if horizon_days is not None and dpd_threshold is not None:
        return horizon_days, dpd_threshold
    s = settings or Settings()
    return (
        s.score_horizon_days if horizon_days is None else horizon_days,
        s.score_label_dpd if dpd_threshold is None else dpd_threshold,
    )


def build_labels(
    engine: Engine,
    as_of: datetime,
    horizon_days: int | None = None,
    dpd_threshold: int | None = None,
    loan_ids: Sequence[str] | None = None,
) -> pd.Series:
    """Per loan open on `as_of` and below the threshold then (index loan_id): 1 when it reaches
    `dpd_threshold` days past due (or is written off) in (as_of, as_of + horizon_days], else 0. Defaults:
    365 days, 90 days past due (FUNDFLOW_SCORE_HORIZON_DAYS, FUNDFLOW_SCORE_LABEL_DPD)."""
    horizon, threshold = _settings_defaults(horizon_days, dpd_threshold)
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    end = as_of + timedelta(days=horizon)
    start_day = int(as_of.timestamp()) // DAY
    end_day = int(end.timestamp()) // DAY
    with engine.connect() as conn:
        chain_id, block_then = as_of_block(conn, as_of)
        _, block_end = as_of_block(conn, end)
        if block_then < 0:
            return _empty()
        times = BlockTimes(conn, chain_id)
        loans_then = dpd_spells(conn, chain_id, block_then, loan_ids, times=times)
        open_then = loans_then.loans
        open_then = open_then[open_then["closed_block"].isna() | (open_then["closed_block"] > block_then)]
        dpd_then = loans_then.dpd_at(start_day).reindex(open_then["loan_id"])
        eligible = dpd_then[dpd_then < threshold].index
        if not len(eligible):
            return _empty()
        later = dpd_spells(conn, chain_id, block_end, list(eligible), times=times)
    f = later.frame
    reach = f["start"] + threshold
    hit = f[(reach > start_day) & (reach <= end_day) & ((f["end"].isna()) | (reach < f["end"]))]
    bad = pd.Series(0, index=pd.Index(eligible, name="loan_id"), dtype="int64", name="bad")
    bad[bad.index.isin(hit["loan_id"])] = 1
    loans = later.loans.set_index("loan_id")
    written_off = loans[
        (loans["closed_status"] == int(LoanStatus.WRITTEN_OFF))
        & (loans["closed_ts"] // DAY > start_day)
        & (loans["closed_ts"] // DAY <= end_day)
    ].index
    bad[bad.index.isin(written_off)] = 1
    return bad


def _empty() -> pd.Series:
    return pd.Series([], index=pd.Index([], name="loan_id", dtype=object), dtype="int64", name="bad")


def latest_block_time(engine: Engine) -> datetime | None:
    """The newest indexed block's time (None for an empty mirror)."""
    blocks = sa.table("blocks", sa.column("timestamp"))
    with engine.connect() as conn:
        ts = conn.execute(sa.select(sa.func.max(blocks.c.timestamp))).scalar()
    return None if ts is None else datetime.fromtimestamp(int(ts), UTC)


def build_dataset(
    engine: Engine,
    snapshots: Sequence[datetime],
    horizon_days: int | None = None,
    dpd_threshold: int | None = None,
    *,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Columns `loan_id, as_of, <FEATURE_NAMES...>, bad`: each snapshot's features with its label, for the
    snapshots whose label window is fully observed (as_of + horizon <= the newest indexed block's time);
    the others are left out. One row per loan and snapshot; loans excluded from the label (already bad,
    not open) are left out too. Defaults and feature settings from `settings` (else the environment's)."""
    horizon, threshold = _settings_defaults(horizon_days, dpd_threshold, settings)
    latest = latest_block_time(engine)
    frames = []
    for as_of in sorted(snapshots):
        if latest is None or as_of + timedelta(days=horizon) > latest:
            continue
        labels = build_labels(engine, as_of, horizon, threshold)
        if not len(labels):
            continue
        features = compute_features(engine, as_of, list(labels.index), settings=settings)
        joined = features.join(labels, how="inner")
        joined.insert(0, "as_of", as_of)
        frames.append(joined.reset_index())
    if not frames:
        columns = {"loan_id": pd.Series(dtype=object), "as_of": pd.Series(dtype="datetime64[ns, UTC]")}
        columns |= {n: pd.Series(dtype="float64") for n in FEATURE_NAMES}
        columns["bad"] = pd.Series(dtype="int64")
        return pd.DataFrame(columns)
    out = pd.concat(frames, ignore_index=True)
    out["bad"] = out["bad"].astype(np.int64)
    return out[["loan_id", "as_of", *FEATURE_NAMES, "bad"]]
