"""The behaviour score's tables (issue 21): `score_models`, one row per trained model (its model card as
JSON, the artifact's path in the data directory and SHA-256), and `loan_scores`, one row per loan, model
and as-of date (score, band, probability of going bad, the three reasons).

Off-chain and the bank's own: never derived from the chain, never on it. They live in the store so that
the monitoring rules can read a loan's bands (the band-crossing alert, the visit frequency) without
importing the models; `ledger.scoring.store` writes and reads them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

__all__ = ["LoanScoreRow", "ScoreModelRow", "score_history"]

_JSON = sa.JSON()


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


def _t() -> sa.Table:
    return LoanScoreRow.__table__  # type: ignore[attr-defined,no-any-return]


def score_history(conn: sa.Connection, loan_id: str, limit: int = 24) -> tuple[tuple[int, str], ...]:
    """(as-of timestamp, band) of the loan's latest scores, newest first; one per as-of date (the latest
    model's when several scored the same date)."""
    t = _t()
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
