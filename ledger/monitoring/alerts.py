"""Alerts: what the monitoring rules found, and what people did about it.

An alert is keyed by (rule, loan, cause key), so a cause raises one alert however often the rules run. Its
lifecycle is open -> acknowledged -> resolved, each step recording who and when. Resolving is a person's
call and re-evaluation never reopens it while the same cause persists. When a cause goes away on its own
(the payee confirmed, the installment was paid) the monitor resolves the alert as `SYSTEM` with a note;
should that cause come back, the monitor reopens it. An alert built on events a reorg orphaned is deleted.

`WebhookDelivery` is the outbox: one row per new alert and configured URL, written in the same transaction
as the alert, delivered by `ledger.monitoring.webhooks`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from ledger.errors import NotFoundError, ValidationError

__all__ = [
    "ALERT_STATES",
    "SYSTEM",
    "Alert",
    "AlertBase",
    "AlertPublic",
    "WebhookDelivery",
    "acknowledge",
    "alert_payload",
    "get_alert",
    "resolve",
]

ALERT_STATES = ("open", "acknowledged", "resolved")
SYSTEM = "system"
_JSON = sa.JSON()


def _now() -> datetime:
    return datetime.now(UTC)


class AlertBase(SQLModel):
    rule: str = Field(sa_type=sa.String(40), index=True)
    severity: str = Field(sa_type=sa.String(12), index=True)
    loan_id: str = Field(sa_type=sa.String(66))
    cause_key: str = Field(sa_type=sa.String(200))
    title: str = Field(sa_type=sa.String(300))
    explanation: str = Field(sa_type=sa.Text)
    lot_ids: list[str] = Field(default_factory=list, sa_type=_JSON)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    source_block: int = Field(sa_type=sa.BigInteger, description="newest block of the events it rests on")
    state: str = Field(default="open", sa_type=sa.String(12), index=True)
    raised_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    raised_chain_time: int = Field(sa_type=sa.BigInteger, description="chain time when first raised")
    updated_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    acknowledged_by: str | None = Field(default=None, sa_type=sa.String(200))
    acknowledged_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    resolved_by: str | None = Field(default=None, sa_type=sa.String(200))
    resolved_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    resolution_note: str | None = Field(default=None, sa_type=sa.Text)


class Alert(AlertBase, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        sa.UniqueConstraint("rule", "loan_id", "cause_key", name="uq_alerts_cause"),
        sa.Index("ix_alerts_loan_state", "loan_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)


class AlertPublic(AlertBase):
    id: int


class WebhookDelivery(SQLModel, table=True):
    """One alert event to deliver to one URL; `delivery_id` travels in the request for deduplication."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    delivery_id: str = Field(primary_key=True, sa_type=sa.String(36))
    alert_id: int = Field(index=True)
    url: str = Field(sa_type=sa.String(2000))
    event: str = Field(sa_type=sa.String(40))
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    state: str = Field(default="pending", sa_type=sa.String(12), description="pending, delivered or failed")
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    delivered_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


def _table() -> sa.Table:
    return Alert.__table__  # type: ignore[attr-defined,no-any-return]


def alert_payload(row: Any) -> dict[str, Any]:
    """An alert row as plain JSON (what webhooks and the API send)."""
    data = AlertPublic.model_validate(dict(row._mapping) if hasattr(row, "_mapping") else row)
    return data.model_dump(mode="json")


def get_alert(conn: sa.Connection, alert_id: int) -> AlertPublic:
    row = conn.execute(sa.select(_table()).where(_table().c.id == alert_id)).first()
    if row is None:
        raise NotFoundError(f"alert {alert_id} does not exist", hint="list alerts to find its id")
    return AlertPublic.model_validate(dict(row._mapping))


def acknowledge(engine: Engine, alert_id: int, *, by: str, note: str | None = None) -> AlertPublic:
    """Mark an open alert as seen by `by`; acknowledging twice keeps the first acknowledgement."""
    t = _table()
    with engine.begin() as conn:
        alert = get_alert(conn, alert_id)
        if alert.state == "resolved":
            raise ValidationError(
                f"alert {alert_id} is already resolved (by {alert.resolved_by})",
                hint="a resolved alert needs no acknowledgement",
            )
        if alert.state == "open":
            now = _now()
            conn.execute(
                sa.update(t)
                .where(t.c.id == alert_id)
                .values(state="acknowledged", acknowledged_by=by, acknowledged_at=now, updated_at=now)
            )
        return get_alert(conn, alert_id)


def resolve(engine: Engine, alert_id: int, *, by: str, note: str) -> AlertPublic:
    """Close an alert with a written note; re-evaluation does not reopen it while its cause persists."""
    if not note.strip():
        raise ValidationError("resolving an alert needs a note saying what was done about it")
    t = _table()
    with engine.begin() as conn:
        alert = get_alert(conn, alert_id)
        if alert.state == "resolved":
            raise ValidationError(
                f"alert {alert_id} was already resolved by {alert.resolved_by} at {alert.resolved_at}",
                hint="nothing to do",
            )
        now = _now()
        values: dict[str, Any] = {
            "state": "resolved",
            "resolved_by": by,
            "resolved_at": now,
            "resolution_note": note.strip(),
            "updated_at": now,
        }
        if alert.acknowledged_at is None:
            values.update(acknowledged_by=by, acknowledged_at=now)
        conn.execute(sa.update(t).where(t.c.id == alert_id).values(**values))
        return get_alert(conn, alert_id)
