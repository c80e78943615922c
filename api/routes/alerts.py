"""Monitoring alerts: list with filters, one alert, acknowledge and resolve.

Visibility: a lender sees the alerts of its bank's loans, an auditor sees every alert, enterprises none
(alerts are the bank's view of its borrowers). Acknowledging and resolving are the servicing lender's.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import AlertId, Offset, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.services import alerts as alerts_service
from api.services.alerts import AlertOut, AlertPage
from ledger.monitoring.alerts import ALERT_STATES, AlertPublic
from ledger.monitoring.rules import RULES, Severity
from ledger.protocol.dates import day_start

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/alerts",
    tags=["alerts"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422)},
)


class AcknowledgeRequest(BaseModel):
    note: str | None = Field(None, max_length=2000)


class ResolveRequest(BaseModel):
    note: str = Field(min_length=1, max_length=4000, description="what was done about it")


@router.get("", response_model=AlertPage, summary="Alerts, newest first, with filters and pagination")
def list_alerts(
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    loan: Annotated[str | None, Query(description="loan id or loan number")] = None,
    rule: Annotated[str | None, Query(description=f"one of {', '.join(RULES)}")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    state: Annotated[str | None, Query(pattern="^(" + "|".join(ALERT_STATES) + ")$")] = None,
    since: Annotated[
        date | None, Query(description="raised on or after this day (the bank's time zone), e.g. 2026-03-01")
    ] = None,
    until: Annotated[
        date | None, Query(description="raised on or before this day (the bank's time zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
) -> AlertPage:
    zone = services.settings.bank_zone
    page = alerts_service.list_alerts(
        session,
        caller,
        loan=loan,
        rule=rule,
        severity=None if severity is None else str(severity),
        state=state,
        since=None if since is None else day_start(since, zone),
        until=None if until is None else day_start(until + timedelta(days=1), zone),
        limit=limit,
        offset=offset,
    )
    page.items = alerts_service.readable(session, services, page.items)
    return page


@router.get("/{alert_id}", response_model=AlertOut, summary="One alert")
def get_one(
    alert_id: AlertId, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> AlertOut:
    return alerts_service.readable(session, services, [alerts_service.get_alert(session, caller, alert_id)])[
        0
    ]


@router.post("/{alert_id}/acknowledge", response_model=AlertPublic, summary="Acknowledge an alert (lender)")
def acknowledge_alert(
    alert_id: AlertId,
    body: AcknowledgeRequest,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
) -> AlertPublic:
    return alerts_service.acknowledge_alert(session, services, caller, alert_id, body.note)


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
    return alerts_service.resolve_alert(session, services, caller, alert_id, body.note)
