"""Loan servicing arithmetic: the repayment schedule, interest, penalty interest, how a repayment is applied,
and days past due. Pure functions over integer fen and calendar dates; nothing here reads a database or a
chain, so the mirror, the API and an auditor's script compute the same numbers from the same facts.

Rules kept here (README "Loan servicing" states them for people):
- **Amounts** are integer minor units (fen). Every interest amount is computed exactly (as a fraction) and
  rounded once, half up to the fen (四舍五入), per scheduled period; penalty interest is accrued exactly and
  rounded half up when it is read or collected. No other rounding happens anywhere.
- **Interest** for a period is `outstanding scheduled principal x annual rate x days / basis`, days counted
  from the previous due date (the value date for the first period) to the due date, basis 365 (ACT/365) or
  360 (ACT/360). Equal instalments (等额本息) use the periodic rate `annual rate x months / 12` instead, as
  banks quote them, with the last instalment taking whatever principal is left.
- **Days past due** count from the oldest scheduled amount of principal **or interest** still unpaid after its
  due date: paid on the due date is on time, unpaid the day after is 1 day past due. Repayments are applied to
  the scheduled amounts oldest first (principal to principal items, interest to interest items).
- **Grace days** (宽限期) delay penalty interest only; days past due still count from the contractual due
  date.
- **Penalty interest** (罚息) accrues per day on overdue principal and interest after the grace days, at the
  penalty rate (annual, same day-count basis).
- **Allocation**: a repayment pays what is due in the order given (a setting; default penalty, interest,
  principal); anything left pays principal ahead of schedule (prepayment), which settles the next scheduled
  principal items first. Interest not yet due is not collected early. More than everything owed (dues plus
  all outstanding principal) is refused.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

__all__ = [
    "ALLOCATION_BUCKETS",
    "Allocation",
    "DayCount",
    "DueItem",
    "Overdue",
    "PaymentRecord",
    "Position",
    "ScheduleMethod",
    "add_months",
    "allocate",
    "build_schedule",
    "period_interest",
    "position",
    "round_half_up",
]

ALLOCATION_BUCKETS = ("penalty", "interest", "principal")


class ScheduleMethod(StrEnum):
    EQUAL_INSTALMENTS = "equal_instalments"  # 等额本息
    EQUAL_PRINCIPAL = "equal_principal"  # 等额本金
    INTEREST_ONLY = "interest_only"  # 先息后本: interest each period, principal at the end (bullet)
    EXPLICIT = "explicit"  # the principal table in the terms' repayment_schedule


class DayCount(StrEnum):
    ACT_365 = "ACT/365"
    ACT_360 = "ACT/360"

    @property
    def basis(self) -> int:
        return 360 if self is DayCount.ACT_360 else 365


def round_half_up(value: Fraction) -> int:
    """Half up to the nearest fen (四舍五入); values here are never negative except penalty residues."""
    if value < 0:
        return -round_half_up(-value)
    return int((value * 2 + 1) // 2)


def add_months(start: date, months: int) -> date:
    """Same day `months` later, clipped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month0 = start.month - 1 + months
    year, month = start.year + month0 // 12, month0 % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def period_interest(principal: int, annual_rate: Decimal, days: int, day_count: DayCount) -> int:
    """Interest on `principal` fen for `days` days, rounded half up to the fen."""
    return round_half_up(Fraction(principal) * Fraction(annual_rate) * days / day_count.basis)


@dataclass(frozen=True)
class DueItem:
    """One scheduled repayment date: principal and interest due on it."""

    due_date: date
    principal: int
    interest: int


