"""Train, evaluate and apply the behaviour score on a mirror: what `fundflow score train | evaluate | apply`
and `fundflow up` run.

- train: monthly snapshots from the first mirrored block up to the newest one whose label window is fully
  observed (as_of + horizon <= newest block), the dataset of part A (`build_dataset`), `model.train`, the
  artifact and card stored (`store.save_model`).
- evaluate: the stored model's card with the German-credit check added, written as Markdown and JSON.
- apply: every loan open at the chain's clock (the newest mirrored block), scored and stored, then the
  monitoring rules re-run for the scored loans, so a worse band raises `score_band_worse` at once and a D or
  E band shortens the site-visit interval.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.config import Settings
from ledger.errors import ValidationError
from ledger.monitoring.monitor import Monitor
from ledger.monitoring.rules import RULES
from ledger.scoring.features import FEATURES, compute_features
from ledger.scoring.labels import build_dataset, latest_block_time
from ledger.scoring.model import BehaviourModel, score_frame, train
from ledger.scoring.modelcard import build_card, card_markdown
from ledger.scoring.store import load_model, save_model, save_scores, update_card

__all__ = [
    "SCORE_RULES",
    "ApplyResult",
    "apply_scores",
    "evaluate_model",
    "first_block_time",
    "snapshots",
    "train_model",
]

SCORE_RULES = ("score_band_worse", "missed_site_visit")
"""The monitoring rules a new score can change."""

Step = Callable[[str, int, int], None]
"""progress(stage, done, total)"""


def _quiet(_stage: str, _done: int, _total: int) -> None:
    return None


def first_block_time(engine: Engine) -> datetime | None:
    blocks = sa.table("blocks", sa.column("timestamp"))
    with engine.connect() as conn:
        ts = conn.execute(sa.select(sa.func.min(blocks.c.timestamp))).scalar()
    return None if ts is None else datetime.fromtimestamp(int(ts), UTC)


def snapshots(engine: Engine, horizon_days: int, every_days: int = 30) -> list[datetime]:
    """Snapshot dates every `every_days` from a month after the first mirrored block to the newest date
    whose label window is fully observed."""
    first, last = first_block_time(engine), latest_block_time(engine)
    if first is None or last is None:
        return []
    out, when = [], first + timedelta(days=every_days)
    while when + timedelta(days=horizon_days) <= last:
        out.append(when)
        when += timedelta(days=every_days)
    return out


def train_model(
    engine: Engine, settings: Settings, *, trained_on: str, progress: Step | None = None
) -> tuple[int, dict[str, Any]]:
    """Build the dataset from the mirror, train, store; (model id, card)."""
    say = progress or _quiet
    horizon, threshold = settings.score_horizon_days, settings.score_label_dpd
    dates = snapshots(engine, horizon)
    if len(dates) < 2:
        raise ValidationError(
            f"the mirror holds too little history to train: a label needs {horizon} days after its snapshot "
            f"and an out-of-time split needs two snapshots, so the mirror must span at least "
            f"{horizon + 60} days (it spans {len(dates)} usable snapshot(s))",
            hint="index more history, or lower FUNDFLOW_SCORE_HORIZON_DAYS for a trial",
        )
    frames = []
    for i, when in enumerate(dates):
        say("dataset", i, len(dates))
        frames.append(build_dataset(engine, [when], horizon, threshold, settings=settings))
    say("dataset", len(dates), len(dates))
    filled = [f for f in frames if len(f)]
    data = pd.concat(filled, ignore_index=True) if filled else None
    if data is None or data.empty:
        raise ValidationError("no loan had a fully observed label window", hint="index more history")
    begun: list[str] = []  # the model's stages (scorecard, challenger, evaluation), each a bar of its own

    def step(stage: str) -> None:
        if begun:
            say(begun[-1], 1, 1)
        begun.append(stage)
        say(stage, 0, 1)

    try:
        model = train(
            data,
            FEATURES,
            trained_on=trained_on,
            label={"horizon_days": horizon, "dpd_threshold": threshold},
            progress=step,
        )
    except ValueError as exc:
        raise ValidationError(str(exc), hint="train on a longer history") from exc
    for stage in begun[-1:]:
        say(stage, 1, 1)
    return save_model(engine, model, settings.data_dir)


def evaluate_model(
    engine: Engine, out: Path, *, model_id: int | None = None, german: bool = True
) -> tuple[Path, Path, dict[str, Any]]:
    """Write the model card of the newest (or `model_id`) model as `out` (.md) and `out` with .json; the
    German-credit check is run and added. Returns (markdown path, json path, card)."""
    from ledger.scoring.german import german_check

    row, model = load_model(engine, model_id)
    check = german_check() if german else row.card.get("german_credit")
    card = build_card(model, model_id=row.id, artifact_sha256=row.artifact_sha256, german=check,
                      created=row.created)  # fmt: skip
    update_card(engine, row.id, card)
    md = out if out.suffix == ".md" else out.with_suffix(".md")
    js = md.with_suffix(".json")
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(card_markdown(card), encoding="utf-8")
    js.write_text(json.dumps(card, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return md, js, card


@dataclass(frozen=True)
class ApplyResult:
    model_id: int
    as_of: datetime
    scored: int
    bands: dict[str, int]
    alerts_opened: int


def apply_scores(
    engine: Engine,
    settings: Settings,
    *,
    as_of: datetime | None = None,
    model: tuple[Any, BehaviourModel] | None = None,
    progress: Step | None = None,
) -> ApplyResult:
    """Score every loan open at `as_of` (default: the newest mirrored block's time) and store the scores,
    then run the monitoring rules for them."""
    say = progress or _quiet
    row, fitted = model or load_model(engine)
    when = as_of or latest_block_time(engine)
    if when is None:
        raise ValidationError("the mirror is empty: nothing to score", hint="run the indexer first")
    say("features", 0, 1)
    frame = compute_features(engine, when, settings=settings)
    say("features", 1, 1)
    say("scoring", 0, 1)
    scored = score_frame(fitted, frame)
    save_scores(engine, int(row.id), when, scored)
    say("scoring", 1, 1)
    say("alerts", 0, 1)
    # Only the rules a score moves: the band alert and the site-visit interval (the others run with the
    # indexer as always; a Monitor reconciles only the rules it evaluates).
    monitor = Monitor.from_settings(settings, rules={name: RULES[name] for name in SCORE_RULES})
    with engine.begin() as conn:
        result = monitor.evaluate(conn, [s.loan_id for s in scored])
    say("alerts", 1, 1)
    bands: dict[str, int] = {}
    for s in scored:
        bands[s.band] = bands.get(s.band, 0) + 1
    return ApplyResult(int(row.id), when, len(scored), bands, len(result.raised))
