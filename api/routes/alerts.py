"""Monitoring alerts: list with filters, one alert, acknowledge and resolve.

Visibility: a lender sees the alerts of its bank's loans, an auditor sees every alert, enterprises none
(alerts are the bank's view of its borrowers). Acknowledging and resolving are the servicing lender's.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.access import resolve_loan_id
from api.deps import Caller, Offset, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from ledger.errors import NotFoundError, PermissionDeniedError
from ledger.mirror.models import Loan
from ledger.monitoring.alerts import ALERT_STATES, Alert, AlertPublic, acknowledge, resolve
from ledger.monitoring.rules import RULES, Severity

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/alerts",
    tags=["alerts"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422)},
)

alerts_t: sa.Table = Alert.__table__  # type: ignore[attr-defined]
loans_t: sa.Table = Loan.__table__  # type: ignore[attr-defined]


class AlertPage(BaseModel):
    items: list[AlertPublic]
    total: int
    limit: int
    offset: int


class AcknowledgeRequest(BaseModel):
    note: str | None = Field(None, max_length=2000)


class ResolveRequest(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="what was done about it")


def _scope(caller: Caller, action: str = "see monitoring alerts") -> Any:
    """A SQL condition on alerts for what the caller may see (None: all)."""
    if caller.role == "auditor":
        return None
    caller.require("lender", "auditor", action=action)
    return alerts_t.c.loan_id.in_(sa.select(loans_t.c.loan_id).where(loans_t.c.lender_org == caller.org_id))


# Row ids are signed 64-bit in SQL: a larger one is a 422, not a driver overflow.
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _visible(session: Session, caller: Caller, alert_id: int) -> AlertPublic:
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


@router.get("", response_model=AlertPage, summary="Alerts, newest first, with filters and pagination")
def list_alerts(
    caller: ParticipantDep,
    session: SessionDep,
    loan: Annotated[str | None, Query(description="loan id or loan number")] = None,
    rule: Annotated[str | None, Query(description=f"one of {', '.join(RULES)}")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(ALERT_STATES) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> AlertPage:
    conditions = []
    scope = _scope(caller)
    if scope is not None:
        conditions.append(scope)
    if loan is not None:
        conditions.append(alerts_t.c.loan_id == resolve_loan_id(session, loan))
    if rule is not None:
        conditions.append(alerts_t.c.rule == rule)
    if severity is not None:
        conditions.append(alerts_t.c.severity == str(severity))
    if state is not None:
        conditions.append(alerts_t.c.state == state)
    total = session.execute(sa.select(sa.func.count()).select_from(alerts_t).where(*conditions)).scalar_one()
    rows = session.execute(
        sa.select(alerts_t).where(*conditions).order_by(alerts_t.c.id.desc()).limit(limit).offset(offset)
    ).all()
    items = [AlertPublic.model_validate(dict(r._mapping)) for r in rows]
    return AlertPage(items=items, total=int(total), limit=limit, offset=offset)


@router.get("/{alert_id}", response_model=AlertPublic, summary="One alert")
def get_one(alert_id: AlertId, caller: ParticipantDep, session: SessionDep) -> AlertPublic:
    return _visible(session, caller, alert_id)


def _lender_of(session: Session, caller: Caller, alert_id: int, action: str) -> None:
    alert = _visible(session, caller, alert_id)
    caller.require("lender", action=action)
    lender_org = session.execute(
        sa.select(loans_t.c.lender_org).where(loans_t.c.loan_id == alert.loan_id)
    ).scalar()
    if lender_org != caller.org_id:
        raise PermissionDeniedError(f"{caller.name} does not service this loan and cannot {action}.")


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic, summary="Acknowledge an alert (lender)")
def acknowledge_alert(
    alert_id: AlertId,
    body: AcknowledgeRequest,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
) -> AlertPublic:
    _lender_of(session, caller, alert_id, "acknowledge alerts")
    return acknowledge(services.engine, alert_id, by=f"{caller.name} ({caller.address})", note=body.note)


@router.post(
    "/{alert_id}/resolve", response_model=AlertPublic, summary="Resolve an alert with a note (lender)"
)
def resolve_alert(
    alert_id: AlertId,
    body: ResolveRequest,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
) -> AlertPublic:
    _lender_of(session, caller, alert_id, "resolve alerts")
    return resolve(services.engine, alert_id, by=f"{caller.name} ({caller.address})", note=body.note)
