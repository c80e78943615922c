"""Monitoring alerts: lists with filters, one alert, acknowledging and resolving.

Who sees and handles them is the policy's (`api.policy`: "alerts.list", "loan.alerts", "alert.read",
"alert.handle"): a lender sees the alerts of its bank's loans (and of the vouchers it stands behind), an
auditor every alert, enterprises none (alerts are the bank's view of its borrowers); acknowledging and
resolving are the servicing lender's (a voucher's alert resolves when its part is settled).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import Session, SQLModel

from api import policy
from api.deps import Caller
from api.i18n import ALERT_STATE_LABELS, RULE_LABELS, SEVERITY_LABELS
from api.services import Services
from api.services.access import visible_loan
from api.services.rows import account_names
from ledger.errors import NotFoundError, PermissionDeniedError
from ledger.mirror.read import LoanScope, Mirror
from ledger.monitoring.alerts import Alert, AlertPublic, acknowledge, resolve
from ledger.monitoring.vouchers import VOUCHER_RULES
from ledger.protocol.dates import iso_time

__all__ = [
    "AlertOut",
    "AlertPage",
    "name_parties",
    "readable",
    "acknowledge_alert",
    "get_alert",
    "list_alerts",
    "loan_alerts",
    "open_alert_counts",
    "resolve_alert",
    "sees_alerts",
]

alerts_t: sa.Table = Alert.__table__  # type: ignore[attr-defined]


class AlertOut(AlertPublic):
    """An alert with what a person reads beside the stored text (issue 20): the rule, severity and state in
    English and Chinese, the explanation with registered participants named, and the time of the block
    the alert rests on in the bank's zone."""

    rule_en: str = ""
    rule_zh: str = ""
    severity_zh: str = ""
    state_zh: str = ""
    explanation_named: str = ""
    source_time: str | None = None


class AlertPage(BaseModel):
    items: list[AlertOut]
    total: int
    limit: int
    offset: int


def sees_alerts(caller: Caller) -> bool:
    return policy.allowed(caller, "alerts.list")


def _scope(caller: Caller) -> Any:
    """A SQL condition on alerts for what the caller may see (None: all); 403 for whom the policy refuses
    alerts. "own": the alerts of the bank's own loans (the read model's scope, as a subquery)."""
    if policy.require(caller, "alerts.list") is policy.YES:
        return None
    return sa.or_(
        alerts_t.c.loan_id.in_(LoanScope.of_lender(caller.org_id).loan_ids()),
        alerts_t.c.loan_id.in_(_bank_vouchers(caller.org_id)),
    )


def _bank_vouchers(org_id: str) -> sa.CompoundSelect[Any]:
    """The vouchers a bank stands behind (issue 22): issued under the credit line it granted, or with a part
    it was asked to finance or financed. Their alerts (到期未兑付) are the bank's to see."""
    vouchers, parts = _table("vouchers"), _table("voucher_parts")
    org = org_id.lower()
    return sa.union(
        sa.select(vouchers.c.voucher_id).where(vouchers.c.bank_org == org),
        sa.select(parts.c.voucher_id).where(parts.c.bank_org == org),
    )


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def list_alerts(
    session: Session,
    caller: Caller,
    *,
    loan: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    state: str | None = None,
    unresolved: bool = False,
    since: int | None = None,
    until: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> AlertPage:
    """A page of the alerts the caller sees, newest first; `loan` is a loan id or number; `unresolved`:
    every state but resolved."""
    conditions = []
    scope = _scope(caller)
    if scope is not None:
        conditions.append(scope)
    if loan is not None:  # an unknown number and another bank's get the same 404
        conditions.append(alerts_t.c.loan_id == visible_loan(session, caller, loan).loan_id)
    if rule is not None:
        conditions.append(alerts_t.c.rule == rule)
    if severity is not None:
        conditions.append(alerts_t.c.severity == severity)
    if state is not None:
        conditions.append(alerts_t.c.state == state)
    if unresolved:
        conditions.append(alerts_t.c.state != "resolved")
    if since is not None:  # chain time (unix seconds) the alert was first raised at
        conditions.append(alerts_t.c.raised_chain_time >= since)
    if until is not None:
        conditions.append(alerts_t.c.raised_chain_time < until)
    total = session.execute(sa.select(sa.func.count()).select_from(alerts_t).where(*conditions)).scalar_one()
    rows = session.execute(
        sa.select(alerts_t).where(*conditions).order_by(alerts_t.c.id.desc()).limit(limit).offset(offset)
    ).all()
    items = [AlertOut.model_validate(dict(r._mapping)) for r in rows]
    return AlertPage(items=items, total=int(total), limit=limit, offset=offset)


_SHORT = re.compile(r"(\(?)(0x[0-9a-fA-F]{4})…([0-9a-fA-F]{4})")


def name_parties(text: str, names: dict[str, str]) -> str:
    """The stored text with each shortened address ("0x12ab…cd34") of a registered participant named:
    "Supplier One (0x12ab…cd34)", or "(Supplier One, 0x12ab…cd34)" inside brackets. A short form that fits
    no participant, or more than one, is left as it is."""

    def named(m: re.Match[str]) -> str:
        bracket, head, tail = m[1], m[2].lower(), m[3].lower()
        fits = {n for a, n in names.items() if a.lower().startswith(head) and a.lower().endswith(tail)}
        if len(fits) != 1:
            return m[0]
        name = fits.pop()
        short = f"{m[2]}…{m[3]}"
        return f"({name}, {short}" if bracket else f"{name} ({short})"

    return _SHORT.sub(named, text)


def readable(session: Session, services: Services, alerts: list[Any]) -> list[AlertOut]:
    """Each alert as an AlertOut with its labels, named explanation and source block time filled in."""
    names = account_names(services)
    times = Mirror(session).block_times(a.source_block for a in alerts)
    zone = services.settings.bank_zone
    out = []
    for a in alerts:
        item = a if isinstance(a, AlertOut) else AlertOut.model_validate(a.model_dump())
        item.rule_en, item.rule_zh = RULE_LABELS.get(item.rule, (item.rule, item.rule))
        item.severity_zh = SEVERITY_LABELS.get(item.severity, ("", item.severity))[1]
        item.state_zh = ALERT_STATE_LABELS.get(item.state, ("", item.state))[1]
        item.explanation_named = name_parties(item.explanation, names)
        stamp = times.get(item.source_block)
        item.source_time = None if stamp is None else iso_time(stamp, zone)
        out.append(item)
    return out


def loan_alerts(session: Session, caller: Caller, loan: Any) -> list[AlertPublic]:
    """The unresolved alerts of a loan row the caller sees, oldest first; none for callers the policy does
    not show the loan's alerts."""
    if not policy.allowed(caller, "loan.alerts", loan):
        return []
    loan_id = loan.loan_id
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
    if alert.rule in VOUCHER_RULES:
        raise PermissionDeniedError(
            f"Alert {alert_id} is on a voucher part unpaid past maturity; it is not acknowledged or resolved "
            "by hand: it resolves when the core enterprise settles the part.",
            hint="See the voucher: GET /v1/vouchers/{voucher}.",
        )
    loan = Mirror(session).loan(alert.loan_id)
    if loan is None:  # an alert outlived its loan's mirror rows (a reorg): no one services it here
        raise PermissionDeniedError(f"{caller.name} does not service this loan and cannot {action}.")
    policy.require(caller, "alert.handle", loan, label=alert.loan_id)


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
