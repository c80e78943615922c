"""The behaviour score's tables (issue 21): `score_models`, one row per trained model (its model card as
JSON, the artifact's path in the data directory and SHA-256), and `loan_scores`, one row per loan, model
and as-of date (score, band, probability of going bad, the three reasons).

Off-chain and the bank's own: never derived from the chain, never on it. They live in the store so that
the monitoring rules can read a loan's bands (the band-crossing alert, the visit frequency) without
importing the models; `ledger.scoring.store` writes and reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.errors import NotFoundError

__all__ = [
    "LoanScoreRow",
    "ScoreModelRow",
    "latest_model_row",
    "latest_scores",
    "models_table",
    "score_history",
    "scores_table",
]

_JSON = sa.JSON()
IN_LIMIT = 5_000
"""Most loan ids `latest_scores` binds into one IN (SQLite allows 32,766 variables a statement)."""


def _now() -> datetime:
    return datetime.now(UTC)


class ScoreModelRow(SQLModel, table=True):
    __tablename__ = "score_models"

    id: int | None = Field(default=None, primary_key=True)
    created: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    kind: str = Field(sa_type=sa.String(40), description="behaviour_scorecard")
    trained_on: str = Field(sa_type=sa.String(12), description="simulated or mirror")
    snapshot_from: datetime = Field(sa_type=sa.DateTime(timezone=True))
    snapshot_to: datetime = Field(sa_type=sa.DateTime(timezone=True))
    card: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    artifact_path: str = Field(sa_type=sa.String(1000))
    artifact_sha256: str = Field(sa_type=sa.String(64))


class LoanScoreRow(SQLModel, table=True):
    __tablename__ = "loan_scores"
    __table_args__ = (
        sa.UniqueConstraint("loan_id", "model_id", "as_of", name="uq_loan_scores_loan_model_as_of"),
        sa.Index("ix_loan_scores_loan_as_of", "loan_id", "as_of"),
    )

    id: int | None = Field(default=None, primary_key=True)
    loan_id: str = Field(sa_type=sa.String(66))
    model_id: int = Field(foreign_key="score_models.id", index=True)
    as_of: datetime = Field(sa_type=sa.DateTime(timezone=True))
    score: float
    band: str = Field(sa_type=sa.String(1))
    pd: float
    reasons: list[dict[str, Any]] = Field(default_factory=list, sa_type=_JSON)
    scored_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


def scores_table() -> sa.Table:
    return LoanScoreRow.__table__  # type: ignore[attr-defined,no-any-return]


def models_table() -> sa.Table:
    return ScoreModelRow.__table__  # type: ignore[attr-defined,no-any-return]


def latest_model_row(conn: sa.Connection | Any, model_id: int | None = None) -> Any:
    """The newest model's row (or model `model_id`'s); NotFoundError when none was trained."""
    t = models_table()
    query = sa.select(t).order_by(t.c.id.desc()).limit(1)
    if model_id is not None:
        query = sa.select(t).where(t.c.id == model_id)
    row = conn.execute(query).first()
    if row is None:
        raise NotFoundError(
            "no behaviour-score model has been trained" + (f" with id {model_id}" if model_id else ""),
            hint="run `fundflow score train` first",
        )
    return row


def latest_scores(conn: sa.Connection | Any, loan_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """loan id -> its latest score row (newest as-of, then newest model)."""
    t = scores_table()
    ranked = sa.select(
        t,
        sa.func.row_number()
        .over(partition_by=t.c.loan_id, order_by=(t.c.as_of.desc(), t.c.model_id.desc()))
        .label("rank"),
    )
    wanted: set[str] | None = None
    if loan_ids is not None:
        ids = list(loan_ids)
        if not ids:
            return {}
        if len(ids) <= IN_LIMIT:
            ranked = ranked.where(t.c.loan_id.in_(ids))
        else:  # a whole portfolio: more ids than a statement may bind (SQLite); filtered here instead
            wanted = set(ids)
    sub = ranked.subquery()
    rows = conn.execute(sa.select(sub).where(sub.c.rank == 1)).all()
    return {r.loan_id: r for r in rows if wanted is None or r.loan_id in wanted}


def score_history(conn: sa.Connection, loan_id: str, limit: int = 24) -> tuple[tuple[int, str], ...]:
    """(as-of timestamp, band) of the loan's latest scores, newest first; one per as-of date (the latest
    model's when several scored the same date)."""
    t = scores_table()
    rows = conn.execute(
        sa.select(t.c.as_of, t.c.band)
        .where(t.c.loan_id == loan_id)
        .order_by(t.c.as_of.desc(), t.c.model_id.desc())
        .limit(limit * 4)
    ).all()
    out: list[tuple[int, str]] = []
    for as_of, band in rows:
        when = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)
        stamp = int(when.timestamp())
        if out and out[-1][0] == stamp:
            continue
        out.append((stamp, str(band)))
        if len(out) == limit:
            break
    return tuple(out)
