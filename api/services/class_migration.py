"""A lender's portfolio: migration between risk classes over a period (迁徙率), as JSON and CSV.

Who sees it is the policy's ("portfolio.migration"): a lender its own bank's loans, an auditor every bank's
(or one bank's with `lender`). Dates are calendar days in UTC on the chain's clock: the period runs from the
start of `start` to the end of `end` (default: the 90 days up to the chain's date).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel import Session

from api import policy
from api.deps import Caller
from ledger.errors import ValidationError
from ledger.mirror.read import Mirror
from ledger.monitoring.migration import migration_matrix
from ledger.protocol.codes import RiskClass
from ledger.protocol.money import format_amount

__all__ = ["migration", "migration_csv"]

_LABELS = {c.name.lower(): f"{c.zh} ({c.en})" for c in RiskClass} | {"repaid": "已结清 (repaid)"}


def _ts(day: date) -> int:
    return int(datetime.combine(day, time(0), UTC).timestamp())


def migration(
    session: Session,
    caller: Caller,
    *,
    start: date | None = None,
    end: date | None = None,
    currency: str = "CNY",
    lender: str | None = None,
) -> dict[str, Any]:
    """The matrix for a period; by default the 90 days up to the chain's date (the newest mirrored block)."""
    if end is None:
        latest = Mirror(session).latest_block_time()
        end = datetime.fromtimestamp(latest, UTC).date() if latest else datetime.now(UTC).date()
    if start is None:
        start = end - timedelta(days=90)
    if end < start:
        raise ValidationError(
            f"the period ends ({end}) before it starts ({start})", hint="give start and end as YYYY-MM-DD"
        )
    # an auditor (YES) sees every bank's, or the one asked for; a lender (OWN) its own bank's
    everyone = policy.require(caller, "portfolio.migration") is policy.YES
    orgs = (None if lender is None else [lender.lower()]) if everyone else [caller.org_id]
    m = migration_matrix(
        session.connection(),
        start=_ts(start),
        end=_ts(end + timedelta(days=1)) - 1,
        lender_orgs=orgs,
        currency=currency,
    )
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "currency": currency,
        "loans": m.loans,
        "classes": _LABELS,
        "rows": m.rows(),
    }


def migration_csv(data: dict[str, Any]) -> str:
    """One line per (start class, end class): loans, balance at the start in yuan, rate."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["period_start", "period_end", "from", "to", "loans", f"balance_{data['currency']}", "rate"])
    for row in data["rows"]:
        for col, cell in row["to"].items():
            w.writerow(
                [
                    data["start"],
                    data["end"],
                    _LABELS[row["from"]],
                    _LABELS[col],
                    cell["loans"],
                    format_amount(cell["balance"], data["currency"], code=False).replace(",", ""),
                    cell["rate"] or "",
                ]
            )
    return out.getvalue()