def build_schedule(
    *,
    principal: int,
    method: ScheduleMethod,
    annual_rate: Decimal,
    day_count: DayCount,
    start_date: date,
    first_due_date: date,
    periods: int,
    period_months: int = 1,
    explicit: Sequence[tuple[date, int]] = (),
) -> list[DueItem]:
    """The principal and interest schedule. The principal items always sum to `principal` (for `explicit`,
    to the table's total: an explicit table that falls short leaves the rest to the loan's maturity)."""
    if method is ScheduleMethod.EXPLICIT:
        dates = [d for d, _ in explicit]
        amounts = [a for _, a in explicit]
    else:
        dates = [add_months(first_due_date, k * period_months) for k in range(periods)]
        if method is ScheduleMethod.EQUAL_PRINCIPAL or (
            method is ScheduleMethod.EQUAL_INSTALMENTS and annual_rate == 0
        ):
            share = principal // periods
            amounts = [share] * (periods - 1) + [principal - share * (periods - 1)]
        elif method is ScheduleMethod.INTEREST_ONLY:
            amounts = [0] * (periods - 1) + [principal]
        else:
            return _equal_instalments(principal, annual_rate, dates, period_months)
    items: list[DueItem] = []
    outstanding = sum(amounts) if method is ScheduleMethod.EXPLICIT else principal
    previous = start_date
    for due, amount in zip(dates, amounts, strict=True):
        days = max((due - previous).days, 0)
        items.append(DueItem(due, amount, period_interest(outstanding, annual_rate, days, day_count)))
        outstanding -= amount
        previous = due
    return items


def _equal_instalments(
    principal: int, annual_rate: Decimal, dates: list[date], period_months: int
) -> list[DueItem]:
    """等额本息: instalment = P r (1+r)^n / ((1+r)^n - 1), r the periodic rate, rounded half up; each period's
    interest is round(outstanding x r), principal the rest, the last period clears the principal."""
    r = Fraction(annual_rate) * period_months / 12
    n = len(dates)
    growth = (1 + r) ** n
    instalment = round_half_up(principal * r * growth / (growth - 1))
    items = []
    outstanding = principal
    for k, due in enumerate(dates):
        interest = round_half_up(outstanding * r)
        part = outstanding if k == n - 1 else min(max(instalment - interest, 0), outstanding)
        items.append(DueItem(due, part, interest))
        outstanding -= part
    return items


@dataclass(frozen=True)
class PaymentRecord:
    """A repayment as recorded on chain (`RepaymentApplied`), dated by its block's calendar date (UTC)."""

    paid_on: date
    principal: int
    interest: int = 0
    penalty: int = 0


@dataclass(frozen=True)
class Overdue:
    """The oldest scheduled amount still unpaid after its due date."""

    due_date: date
    kind: str  # "principal" or "interest"
    days: int


@dataclass(frozen=True)
class Position:
    """Where a loan stands on a date (`as_of`, counted as the end of that day's payments)."""

    as_of: date
    principal_due: int  # scheduled principal fallen due (due date <= as_of) and unpaid
    interest_due: int  # scheduled interest fallen due and unpaid
    penalty_due: int  # penalty interest accrued to as_of (rounded half up) and unpaid
    principal_overdue: int  # unpaid principal whose due date is before as_of
    interest_overdue: int  # unpaid interest whose due date is before as_of
    days_past_due: int
    oldest_overdue: Overdue | None
    penalty_accrued: Fraction = field(default=Fraction(0))

    @property
    def total_due(self) -> int:
        return self.principal_due + self.interest_due + self.penalty_due


def _unpaid(amounts: Sequence[int], paid: int) -> list[int]:
    """Each scheduled amount's unpaid part when `paid` was applied to them oldest first."""
    out = []
    left = paid
    for amount in amounts:
        taken = min(amount, max(left, 0))
        out.append(amount - taken)
        left -= taken
    return out


