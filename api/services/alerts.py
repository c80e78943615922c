"""Monitoring alerts: who sees them, lists with filters, one alert, acknowledging and resolving.

Visibility: a lender sees the alerts of its bank's loans, an auditor sees every alert, enterprises none
(alerts are the bank's view of its borrowers). Acknowledging and resolving are the servicing lender's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session

from api.deps import Caller
from api.services import Services
from api.services.access import resolve_loan_id
from ledger.errors import NotFoundError, PermissionDeniedError
from ledger.mirror.read import LoanScope, Mirror
from ledger.monitoring.alerts import Alert, AlertPublic, acknowledge, resolve

__all__ = [
    "AlertPage",
    "acknowledge_alert",
    "get_alert",
    "list_alerts",
    "loan_alerts",
    "open_alert_counts",
    "resolve_alert",
    "sees_alerts",
]

alerts_t: sa.Table = Alert.__table__  # type: ignore[attr-defined]


class AlertPage(BaseModel):
    items: list[AlertPublic]
    total: int
    limit: int
    offset: int


def sees_alerts(caller: Caller) -> bool:
    return caller.role in ("lender", "auditor")


def _scope(caller: Caller, action: str = "see monitoring alerts") -> Any:
    """A SQL condition on alerts for what the caller may see (None: all); 403 for enterprises. A lender sees
    the alerts of its own loans (the read model's scope, as a subquery of the alerts query)."""
    if caller.role == "auditor":
        return None
    caller.require("lender", "auditor", action=action)
    return alerts_t.c.loan_id.in_(LoanScope.of_lender(caller.org_id).loan_ids())


def list_alerts(
    session: Session,
    caller: Caller,
    *,
    loan: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    state: str | None = None,
    unresolved: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> AlertPage:
    """A page of the alerts the caller sees, newest first; `loan` is a loan id or number; `unresolved`:
    every state but resolved."""
    conditions = []
    scope = _scope(caller)
    if scope is not None:
        conditions.append(scope)
    if loan is not None:
        conditions.append(alerts_t.c.loan_id == resolve_loan_id(session, loan, caller))
    if rule is not None:
        conditions.append(alerts_t.c.rule == rule)
    if severity is not None:
        conditions.append(alerts_t.c.severity == severity)
    if state is not None:
        conditions.append(alerts_t.c.state == state)
    if unresolved:
        conditions.append(alerts_t.c.state != "resolved")
    total = session.execute(sa.select(sa.func.count()).select_from(alerts_t).where(*conditions)).scalar_one()
    rows = session.execute(
        sa.select(alerts_t).where(*conditions).order_by(alerts_t.c.id.desc()).limit(limit).offset(offset)
    ).all()
    items = [AlertPublic.model_validate(dict(r._mapping)) for r in rows]
    return AlertPage(items=items, total=int(total), limit=limit, offset=offset)


def loan_alerts(session: Session, caller: Caller, loan_id: str) -> list[AlertPublic]:
    """The unresolved alerts of a loan the caller sees, oldest first; none for callers who see no alerts."""
    if not sees_alerts(caller):
        return []
    query = sa.select(alerts_t).where(alerts_t.c.loan_id == loan_id, alerts_t.c.state != "resolved")
    scope = _scope(caller)
    if scope is not None:
        query = query.where(scope)
    rows = session.execute(query.order_by(alerts_t.c.id))
    return [AlertPublic.model_validate(dict(r._mapping)) for r in rows]


def open_alert_counts(session: Session, caller: Caller, loan_ids: Iterable[str]) -> dict[str, int]:
    """How many unresolved alerts each loan has, as far as the caller sees alerts."""
    ids = sorted(set(loan_ids))
    if not ids or not sees_alerts(caller):
        return {}
    query = sa.select(alerts_t.c.loan_id, sa.func.count()).where(
        alerts_t.c.loan_id.in_(ids), alerts_t.c.state != "resolved"
    )
    scope = _scope(caller)
    if scope is not None:
        query = query.where(scope)
    return {str(i): int(n) for i, n in session.execute(query.group_by(alerts_t.c.loan_id))}


def get_alert(session: Session, caller: Caller, alert_id: int) -> AlertPublic:
    query = sa.select(alerts_t).where(alerts_t.c.id == alert_id)
    scope = _scope(caller)
    if scope is not None:
        query = query.where(scope)
    row = session.execute(query).first()
    if row is None:
        raise NotFoundError(
            f"No alert {alert_id} is visible to {caller.name}.",
            hint="It does not exist, was withdrawn by a reorg, or concerns another bank's loan.",
        )
    return AlertPublic.model_validate(dict(row._mapping))


def _servicing_lender(session: Session, caller: Caller, alert_id: int, action: str) -> None:
    alert = get_alert(session, caller, alert_id)
    caller.require("lender", action=action)
    lender_org = Mirror(session).lender_orgs([alert.loan_id]).get(alert.loan_id)
    if lender_org != caller.org_id:
        raise PermissionDeniedError(f"{caller.name} does not service this loan and cannot {action}.")


def acknowledge_alert(
    session: Session, services: Services, caller: Caller, alert_id: int, note: str | None = None
) -> AlertPublic:
    _servicing_lender(session, caller, alert_id, "acknowledge alerts")
    return acknowledge(services.engine, alert_id, by=f"{caller.name} ({caller.address})", note=note)


def resolve_alert(
    session: Session, services: Services, caller: Caller, alert_id: int, note: str
) -> AlertPublic:
    _servicing_lender(session, caller, alert_id, "resolve alerts")
    return resolve(services.engine, alert_id, by=f"{caller.name} ({caller.address})", note=note)
