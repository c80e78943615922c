"""The portfolio a lender's risk committee looks at (issue 20): totals, outstanding by risk class and by
loan type, loans past maturity in day buckets, the largest exposures by borrower, and alerts by rule and
severity and over time. Over the loans and alerts the caller sees (the policy's "portfolio.read": a lender
its own bank's, an auditor all).

Days past maturity are counted on the chain's clock (the newest mirrored block), from the maturity date;
they are not the regulatory days past due of an instalment schedule, and the page says so.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.services import Services
from api.services.access import loan_scope
from api.services.alerts import alerts_t
from api.services.rows import account_names
from ledger.mirror.read import LoanScope, Mirror
from ledger.protocol.codes import LoanStatus, RiskClass
from ledger.store.offchain import LoanMetadata

__all__ = ["OVERDUE_BUCKETS", "portfolio"]

meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]
DAY = 86_400
OVERDUE_BUCKETS = ((1, 30), (31, 90), (91, 270), (271, 360), (361, None))
"""Days past maturity, as the five-category floors group them (overdue, >90, >270, >360)."""
TOP = 10


def _bucket(days: int) -> str:
    for low, high in OVERDUE_BUCKETS:
        if high is None or days <= high:
            return f"{low}+" if high is None else f"{low}-{high}"
    raise AssertionError(days)  # pragma: no cover


def portfolio(session: Session, services: Services, caller: Caller) -> dict[str, Any]:
    policy.require(caller, "portfolio.read")
    mirror = Mirror(session)
    scope = loan_scope(caller)
    loans = mirror.loans(scope=scope)
    now = mirror.latest_block_time() or 0
    names = account_names(services)
    types = _loan_types(session, [loan.loan_id for loan in loans])

    open_loans = [loan for loan in loans if int(loan.status) == LoanStatus.OPEN]
    outstanding = {loan.loan_id: int(loan.disbursed) - int(loan.repaid) for loan in loans}
    currencies = sorted({loan.currency for loan in loans}) or ["CNY"]

    by_class: dict[int, int] = {int(c): 0 for c in RiskClass}
    by_type: dict[str, int] = defaultdict(int)
    overdue: dict[str, list[int]] = {_bucket(low): [0, 0] for low, _ in OVERDUE_BUCKETS}  # count, amount
    exposure: dict[str, int] = defaultdict(int)
    for loan in open_loans:
        amount = outstanding[loan.loan_id]
        by_class[int(loan.risk_class)] += amount
        by_type[types.get(loan.loan_id) or ""] += amount
        exposure[loan.borrower] += amount
        if amount > 0 and now > int(loan.maturity):
            slot = overdue[_bucket(max(1, (now - int(loan.maturity)) // DAY))]
            slot[0] += 1
            slot[1] += amount
    top = sorted(exposure.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]

    alert_rows = session.execute(
        sa.select(alerts_t.c.rule, alerts_t.c.severity, alerts_t.c.raised_chain_time, alerts_t.c.state).where(
            *_alert_scope(caller)
        )
    ).all()
    by_rule: dict[str, Counter[str]] = defaultdict(Counter)
    by_month: dict[str, Counter[str]] = defaultdict(Counter)
    zone = services.settings.bank_zone
    for rule, severity, raised, _state in alert_rows:
        by_rule[str(rule)][str(severity)] += 1
        month = datetime.fromtimestamp(int(raised), UTC).astimezone(zone).strftime("%Y-%m")
        by_month[month][str(severity)] += 1

    return {
        "as_of": now,
        "currencies": currencies,
        "totals": {
            "loans": len(loans),
            "open": len(open_loans),
            "principal": sum(int(loan.principal) for loan in open_loans),
            "disbursed": sum(int(loan.disbursed) for loan in open_loans),
            "repaid": sum(int(loan.repaid) for loan in open_loans),
            "outstanding": sum(outstanding[loan.loan_id] for loan in open_loans),
            "non_performing": sum(
                outstanding[loan.loan_id]
                for loan in open_loans
                if int(loan.risk_class) >= RiskClass.SUBSTANDARD
            ),
            "alerts_unresolved": sum(1 for row in alert_rows if row[3] != "resolved"),
        },
        "by_class": by_class,
        "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
        "overdue": overdue,
        "top": [{"borrower": b, "name": names.get(b), "outstanding": amount} for b, amount in top],
        "alerts_by_rule": {rule: dict(counts) for rule, counts in sorted(by_rule.items())},
        "alerts_by_month": {month: dict(counts) for month, counts in sorted(by_month.items())},
    }


def _alert_scope(caller: Caller) -> list[Any]:
    if policy.require(caller, "alerts.list") is policy.YES:
        return []
    return [alerts_t.c.loan_id.in_(LoanScope.of_lender(caller.org_id).loan_ids())]


def _loan_types(session: Session, loan_ids: list[str]) -> dict[str, str]:
    """A loan's type as its lender wrote it in the terms (`"loan_type": "working_capital"`), if it did."""
    out: dict[str, str] = {}
    for start in range(0, len(loan_ids), 500):
        part = loan_ids[start : start + 500]
        for loan_id, terms in session.execute(
            sa.select(meta_t.c.loan_id, meta_t.c.terms).where(meta_t.c.loan_id.in_(part))
        ):
            kind = (terms or {}).get("loan_type") if isinstance(terms, dict) else None
            if isinstance(kind, str) and kind:
                out[str(loan_id)] = kind
    return out