def position(
    schedule: Sequence[DueItem],
    payments: Sequence[PaymentRecord],
    as_of: date,
    *,
    penalty_rate: Decimal = Decimal(0),
    day_count: DayCount = DayCount.ACT_365,
    grace_days: int = 0,
) -> Position:
    """The loan's position at the end of `as_of`: what is due, overdue, the penalty accrued, days past due."""
    paid = [p for p in payments if p.paid_on <= as_of]
    principal_paid = sum(p.principal for p in paid)
    interest_paid = sum(p.interest for p in paid)
    penalty_paid = sum(p.penalty for p in paid)
    p_unpaid = _unpaid([i.principal for i in schedule], principal_paid)
    i_unpaid = _unpaid([i.interest for i in schedule], interest_paid)

    oldest: Overdue | None = None
    for item, pu, iu in zip(schedule, p_unpaid, i_unpaid, strict=True):
        if item.due_date < as_of and (pu or iu):
            kind = "principal" if pu else "interest"
            oldest = Overdue(item.due_date, kind, (as_of - item.due_date).days)
            break

    accrued = _penalty_accrued(schedule, paid, as_of, penalty_rate, day_count, grace_days)
    return Position(
        as_of=as_of,
        principal_due=sum(pu for item, pu in zip(schedule, p_unpaid, strict=True) if item.due_date <= as_of),
        interest_due=sum(iu for item, iu in zip(schedule, i_unpaid, strict=True) if item.due_date <= as_of),
        penalty_due=max(round_half_up(accrued) - penalty_paid, 0),
        principal_overdue=sum(
            pu for item, pu in zip(schedule, p_unpaid, strict=True) if item.due_date < as_of
        ),
        interest_overdue=sum(
            iu for item, iu in zip(schedule, i_unpaid, strict=True) if item.due_date < as_of
        ),
        days_past_due=oldest.days if oldest else 0,
        oldest_overdue=oldest,
        penalty_accrued=accrued,
    )


def _penalty_accrued(
    schedule: Sequence[DueItem],
    payments: Sequence[PaymentRecord],
    as_of: date,
    rate: Decimal,
    day_count: DayCount,
    grace_days: int,
) -> Fraction:
    """Exact penalty interest to the end of `as_of`. An item's unpaid part accrues for each day after its due
    date plus the grace days; a payment made on a day stops accrual from the next day."""
    if rate == 0 or not schedule:
        return Fraction(0)
    grace = timedelta(days=grace_days)
    starts = [item.due_date + grace for item in schedule]
    bounds = sorted({s for s in starts if s < as_of} | {p.paid_on for p in payments if p.paid_on < as_of})
    if not bounds:
        return Fraction(0)
    bounds.append(as_of)
    total = Fraction(0)
    daily = Fraction(rate) / day_count.basis
    for left, right in zip(bounds, bounds[1:], strict=False):
        done = [p for p in payments if p.paid_on <= left]
        p_unpaid = _unpaid([i.principal for i in schedule], sum(p.principal for p in done))
        i_unpaid = _unpaid([i.interest for i in schedule], sum(p.interest for p in done))
        overdue = sum(pu + iu for s, pu, iu in zip(starts, p_unpaid, i_unpaid, strict=True) if s <= left)
        total += overdue * daily * (right - left).days
    return total


@dataclass(frozen=True)
class Allocation:
    """How one repayment is applied; the parts always sum to the amount."""

    principal: int
    interest: int
    penalty: int
    prepaid_principal: int  # the part of `principal` paid ahead of schedule

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.penalty


def allocate(
    amount: int,
    due: Position,
    outstanding_principal: int,
    order: Sequence[str] = ALLOCATION_BUCKETS,
) -> Allocation:
    """Apply `amount` to what is due in `order`, the rest to principal ahead of schedule. Raises ValueError
    when the amount exceeds everything owed (dues plus all outstanding principal)."""
    if sorted(order) != sorted(ALLOCATION_BUCKETS):
        raise ValueError(f"the allocation order must name each of {', '.join(ALLOCATION_BUCKETS)} once")
    if amount <= 0:
        raise ValueError("a repayment must be more than zero")
    buckets = {
        "penalty": due.penalty_due,
        "interest": due.interest_due,
        "principal": min(due.principal_due, outstanding_principal),
    }
    owed = due.penalty_due + due.interest_due + outstanding_principal
    if amount > owed:
        raise ValueError(f"the repayment of {amount} is more than everything owed ({owed})")
    parts = dict.fromkeys(ALLOCATION_BUCKETS, 0)
    left = amount
    for name in order:
        take = min(left, buckets[name])
        parts[name] += take
        left -= take
    prepaid = min(left, outstanding_principal - parts["principal"])
    parts["principal"] += prepaid
    left -= prepaid
    assert left == 0  # owed bounds the amount
    return Allocation(parts["principal"], parts["interest"], parts["penalty"], prepaid)
