"""Where trained models and loan scores are kept: the artifact as a joblib file in the data directory
(`<data_dir>/models/`), its SHA-256 and model card in `score_models`, each loan's scores in `loan_scores`
(tables: `ledger.store.scores`).

A model file is a pickle, and loading a pickle runs code: `load_model` refuses a file whose SHA-256 is not
the one recorded when it was trained, so only the artifact the bank trained is ever loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.errors import StorageError
from ledger.scoring.model import BehaviourModel, LoanScore
from ledger.scoring.modelcard import build_card
from ledger.store.scores import latest_model_row, latest_scores, models_table, scores_table

__all__ = [
    "KIND",
    "latest_model_row",
    "latest_scores",
    "load_model",
    "save_model",
    "save_scores",
    "update_card",
]

KIND = "behaviour_scorecard"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def save_model(
    engine: Engine, model: BehaviourModel, data_dir: Path, *, german: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    """Write the artifact and its `score_models` row; returns (model id, model card)."""
    import joblib

    created = datetime.now(UTC)
    folder = Path(data_dir) / "models"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"behaviour-{created.strftime('%Y%m%dT%H%M%S%f')}.joblib"
    joblib.dump(model, path)
    sha = _sha256(path)
    snaps = model.facts["snapshots"]
    t = models_table()
    with engine.begin() as conn:
        model_id = int(
            conn.execute(
                sa.insert(t)
                .values(
                    created=created,
                    kind=KIND,
                    trained_on=model.trained_on,
                    snapshot_from=datetime.fromisoformat(snaps["from"]).replace(tzinfo=UTC),
                    snapshot_to=datetime.fromisoformat(snaps["to"]).replace(tzinfo=UTC),
                    card={},
                    artifact_path=str(path),
                    artifact_sha256=sha,
                )
                .returning(t.c.id)
            ).scalar_one()
        )
        card = build_card(model, model_id=model_id, artifact_sha256=sha, german=german, created=created)
        conn.execute(sa.update(t).where(t.c.id == model_id).values(card=card))
    return model_id, card


def update_card(engine: Engine, model_id: int, card: dict[str, Any]) -> None:
    t = models_table()
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == model_id).values(card=card))


def load_model(engine: Engine, model_id: int | None = None) -> tuple[Any, BehaviourModel]:
    """(row, model) of the newest model (or `model_id`), its artifact checked against the recorded hash."""
    import joblib

    with engine.connect() as conn:
        row = latest_model_row(conn, model_id)
    path = Path(row.artifact_path)
    if not path.is_file():
        raise StorageError(
            f"model {row.id}'s artifact {path} is missing",
            hint="train again (`fundflow score train`) or restore the data directory's models/ folder",
        )
    if _sha256(path) != row.artifact_sha256:
        raise StorageError(
            f"model {row.id}'s artifact {path} does not match the SHA-256 recorded when it was trained; "
            "it was not loaded",
            hint="restore the original file or train again",
        )
    model = joblib.load(path)
    if not isinstance(model, BehaviourModel):
        raise StorageError(f"{path} does not hold a behaviour model", hint="train again")
    return row, model


def save_scores(engine: Engine, model_id: int, as_of: datetime, scores: Sequence[LoanScore]) -> int:
    """Store one score per loan for (model, as_of), replacing an earlier run for the same pair."""
    t = scores_table()
    when = _utc(as_of)
    now = datetime.now(UTC)
    rows = [
        {
            "loan_id": s.loan_id,
            "model_id": model_id,
            "as_of": when,
            "score": s.score,
            "band": s.band,
            "pd": s.pd,
            "reasons": [r.as_json() for r in s.reasons],
            "scored_at": now,
        }
        for s in scores
    ]
    with engine.begin() as conn:
        conn.execute(sa.delete(t).where(t.c.model_id == model_id, t.c.as_of == when))
        if rows:
            conn.execute(sa.insert(t), rows)
    return len(rows)
