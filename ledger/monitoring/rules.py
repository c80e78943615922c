"""Post-loan monitoring rules: each turns one loan's mirrored facts into candidate alerts.

A rule is a pure function `(LoanFacts, Thresholds) -> list[Candidate]`. It reads nothing but its arguments,
so it can be re-run freely; `ledger.monitoring.monitor` loads facts, runs each rule for the loans a batch
touched, and keeps the `alerts` table equal to what the rules say. A candidate's `cause_key` names the fact
that raised it (a lot, an installment, a valuation ...), so the same cause is one alert however often the
rules run, and a new cause is a new alert.

Time is the chain's: `LoanFacts.now` is a block timestamp (the newest indexed block unless a caller injects
one), and every "within N hours" or "older than N days" compares block timestamps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ledger.config import Settings
from ledger.monitoring.guarantees import GuaranteeBook, GuaranteeFact, cycles_through
from ledger.monitoring.preservation import CaseFact
from ledger.monitoring.register import ItemFact
from ledger.protocol.codes import InspectionKind, LoanStatus, RiskClass
from ledger.protocol.collateral import CollateralStatus, effective_value
from ledger.protocol.loantypes import LoanTypePolicy, parse_policies, policy_for
from ledger.protocol.money import format_amount
from ledger.protocol.purposes import describe
from ledger.protocol.scores import BAND_WORDS, WATCH_BANDS, is_worse
from ledger.protocol.servicing import DayCount, PaymentRecord, Position, position
from ledger.protocol.terms import LoanTerms, LoanType

__all__ = [
    "RULES",
    "RULE_SCOPES",
    "Scope",
    "Candidate",
    "LoanFacts",
    "LotFact",
    "PastDue",
    "RecordFact",
    "Severity",
    "TermsChangeFact",
    "Thresholds",
    "days_past_due",
    "past_due",
    "servicing_position",
    "evaluate_rules",
    "fmt_money",
    "fmt_time",
    "site_visit_due",
]

DAY = 86_400
LOAN_OPEN = LoanStatus.OPEN
LOAN_WRITTEN_OFF = LoanStatus.WRITTEN_OFF


class Severity(StrEnum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Thresholds:
    """The rules' knobs; `from_settings` reads the FUNDFLOW_* monitoring settings."""

    circular_flow_hops: int = 3
    pass_through_share: float = 0.8
    pass_through_hours: float = 24.0
    structuring_window_hours: float = 72.0
    structuring_count: int = 3
    structuring_margin: float = 0.1
    concentration_share: float = 0.5
    unconfirmed_days: float = 7.0
    collateral_stale_days: float = 180.0
    prohibited_purposes: frozenset[int] = frozenset({28, 29, 30, 31})
    # Days between site visits by risk class (正常, 关注, 次级, 可疑, 损失): bank policy, not a regulation.
    site_visit_days: tuple[int, ...] = (90, 30, 30, 30, 30)
    # issue 21: a loan whose behaviour score is in band D or E gets a site visit at least this often.
    score_visit_days: int = 30
    preservation_warning_days: int = 7  # an asset-preservation deadline alerts this many days ahead
    penalty_rate_multiplier: Decimal = Decimal("1.5")
    loan_type_policies: Mapping[str, Mapping[LoanType, LoanTypePolicy]] = field(default_factory=dict)
    self_paid_report_days: float = 30.0

    def policy(self, facts: LoanFacts) -> LoanTypePolicy | None:
        """The lender's policy for the loan's type; None when the terms name no type."""
        if facts.terms is None or facts.terms.loan_type is None:
            return None
        return policy_for(facts.terms.loan_type, facts.lender_org, self.loan_type_policies)

    def prohibited(self, facts: LoanFacts) -> frozenset[int]:
        """Prohibited purposes: the loan type's (a development loan may pay for land), else the setting."""
        policy = self.policy(facts)
        return policy.prohibited if policy is not None else self.prohibited_purposes

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        return cls(
            circular_flow_hops=settings.circular_flow_hops,
            pass_through_share=settings.pass_through_share,
            pass_through_hours=settings.pass_through_hours,
            structuring_window_hours=settings.structuring_window_hours,
            structuring_count=settings.structuring_count,
            structuring_margin=settings.structuring_margin,
            concentration_share=settings.concentration_share,
            unconfirmed_days=settings.unconfirmed_days,
            collateral_stale_days=settings.collateral_stale_days,
            prohibited_purposes=frozenset(settings.prohibited_purposes),
            site_visit_days=tuple(settings.site_visit_interval_days),
            score_visit_days=settings.score_visit_days,
            preservation_warning_days=settings.preservation_warning_days,
            penalty_rate_multiplier=settings.penalty_rate_multiplier,
            loan_type_policies=parse_policies(settings.loan_type_policies),
            self_paid_report_days=settings.self_paid_report_days,
        )


@dataclass(frozen=True)
class LotFact:
    lot_id: str
    parent_lot_id: str | None
    holder: str
    amount: int
    remaining: int
    purpose: int
    declared_use: bool
    entrusted: bool | None
    confirmation: str
    confirmation_block: int | None
    confirmation_time: int | None
    block_number: int
    log_index: int
    timestamp: int
    signer: str | None = None  # who signed the payment, where known (tx_signers); None: not known

    @property
    def is_disbursement(self) -> bool:
        return self.parent_lot_id is None


@dataclass(frozen=True)
class RecordFact:
    """A repayment (`amount`), collateral valuation (`key` = collateral id, `amount` = value) or inspection
    (`key` = kind)."""

    block_number: int
    log_index: int
    timestamp: int
    amount: int = 0
    key: str = ""
    # issue 18: a repayment's parts applied to interest and penalty interest (`amount` is its principal)
    interest: int = 0
    penalty: int = 0


@dataclass(frozen=True)
class TermsChangeFact:
    """A change of terms (`TermsChanged`; a legacy `LoanRestructured` has `change` and `financial_difficulty`
    None: it said neither)."""

    block_number: int
    log_index: int
    timestamp: int
    maturity: int
    change: int | None
    financial_difficulty: bool | None
    previous_maturity: int | None = None
    outstanding: int | None = None  # principal outstanding when the terms changed


@dataclass(frozen=True)
class LoanFacts:
    loan_id: str
    lender_org: str
    borrower: str
    principal: int
    disbursed: int
    repaid: int
    currency: str
    maturity: int
    status: int
    block_number: int
    opened_at: int
    lots: list[LotFact]
    repayments: list[RecordFact]
    valuations: list[RecordFact]
    inspections: list[RecordFact]
    terms: LoanTerms | None
    now: int
    lender_accounts: frozenset[str] = frozenset()  # lower-case accounts of the lending bank
    risk_class: int = 0
    guarantees: GuaranteeBook | None = None  # the ledger's active guarantees (the post-loan file)
    preservation: tuple[CaseFact, ...] = ()  # the loan's asset-preservation cases
    # the collateral register (issue 19): each item's latest content-checked record; empty = no register,
    # the valuations alone are the collateral (haircut 0), as before the register
    collateral_items: tuple[ItemFact, ...] = ()
    # issue 18
    terms_changes: list[TermsChangeFact] = field(default_factory=list)
    class_history: list[tuple[int, int]] = field(default_factory=list)  # (block, class) of RiskClassified
    # issue 21: (as-of timestamp, band) of the loan's behaviour scores, newest first (ledger.store.scores)
    score_bands: tuple[tuple[int, str], ...] = ()
    penalty_rate_multiplier: Decimal = Decimal("1.5")

    @property
    def outstanding(self) -> int:
        return self.disbursed - self.repaid

    @property
    def is_open(self) -> bool:
        return self.status == LOAN_OPEN

    def money(self, amount: int) -> str:
        return fmt_money(amount, self.currency)

    def party(self, address: str) -> str:
        """'the borrower (0x12ab…cd34)', 'linked party 0x…', or the short address."""
        short = f"{address[:6]}…{address[-4:]}"
        if address.lower() in self.lender_accounts:
            return f"the lender ({short})"
        if address == self.borrower:
            return f"the borrower ({short})"
        if self.terms is not None and address in self.terms.linked_parties:
            return f"borrower-linked party {short}"
        return short


@dataclass(frozen=True)
class Candidate:
    """An alert as a rule sees it; the monitor turns it into an `alerts` row keyed (rule, loan, cause)."""

    rule: str
    severity: Severity
    loan_id: str
    cause_key: str
    title: str
    explanation: str
    lot_ids: tuple[str, ...] = ()
    source_block: int = 0
    details: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[LoanFacts, Thresholds], list[Candidate]]

# ---------------------------------------------------------------------------------------------- formatting


def fmt_money(amount: int, currency: str) -> str:
    """'CNY 1,234,567.89' from minor units (two decimals except zero-decimal currencies such as JPY)."""
    return format_amount(amount, currency)


def fmt_time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _date(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def _share(part: int, whole: int) -> str:
    return f"{Decimal(part) * 100 / Decimal(whole):.1f}%" if whole else "n/a"


# ---------------------------------------------------------------------------------------------- use of funds


def _what(facts: LoanFacts, lot: LotFact) -> str:
    if lot.is_disbursement:
        return f"The lender disbursed {facts.money(lot.amount)} to {facts.party(lot.holder)}"
    parent = next((p for p in facts.lots if p.lot_id == lot.parent_lot_id), None)
    holder = facts.party(parent.holder) if parent is not None else "its holder"
    if lot.signer is None:
        # Who signed is not known here: say only what the trail shows (the lender may pay out of the
        # borrower's lot, so the lot's holder is not necessarily the payer).
        return (
            f"{facts.money(lot.amount)} was paid to {facts.party(lot.holder)} out of the lot held by {holder}"
        )
    payer = facts.party(lot.signer)
    out = f"{payer[0].upper()}{payer[1:]} paid {facts.money(lot.amount)} to {facts.party(lot.holder)}"
    if parent is not None and lot.signer.lower() != parent.holder.lower():
        out += f" out of the lot held by {holder}"
    return out


def undeclared_use(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A payment whose purpose the loan does not allow (prohibited purposes are `prohibited_use`'s)."""
    out = []
    for lot in facts.lots:
        if lot.declared_use or lot.purpose in th.prohibited(facts):
            continue
        out.append(
            Candidate(
                rule="undeclared_use",
                severity=Severity.HIGH,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title=f"Payment for {describe(lot.purpose)}, a purpose the loan does not allow",
                explanation=f"{_what(facts, lot)} on {fmt_time(lot.timestamp)} for "
                f"{describe(lot.purpose)} (purpose {lot.purpose}), which is not among the loan's declared "
                "purposes.",
                lot_ids=(lot.lot_id,),
                source_block=lot.block_number,
                details={"purpose": lot.purpose, "amount": lot.amount, "payee": lot.holder},
            )
        )
    return out


def prohibited_use(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A payment into a prohibited sector (real estate, securities, onward lending, other debt by default),
    whether or not the loan's purpose set allowed it."""
    out = []
    banned = th.prohibited(facts)
    for lot in facts.lots:
        if lot.purpose not in banned:
            continue
        allowed = (
            "" if not lot.declared_use else " The loan's purpose set allows it, but the sector is banned."
        )
        out.append(
            Candidate(
                rule="prohibited_use",
                severity=Severity.CRITICAL,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title=f"Loan money used for {describe(lot.purpose)}, a prohibited use",
                explanation=f"{_what(facts, lot)} on {fmt_time(lot.timestamp)} for "
                f"{describe(lot.purpose)} ({describe(lot.purpose, 'zh')}), a prohibited use of loan funds."
                + allowed,
                lot_ids=(lot.lot_id,),
                source_block=lot.block_number,
                details={"purpose": lot.purpose, "amount": lot.amount, "payee": lot.holder},
            )
        )
    return out


def _borrower_side(facts: LoanFacts) -> set[str]:
    linked = set(facts.terms.linked_parties) if facts.terms is not None else set()
    return {facts.borrower} | linked


def circular_flow(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """Money that left the borrower's side and came back to the borrower or a linked party within N hops."""
    side = _borrower_side(facts)
    by_id = {lot.lot_id: lot for lot in facts.lots}
    out = []
    for lot in facts.lots:
        if lot.is_disbursement or lot.holder not in side:
            continue
        path = [lot]  # walk up while the money was outside the borrower's side
        current = by_id.get(lot.parent_lot_id or "")
        while current is not None and current.holder not in side:
            path.append(current)
            current = by_id.get(current.parent_lot_id or "")
        hops = len(path) - 1
        if hops == 0 or hops > th.circular_flow_hops:
            continue
        path.reverse()  # exit lot first
        route = " → ".join(facts.party(p.holder) for p in path)
        out.append(
            Candidate(
                rule="circular_flow",
                severity=Severity.CRITICAL,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title=f"Loan money came back to {facts.party(lot.holder).split(' (')[0]} after {hops} hop(s)",
                explanation=f"{facts.money(lot.amount)} reached {facts.party(lot.holder)} on "
                f"{fmt_time(lot.timestamp)} after {hops} hop(s) away from the borrower's side: {route} "
                f"(limit {th.circular_flow_hops}).",
                lot_ids=tuple(p.lot_id for p in path),
                source_block=lot.block_number,
                details={"hops": hops, "route": [p.holder for p in path], "amount": lot.amount},
            )
        )
    return out


def rapid_pass_through(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """Most of a disbursement leaving for payees the loan does not name within hours (needs terms)."""
    if facts.terms is None:
        return []
    named = set(facts.terms.counterparties) | _borrower_side(facts)
    window = th.pass_through_hours * 3600
    out = []
    for d in facts.lots:
        if not d.is_disbursement:
            continue
        fast = [
            c
            for c in facts.lots
            if c.parent_lot_id == d.lot_id and c.holder not in named and c.timestamp - d.timestamp <= window
        ]
        total = sum(c.amount for c in fast)
        if not fast or total < th.pass_through_share * d.amount:
            continue
        payees = sorted({c.holder for c in fast})
        hours = max(c.timestamp for c in fast) - d.timestamp
        out.append(
            Candidate(
                rule="rapid_pass_through",
                severity=Severity.HIGH,
                loan_id=facts.loan_id,
                cause_key=d.lot_id,
                title=f"{_share(total, d.amount)} of a disbursement passed on to undeclared payees within "
                f"{hours / 3600:.1f} h",
                explanation=f"Of {facts.money(d.amount)} disbursed to {facts.party(d.holder)} on "
                f"{fmt_time(d.timestamp)}, {facts.money(total)} ({_share(total, d.amount)}) left within "
                f"{hours / 3600:.1f} hours for payee(s) not named in the loan contract: "
                f"{', '.join(facts.party(p) for p in payees)} (threshold {th.pass_through_share:.0%} within "
                f"{th.pass_through_hours:g} h).",
                lot_ids=(d.lot_id, *(c.lot_id for c in fast)),
                source_block=max(c.block_number for c in fast),
                details={"disbursed": d.amount, "passed_on": total, "payees": payees, "seconds": hours},
            )
        )
    return out


def structuring(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """Several payments just under the approval threshold in a short window (needs terms' threshold).

    Near-threshold payments are grouped from the earliest: a group is everything within the window of its
    first payment, so a growing group keeps its cause key (its first lot) and is one alert."""
    if facts.terms is None or facts.terms.approval_threshold is None:
        return []
    limit = facts.terms.approval_threshold
    floor = limit * (1 - th.structuring_margin)
    near = [lot for lot in facts.lots if floor <= lot.amount < limit]
    window = th.structuring_window_hours * 3600
    out = []
    i = 0
    while i < len(near):
        group = [n for n in near[i:] if n.timestamp - near[i].timestamp <= window]
        if len(group) >= th.structuring_count:
            total = sum(g.amount for g in group)
            span = group[-1].timestamp - group[0].timestamp
            out.append(
                Candidate(
                    rule="structuring",
                    severity=Severity.HIGH,
                    loan_id=facts.loan_id,
                    cause_key=group[0].lot_id,
                    title=f"{len(group)} payments just under the {facts.money(limit)} approval threshold",
                    explanation=f"{len(group)} payments of between "
                    f"{facts.money(min(g.amount for g in group))} and "
                    f"{facts.money(max(g.amount for g in group))} (total {facts.money(total)}), each just "
                    f"under the {facts.money(limit)} approval threshold, were made within "
                    f"{span / 3600:.1f} hours from {fmt_time(group[0].timestamp)}, to "
                    f"{', '.join(sorted({facts.party(g.holder) for g in group}))}.",
                    lot_ids=tuple(g.lot_id for g in group),
                    source_block=max(g.block_number for g in group),
                    details={"count": len(group), "total": total, "threshold": limit},
                )
            )
        i += len(group)
    return out


def concentration(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """Too much of the principal received by one payee the loan contract does not name (needs terms)."""
    if facts.terms is None or facts.principal == 0:
        return []
    named = set(facts.terms.counterparties) | _borrower_side(facts)
    received: dict[str, list[LotFact]] = defaultdict(list)
    for lot in facts.lots:
        if lot.holder not in named:
            received[lot.holder].append(lot)
    out = []
    for payee, lots in sorted(received.items()):
        total = sum(lot.amount for lot in lots)
        if total < th.concentration_share * facts.principal:
            continue
        out.append(
            Candidate(
                rule="concentration",
                severity=Severity.MEDIUM,
                loan_id=facts.loan_id,
                cause_key=payee,
                title=f"{_share(total, facts.principal)} of the loan went to one payee not named in it",
                explanation=f"{facts.party(payee)}, not named in the loan contract, received "
                f"{facts.money(total)} in {len(lots)} payment(s) up to {fmt_time(lots[-1].timestamp)}: "
                f"{_share(total, facts.principal)} of the {facts.money(facts.principal)} principal "
                f"(threshold {th.concentration_share:.0%}).",
                lot_ids=tuple(lot.lot_id for lot in lots),
                source_block=max(lot.block_number for lot in lots),
                details={"payee": payee, "received": total, "principal": facts.principal},
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- confirmations


def unconfirmed_payment(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A payment (or entrusted disbursement) its payee has not confirmed after N days (open loans)."""
    if not facts.is_open:
        return []
    limit = th.unconfirmed_days * DAY
    out = []
    for lot in facts.lots:
        if lot.confirmation != "unconfirmed" or (lot.is_disbursement and not lot.entrusted):
            continue
        age = facts.now - lot.timestamp
        if age <= limit:
            continue
        out.append(
            Candidate(
                rule="unconfirmed_payment",
                severity=Severity.LOW,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title=f"Payment not confirmed by its payee after {age // DAY} days",
                explanation=f"{_what(facts, lot)} on {fmt_time(lot.timestamp)}; the payee has not confirmed "
                f"receipt after {age // DAY} days (limit {th.unconfirmed_days:g} days).",
                lot_ids=(lot.lot_id,),
                source_block=lot.block_number,
                details={"days": age // DAY, "payee": lot.holder, "amount": lot.amount},
            )
        )
    return out


def disputed_payment(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A payment whose payee disputes it (the latest confirmation or dispute stands)."""
    out = []
    for lot in facts.lots:
        if lot.confirmation != "disputed" or lot.confirmation_block is None:
            continue
        when = fmt_time(lot.confirmation_time or lot.timestamp)
        out.append(
            Candidate(
                rule="disputed_payment",
                severity=Severity.HIGH,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title="Payee disputes a payment",
                explanation=f"{_what(facts, lot)} on {fmt_time(lot.timestamp)}; the payee disputed it on "
                f"{when}.",
                lot_ids=(lot.lot_id,),
                source_block=lot.confirmation_block,
                details={"payee": lot.holder, "amount": lot.amount},
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- repayment


def _unpaid_installments(facts: LoanFacts) -> list[tuple[date, int, int, int]]:
    """(due date, installment amount, cumulative due, days past due) of principal installments still short."""
    if facts.terms is None or not facts.is_open:
        return []
    today = _date(facts.now)
    cumulative = 0
    out = []
    for item in facts.terms.schedule(facts.principal):
        if not item.principal:
            continue
        cumulative += item.principal
        if item.due_date < today and facts.repaid < cumulative:
            out.append((item.due_date, item.principal, cumulative, (today - item.due_date).days))
    return out


def servicing_position(facts: LoanFacts, as_of: date | None = None) -> Position | None:
    """The loan's schedule position (`ledger.protocol.servicing.position`) on `as_of` (default: the chain's
    date), None without a schedule in the terms. Repayments are dated by their block (UTC)."""
    if facts.terms is None:
        return None
    schedule = facts.terms.schedule(facts.principal)
    if not schedule:
        return None
    it = facts.terms.interest
    rate = Decimal(0)
    if it is not None:
        rate = (
            it.penalty_rate if it.penalty_rate is not None else it.annual_rate * facts.penalty_rate_multiplier
        )
    payments = [PaymentRecord(_date(r.timestamp), r.amount, r.interest, r.penalty) for r in facts.repayments]
    return position(
        schedule,
        payments,
        as_of or _date(facts.now),
        penalty_rate=rate,
        day_count=it.day_count if it else DayCount.ACT_365,
        grace_days=it.grace_days if it else 0,
    )


@dataclass(frozen=True)
class PastDue:
    """Days past due and what they count from: the oldest unpaid principal or interest, or the maturity."""

    days: int
    since: date | None = None
    what: str = ""

    def text(self) -> str:
        return (
            f"{self.days} day(s) past due since {self.since.isoformat()} ({self.what})" if self.since else ""
        )


def past_due(facts: LoanFacts) -> PastDue:
    """Days past due from the oldest scheduled principal or interest unpaid after its due date, or from the
    maturity with principal outstanding, whichever is older (calendar dates of the chain's clock, UTC).
    A change of terms never resets it: what was scheduled and not paid stays past due."""
    if not facts.is_open:
        return PastDue(0)
    candidates: list[PastDue] = []
    pos = servicing_position(facts)
    if pos is not None and pos.oldest_overdue is not None:
        o = pos.oldest_overdue
        candidates.append(PastDue(o.days, o.due_date, f"{o.kind} due {o.due_date.isoformat()} unpaid"))
    if facts.outstanding > 0 and facts.now > facts.maturity:
        matured = _date(facts.maturity)
        days = (_date(facts.now) - matured).days
        if days > 0:
            candidates.append(PastDue(days, matured, f"principal outstanding after maturity {matured}"))
    today = _date(facts.now)
    # A change of terms never resets days past due: a maturity already passed when the terms changed keeps
    # counting until the principal outstanding then is repaid; arrears the new terms carry over likewise.
    for c in facts.terms_changes:
        if c.previous_maturity is None or not c.outstanding or c.previous_maturity >= c.timestamp:
            continue
        repaid_since = sum(
            r.amount
            for r in facts.repayments
            if (r.block_number, r.log_index) > (c.block_number, c.log_index)
        )
        if repaid_since < c.outstanding:
            old = _date(c.previous_maturity)
            candidates.append(
                PastDue(
                    (today - old).days,
                    old,
                    f"principal outstanding after the original maturity {old}, terms changed on "
                    f"{_date(c.timestamp)} (a change of terms never resets days past due)",
                )
            )
    carried = facts.terms.carried_arrears if facts.terms is not None else None
    if carried is not None and facts.terms_changes:
        last = facts.terms_changes[-1]
        paid_since = sum(
            r.amount + r.interest
            for r in facts.repayments
            if (r.block_number, r.log_index) > (last.block_number, last.log_index)
        )
        if paid_since < carried.amount and carried.since < today:
            candidates.append(
                PastDue(
                    (today - carried.since).days,
                    carried.since,
                    f"arrears of {facts.money(carried.amount)} carried over by the change of terms, "
                    f"due since {carried.since}",
                )
            )
    return max(candidates, key=lambda p: p.days, default=PastDue(0))


def days_past_due(facts: LoanFacts) -> int:
    """Days past due (see `past_due`)."""
    return past_due(facts).days


def _dpd_severity(days: int) -> Severity:
    return Severity.MEDIUM if days <= 30 else Severity.HIGH if days <= 90 else Severity.CRITICAL


def late_repayment(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A scheduled installment not (fully) repaid after its due date (needs terms' schedule)."""
    out = []
    for due, amount, cumulative, days in _unpaid_installments(facts):
        short = cumulative - facts.repaid
        out.append(
            Candidate(
                rule="late_repayment",
                severity=_dpd_severity(days),
                loan_id=facts.loan_id,
                cause_key=f"installment:{due.isoformat()}",
                title=f"Repayment {days} day(s) past due",
                explanation=f"The installment of {facts.money(amount)} due on {due.isoformat()} is {days} "
                f"day(s) past due: {facts.money(cumulative)} was due by then and {facts.money(facts.repaid)} "
                f"has been repaid, {facts.money(short)} short.",
                source_block=facts.block_number,
                details={"due_date": due.isoformat(), "days_past_due": days, "shortfall": short},
            )
        )
    return out


def entrusted_payment_required(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A self-paid disbursement (to the borrower) above what the loan type lets a borrower pay itself: the
    rule wanted the bank to pay the counterparty (受托支付). Needs the loan type in the terms."""
    policy = th.policy(facts)
    if policy is None:
        return []
    total = facts.terms.total_investment if facts.terms is not None else None
    limit = policy.entrusted_limit(total)
    if limit is None:
        return []
    kind = policy.loan_type.value.replace("_", " ")
    out = []
    for lot in facts.lots:
        if not lot.is_disbursement or lot.entrusted is not False or lot.amount <= limit:
            continue
        out.append(
            Candidate(
                rule="entrusted_payment_required",
                severity=Severity.HIGH,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title=f"Self-paid disbursement of {facts.money(lot.amount)} should have been entrusted "
                "(受托支付)",
                explanation=f"{facts.money(lot.amount)} was disbursed to the borrower on "
                f"{fmt_time(lot.timestamp)} for it to pay itself, above the {facts.money(limit)} a "
                f"{kind} loan allows: {policy.rule}.",
                lot_ids=(lot.lot_id,),
                source_block=lot.block_number,
                details={"amount": lot.amount, "limit": limit, "loan_type": policy.loan_type.value},
            )
        )
    return out


def self_paid_report_overdue(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A self-paid tranche out of which the borrower has recorded no payment within the report window: the
    bank's after-the-fact check of self-paid loans has nothing to check."""
    if not facts.is_open:
        return []
    window = th.self_paid_report_days * DAY
    out = []
    for lot in facts.lots:
        if not lot.is_disbursement or lot.entrusted is not False or lot.remaining != lot.amount:
            continue
        if facts.now - lot.timestamp <= window:
            continue
        days = (facts.now - lot.timestamp) // DAY
        out.append(
            Candidate(
                rule="self_paid_report_overdue",
                severity=Severity.MEDIUM,
                loan_id=facts.loan_id,
                cause_key=lot.lot_id,
                title=f"No payment reported out of a self-paid tranche after {days} day(s)",
                explanation=f"{facts.money(lot.amount)} was disbursed to the borrower on "
                f"{fmt_time(lot.timestamp)} (self-paid, 自主支付); no payment out of it has been recorded "
                f"in the {th.self_paid_report_days:g} days the borrower has to report how it used the money, "
                "so the bank cannot check accounts, vouchers or splitting under a threshold (化整为零).",
                lot_ids=(lot.lot_id,),
                source_block=lot.block_number,
                details={"amount": lot.amount, "days": days},
            )
        )
    return out


def late_interest(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """Scheduled interest not (fully) paid after its due date (needs an interest schedule in the terms);
    repayments' interest parts are applied to the interest dates oldest first."""
    if facts.terms is None or facts.terms.interest is None or not facts.is_open:
        return []
    today = _date(facts.now)
    paid = sum(r.interest for r in facts.repayments)
    out = []
    cumulative = 0
    for item in facts.terms.schedule(facts.principal):
        cumulative += item.interest
        if not item.interest or item.due_date >= today or paid >= cumulative:
            continue
        short = min(item.interest, cumulative - paid)
        days = (today - item.due_date).days
        out.append(
            Candidate(
                rule="late_interest",
                severity=_dpd_severity(days),
                loan_id=facts.loan_id,
                cause_key=f"interest:{item.due_date.isoformat()}",
                title=f"Interest {days} day(s) past due",
                explanation=f"The interest of {facts.money(item.interest)} due on "
                f"{item.due_date.isoformat()} is {days} day(s) past due, {facts.money(short)} of it "
                "unpaid. Days past due count from unpaid interest as from unpaid principal (2023 "
                "classification rules).",
                source_block=facts.block_number,
                details={"due_date": item.due_date.isoformat(), "days_past_due": days, "shortfall": short},
            )
        )
    return out


def past_maturity(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """An open loan past its maturity with principal still outstanding."""
    if not facts.is_open or facts.outstanding <= 0 or facts.now <= facts.maturity:
        return []
    days = (facts.now - facts.maturity) // DAY
    return [
        Candidate(
            rule="past_maturity",
            severity=Severity.CRITICAL if days > 90 else Severity.HIGH,
            loan_id=facts.loan_id,
            cause_key=f"maturity:{facts.maturity}",
            title=f"Loan {days} day(s) past maturity with principal outstanding",
            explanation=f"The loan matured on {fmt_time(facts.maturity)}; "
            f"{facts.money(facts.outstanding)} of the {facts.money(facts.disbursed)} disbursed is still "
            f"outstanding {days} day(s) later.",
            source_block=facts.block_number,
            details={"days_past_maturity": days, "outstanding": facts.outstanding},
        )
    ]


# ---------------------------------------------------------------------------------------------- collateral


def _latest_valuations(facts: LoanFacts) -> dict[str, RecordFact]:
    """Each collateral id's latest valuation, an appraiser's or the lender's own estimate (chain order)."""
    latest: dict[str, RecordFact] = {}
    for v in sorted(facts.valuations, key=lambda v: (v.block_number, v.log_index)):
        latest[v.key] = v
    return latest


@dataclass(frozen=True)
class CoverItem:
    """One item counted as cover: its latest valuation (None: never valued) and haircut."""

    item_id: str
    label: str
    haircut_bp: int
    valuation: RecordFact | None
    since: int  # registered at (the age of a never-valued item counts from here)
    revaluation_days: float

    @property
    def effective(self) -> int:
        return 0 if self.valuation is None else effective_value(self.valuation.amount, self.haircut_bp)


def cover_items(facts: LoanFacts, th: Thresholds) -> list[CoverItem]:
    """What counts as cover: with a register, its items not released (registered or seized), at their
    latest valuation less the haircut; without one, every valued collateral id at full value (as before)."""
    latest = _latest_valuations(facts)
    if not facts.collateral_items:
        return [
            CoverItem(cid, f"{cid[:10]}…", 0, v, v.timestamp, th.collateral_stale_days)
            for cid, v in sorted(latest.items())
        ]
    return [
        CoverItem(
            f.record_id,
            f"{f.item.item_ref} ({f.item.type.value}, {f.item.registration_number})",
            f.item.haircut_bp,
            latest.get(f.record_id),
            f.registered_at,
            float(f.item.revaluation_days or th.collateral_stale_days),
        )
        for f in sorted(facts.collateral_items, key=lambda f: f.item.item_ref)
        if f.item.status is not CollateralStatus.RELEASED
    ]


def collateral_cover(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """The effective collateral value, Σ value × (1 − haircut) over the register's items not released (each at
    its latest valuation, rounded down to the fen), covers less of the outstanding principal than the terms
    require."""
    if facts.terms is None or facts.terms.required_collateral_cover is None:
        return []
    if not facts.is_open or facts.outstanding <= 0:
        return []
    required = facts.terms.required_collateral_cover
    items = cover_items(facts, th)
    valued = [i for i in items if i.valuation is not None]
    value = sum(i.effective for i in items)
    cover = Decimal(value) / Decimal(facts.outstanding)
    if cover >= required:
        return []
    if valued:
        newest = max((i.valuation for i in valued if i.valuation is not None),
                     key=lambda v: (v.block_number, v.log_index))  # fmt: skip
        after = " after haircuts" if facts.collateral_items else ""
        basis = (
            f"Collateral valued at {facts.money(value)}{after} ({len(valued)} item(s), latest valuation "
            f"{fmt_time(newest.timestamp)}) covers {cover:.2f}× the outstanding "
            f"{facts.money(facts.outstanding)}"
        )
        source = newest.block_number
    else:
        basis = (
            f"No collateral valuation is recorded against the outstanding {facts.money(facts.outstanding)}"
        )
        source = facts.block_number
    return [
        Candidate(
            rule="collateral_cover",
            severity=Severity.HIGH,
            loan_id=facts.loan_id,
            cause_key="cover",
            title=f"Collateral cover {cover:.2f}× below the required {required}×",
            explanation=f"{basis}; the loan requires {required}×.",
            source_block=source,
            details={
                "cover": str(cover.quantize(Decimal("0.0001"))),
                "required": str(required),
                "value": value,
            },
        )
    ]


def collateral_stale(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A collateral item (not released) whose latest valuation is older than its revaluation interval (the
    item's own, else N days), or never valued that long after it was registered (open loans)."""
    if not facts.is_open:
        return []
    out = []
    for item in cover_items(facts, th):
        v = item.valuation
        age = facts.now - (v.timestamp if v is not None else item.since)
        if age <= item.revaluation_days * DAY:
            continue
        if v is None:
            title = f"Collateral never valued, registered {age // DAY} days ago"
            explanation = (
                f"Collateral {item.label} was registered on {fmt_time(item.since)} and has no valuation "
                f"{age // DAY} days later (limit {item.revaluation_days:g} days)."
            )
            cause, source = f"{item.item_id}@registered", facts.block_number
        else:
            title = f"Collateral valuation {age // DAY} days old"
            explanation = (
                f"Collateral {item.label} was last valued at {facts.money(v.amount)} on "
                f"{fmt_time(v.timestamp)}, {age // DAY} days ago (limit {item.revaluation_days:g} days)."
            )
            cause, source = f"{item.item_id}@{v.block_number}:{v.log_index}", v.block_number
        out.append(
            Candidate(
                rule="collateral_stale",
                severity=Severity.LOW,
                loan_id=facts.loan_id,
                cause_key=cause,
                title=title,
                explanation=explanation,
                source_block=source,
                details={"collateral_id": item.item_id, "days": age // DAY,
                         "value": v.amount if v is not None else None},
            )
        )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------- inspections


def _scheduled_inspections_missed(facts: LoanFacts) -> list[Candidate]:
    """The k-th scheduled inspection of a kind is past its date and fewer than k inspections of that kind
    are recorded: only site visits satisfy a site visit, only interviews an interview."""
    assert facts.terms is not None
    today = _date(facts.now)
    out = []
    number: dict[str, int] = defaultdict(int)
    for k, item in enumerate(sorted(facts.terms.inspection_schedule, key=lambda i: i.due_date), start=1):
        number[item.kind] += 1
        chain_kind = str(int(InspectionKind[item.kind.upper()]))
        done = sum(1 for r in facts.inspections if r.key == chain_kind)
        if item.due_date >= today or done >= number[item.kind]:
            continue
        overdue = (today - item.due_date).days
        label = item.kind.replace("_", " ")
        out.append(
            Candidate(
                rule="missed_inspection",
                severity=Severity.MEDIUM,
                loan_id=facts.loan_id,
                cause_key=f"scheduled:{item.due_date.isoformat()}",
                title=f"Scheduled inspection overdue by {overdue} day(s)",
                explanation=f"The loan contract schedules inspection no. {k} ({label}) "
                f"by {item.due_date.isoformat()}; only {done} {label}(s) are recorded, "
                f"{overdue} day(s) after that date.",
                source_block=facts.inspections[-1].block_number if facts.inspections else facts.block_number,
                details={"due_date": item.due_date.isoformat(), "days_overdue": overdue, "number": k},
            )
        )
    return out


def missed_inspection(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """No post-loan inspection within the terms' interval (since the last one, or since the loan opened), or
    a scheduled inspection date passed without it."""
    if facts.terms is None or not facts.is_open:
        return []
    if facts.terms.inspection_interval_days is None:
        return _scheduled_inspections_missed(facts)
    interval = facts.terms.inspection_interval_days
    last = facts.inspections[-1] if facts.inspections else None
    since = last.timestamp if last is not None else facts.opened_at
    due = since + interval * DAY
    if facts.now <= due:
        return []
    overdue = (facts.now - due) // DAY
    basis = (
        f"the last inspection was on {fmt_time(last.timestamp)}"
        if last is not None
        else f"none has been recorded since the loan opened on {fmt_time(facts.opened_at)}"
    )
    return [
        Candidate(
            rule="missed_inspection",
            severity=Severity.MEDIUM,
            loan_id=facts.loan_id,
            cause_key=f"due:{due}",
            title=f"Post-loan inspection overdue by {overdue} day(s)",
            explanation=f"An inspection is due every {interval} days and was due on {fmt_time(due)}; "
            f"{basis}. It is {overdue} day(s) overdue.",
            source_block=last.block_number if last is not None else facts.block_number,
            details={"due": due, "days_overdue": overdue, "interval_days": interval},
        )
    ]


# ---------------------------------------------------------------------------------------------- site visits


def site_visit_due(facts: LoanFacts, th: Thresholds) -> tuple[int, int, RecordFact | None] | None:
    """(due timestamp, interval days, last site visit) of an open loan with money out, by its risk class's
    visit frequency; None when no visit is due at all (nothing disbursed, or the loan is not open). Counts
    from the last site visit (only `SITE_VISIT` counts; an interview or a document review does not), else
    from the first disbursement."""
    if not facts.is_open:
        return None
    out = [lot.timestamp for lot in facts.lots if lot.is_disbursement]
    if not out:
        return None
    days = th.site_visit_days[min(max(facts.risk_class, 0), len(th.site_visit_days) - 1)]
    if facts.score_bands and facts.score_bands[0][1] in WATCH_BANDS:
        days = min(days, th.score_visit_days)  # issue 21: a D or E behaviour score visits more often
    site = str(int(InspectionKind.SITE_VISIT))
    visits = [r for r in facts.inspections if r.key == site]
    last = max(visits, key=lambda r: (r.block_number, r.log_index)) if visits else None
    since = last.timestamp if last is not None else min(out)
    return since + days * DAY, days, last


def missed_site_visit(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """No site visit (实地走访) within the bank's visit frequency for the loan's risk class (quarterly for
    正常, monthly for 关注 and worse by default), counted from the last site visit or the first
    disbursement."""
    due = site_visit_due(facts, th)
    if due is None or facts.now <= due[0]:
        return []
    when, days, last = due
    overdue = (facts.now - when) // DAY
    risk = RiskClass(min(max(facts.risk_class, 0), 4))
    classed = f"A loan classed {risk.en} ({risk.zh})"
    band = facts.score_bands[0][1] if facts.score_bands else None
    if band in WATCH_BANDS and days == th.score_visit_days:
        en, zh = BAND_WORDS[str(band)]
        classed += f" with behaviour score band {band} ({en}, {zh}: 评分等级较差，提高走访频率)"
    basis = (
        f"the last site visit was recorded on {fmt_time(last.timestamp)}"
        if last is not None
        else "no site visit has been recorded since the first disbursement"
    )
    return [
        Candidate(
            rule="missed_site_visit",
            severity=Severity.MEDIUM,
            loan_id=facts.loan_id,
            cause_key=f"site-visit-due:{when}",
            title=f"Site visit overdue by {overdue} day(s) (实地走访逾期)",
            explanation=f"{classed} needs a site visit every {days} days (bank "
            f"policy); {basis}, so one was due on {fmt_time(when)}. It is {overdue} day(s) overdue. "
            "Interviews and document reviews do not count as site visits.",
            source_block=last.block_number if last is not None else facts.block_number,
            details={
                "due": when,
                "days_overdue": overdue,
                "interval_days": days,
                "risk_class": int(risk),
                "score_band": band,
            },
        )
    ]


# ------------------------------------------------------------------------------------------ behaviour score


def score_band_worse(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """The loan's behaviour score fell into a worse band (评分等级下调): raised when the latest score's band
    is worse than the band it held before, keyed by the first scoring in the new band, so it stays one alert
    while the loan stays there and goes away (resolved by the system) when the band recovers."""
    history = facts.score_bands
    if not history or not facts.is_open:
        return []
    current = history[0][1]
    since = history[0][0]
    for stamp, band in history[1:]:
        if band != current:
            previous = band
            break
        since = stamp
    else:
        return []
    if not is_worse(current, previous):
        return []
    en, zh = BAND_WORDS[current]
    visits = (
        f" Site visits now fall due every {th.score_visit_days} days at most (bank policy for bands D and E)."
        if current in WATCH_BANDS
        else ""
    )
    return [
        Candidate(
            rule="score_band_worse",
            severity=Severity.HIGH if current == "E" else Severity.MEDIUM,
            loan_id=facts.loan_id,
            cause_key=f"score-band:{since}:{current}",
            title=f"Behaviour score fell from band {previous} to {current} "
            f"(评分等级由{previous}降至{current})",
            explanation=f"The behaviour score of {fmt_time(since)} puts the loan in band {current} "
            f"({en}, {zh}); before it was in band {previous}. Read the score's reasons on the loan "
            f"page.{visits}",
            source_block=facts.block_number,
            details={"from_band": previous, "to_band": current, "scored_as_of": since},
        )
    ]


# ---------------------------------------------------------------------------------------------- guarantees


def _guarantor(facts: LoanFacts, g: GuaranteeFact) -> str:
    if g.guarantor.startswith("0x") and len(g.guarantor) == 42:
        return facts.party(g.guarantor)
    return f"off-ledger party {g.guarantor[:10]}…"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]  # not str.capitalize: it would lower-case a checksummed address


def _kind_label(kind: str) -> str:
    from ledger.protocol.guarantees import GuaranteeKind

    k = GuaranteeKind(kind)
    return f"{k.en} ({k.zh})"


def guarantee_expiry(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A guarantee that expires before the loan matures (担保期限短于贷款期限): the last part of the loan
    is unguaranteed."""
    if facts.guarantees is None or not facts.is_open:
        return []
    maturity = _date(facts.maturity)
    out = []
    for g in facts.guarantees.of_loan(facts.loan_id):
        if g.expiry >= maturity:
            continue
        out.append(
            Candidate(
                rule="guarantee_expiry",
                severity=Severity.MEDIUM,
                loan_id=facts.loan_id,
                cause_key=f"guarantee:{g.record_id}",
                title=f"Guarantee expires {(maturity - g.expiry).days} day(s) before the loan matures",
                explanation=f"The {_kind_label(g.kind)} of {facts.money(g.amount)} by {_guarantor(facts, g)} "
                f"expires on {g.expiry.isoformat()}; the loan matures on {maturity.isoformat()}.",
                source_block=g.block_number,
                details={"record_id": g.record_id, "expiry": g.expiry.isoformat()},
            )
        )
    return out


def guarantor_overdue(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A guarantor that is itself past due on a loan in this ledger (担保人自身逾期)."""
    if facts.guarantees is None or not facts.is_open:
        return []
    out = []
    for g in facts.guarantees.of_loan(facts.loan_id):
        days = facts.guarantees.overdue.get(g.guarantor, 0)
        if days <= 0:
            continue
        out.append(
            Candidate(
                rule="guarantor_overdue",
                severity=Severity.HIGH,
                loan_id=facts.loan_id,
                cause_key=f"guarantor:{g.guarantor}",
                title=f"Guarantor {days} day(s) past due on its own loan",
                explanation=f"{_upper_first(_guarantor(facts, g))} guarantees {facts.money(g.amount)} of "
                f"this loan and is itself {days} day(s) past due as a borrower in this ledger.",
                source_block=g.block_number,
                details={"guarantor": g.guarantor, "days_past_due": days},
            )
        )
    return out


def guarantor_over_capacity(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """A guarantor whose active guarantees across all loans exceed the capacity it declared (超额担保)."""
    if facts.guarantees is None or not facts.is_open:
        return []
    out = []
    for party in sorted({g.guarantor for g in facts.guarantees.of_loan(facts.loan_id)}):
        backed = facts.guarantees.by_guarantor(party)
        declared = [g for g in backed if g.capacity is not None]
        if not declared:
            continue
        latest = max(declared, key=lambda g: (g.block_number, g.log_index))
        capacity = int(latest.capacity or 0)
        total = sum(g.amount for g in backed)
        if total <= capacity:
            continue
        who = _guarantor(facts, latest)
        out.append(
            Candidate(
                rule="guarantor_over_capacity",
                severity=Severity.MEDIUM,
                loan_id=facts.loan_id,
                cause_key=f"capacity:{party}",
                title="Guarantor above its declared capacity",
                explanation=f"{_upper_first(who)} guarantees {facts.money(total)} across {len(backed)} "
                f"guarantee(s) on {len({g.loan_id for g in backed})} loan(s), above its declared capacity of "
                f"{facts.money(capacity)}.",
                source_block=max(g.block_number for g in backed),
                details={"guarantor": party, "total": total, "capacity": capacity},
            )
        )
    return out


def guarantee_cycle(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """The borrower sits in a cycle of guarantees: mutual (互保, A backs B and B backs A) or circular (联保,
    A backs B backs C backs A). One alert per cycle; `details.cycle` lists its members to draw."""
    if facts.guarantees is None or not facts.is_open:
        return []
    out = []
    for cycle in cycles_through(facts.guarantees.edges(), facts.borrower):
        members = list(cycle)
        first = members.index(min(members))
        key = "→".join(members[first:] + members[:first])
        own = facts.borrower.lower()
        names = [facts.party(facts.borrower) if m == own else f"{m[:6]}…{m[-4:]}" for m in cycle]
        kind = "Mutual guarantee (互保)" if len(cycle) == 2 else f"Guarantee circle of {len(cycle)} (联保)"
        chain = " backs ".join([*names, names[0]])
        out.append(
            Candidate(
                rule="guarantee_cycle",
                severity=Severity.HIGH,
                loan_id=facts.loan_id,
                cause_key=f"cycle:{key}",
                title=f"{kind} involving the borrower",
                explanation=f"{chain}: the borrowers guarantee each other, so one default weakens every "
                "guarantee in the circle.",
                source_block=max(g.block_number for g in facts.guarantees.active),
                details={"cycle": list(cycle)},
            )
        )
    return out


# ---------------------------------------------------------------------------------------------- preservation


def preservation_deadline(facts: LoanFacts, th: Thresholds) -> list[Candidate]:
    """An asset-preservation deadline not met that lapses within N days, or has lapsed (财产保全期限): a
    pre-suit preservation is lifted without a lawsuit within 30 days of the ruling; a seizure's term ends."""
    if facts.status == LoanStatus.REPAID:
        return []
    today = _date(facts.now)
    out = []
    for c in facts.preservation:
        case = c.case
        for d in case.all_deadlines():
            if d.met_on is not None:
                continue
            left = (d.due_date - today).days
            if left > th.preservation_warning_days:
                continue
            when = f"lapsed {-left} day(s) ago" if left < 0 else f"lapses in {left} day(s)"
            if left == 0:
                when = "lapses today"
            out.append(
                Candidate(
                    rule="preservation_deadline",
                    severity=Severity.HIGH if left <= 0 else Severity.MEDIUM,
                    loan_id=facts.loan_id,
                    cause_key=f"{c.record_id}:{d.due_date.isoformat()}:{d.what}",
                    title=f"Preservation deadline {when} (保全期限)",
                    explanation=f"Case {case.case_ref} ({case.kind.en}, {case.kind.zh}) at {case.court}: "
                    f"{d.what} by {d.due_date.isoformat()}; it {when}.",
                    source_block=c.block_number,
                    details={"case_ref": case.case_ref, "what": d.what, "due_date": d.due_date.isoformat()},
                )
            )
    return out


RULES: dict[str, Rule] = {
    "undeclared_use": undeclared_use,
    "prohibited_use": prohibited_use,
    "circular_flow": circular_flow,
    "rapid_pass_through": rapid_pass_through,
    "structuring": structuring,
    "concentration": concentration,
    "unconfirmed_payment": unconfirmed_payment,
    "disputed_payment": disputed_payment,
    "late_repayment": late_repayment,
    "late_interest": late_interest,  # issue 18
    "entrusted_payment_required": entrusted_payment_required,  # issue 18
    "self_paid_report_overdue": self_paid_report_overdue,  # issue 18
    "past_maturity": past_maturity,
    "collateral_cover": collateral_cover,
    "collateral_stale": collateral_stale,
    "missed_inspection": missed_inspection,
    "missed_site_visit": missed_site_visit,
    "guarantee_expiry": guarantee_expiry,
    "guarantor_overdue": guarantor_overdue,
    "guarantor_over_capacity": guarantor_over_capacity,
    "guarantee_cycle": guarantee_cycle,
    "preservation_deadline": preservation_deadline,
    "score_band_worse": score_band_worse,  # issue 21
}


# ---------------------------------------------------------------------------------------------- scopes


class Scope(StrEnum):
    """What of a loan a rule reads, so that after a batch the monitor hands it only what the batch changed
    and the bounded context those facts need (issue 24), and reconciles only the causes that could change.
    A rule without a scope is handed the whole loan whenever a batch touches it (right, but its cost grows
    with the loan). The DISBURSEMENT, NEAR_THRESHOLD and PAYEE slices are loaded only for a loan with terms
    (their rules compare with the terms' payees and threshold); their size is the rule's own subject (the
    payments within the window, the near-threshold lots, a payee's lots: the lots its alert lists)."""

    LOAN = "loan"
    """Reads the loan and its records, never its lots: handed the loan with no lots, every time."""
    LOT = "lot"
    """One cause per lot (its id), from that lot, its ancestors (up to `circular_flow_hops` + 2 levels) and
    the loan: handed the lots the batch added or changed, with their ancestors."""
    DISBURSEMENT = "disbursement"
    """One cause per disbursement (its lot id), from its payments within `pass_through_hours`: handed the
    disbursements whose window a changed lot falls in, with their payments in it."""
    NEAR_THRESHOLD = "near_threshold"
    """From the lots just under the terms' approval threshold: handed all of them, when a batch made one."""
    PAYEE = "payee"
    """One cause per payee (its address), from the lots it received: handed them, for the batch's payees."""


RULE_SCOPES: dict[str, Scope] = {
    "undeclared_use": Scope.LOT,
    "prohibited_use": Scope.LOT,
    "circular_flow": Scope.LOT,
    "rapid_pass_through": Scope.DISBURSEMENT,
    "structuring": Scope.NEAR_THRESHOLD,
    "concentration": Scope.PAYEE,
    "unconfirmed_payment": Scope.LOT,
    "disputed_payment": Scope.LOT,
    "late_repayment": Scope.LOAN,
    "past_maturity": Scope.LOAN,
    "collateral_cover": Scope.LOAN,
    "collateral_stale": Scope.LOAN,
    "missed_inspection": Scope.LOAN,
    # The post-loan file (issue 19): each reads the loan's records, class and the guarantee book, no lots.
    "missed_site_visit": Scope.LOAN,
    "guarantee_expiry": Scope.LOAN,
    "guarantor_overdue": Scope.LOAN,
    "guarantor_over_capacity": Scope.LOAN,
    "guarantee_cycle": Scope.LOAN,
    "preservation_deadline": Scope.LOAN,
    # Loan servicing (issue 18): interest reads the schedule and repayments; the entrusted-payment rules
    # one disbursement each.
    "late_interest": Scope.LOAN,
    "entrusted_payment_required": Scope.LOT,
    "self_paid_report_overdue": Scope.LOT,
    # Behaviour score (issue 21): the loan's stored score bands.
    "score_band_worse": Scope.LOAN,
}


def evaluate_rules(
    facts: LoanFacts, thresholds: Thresholds, rules: Sequence[str] | None = None
) -> list[Candidate]:
    """Every candidate of `rules` (default: all) for one loan; a convenience for callers and tests."""
    out: list[Candidate] = []
    for name in rules or list(RULES):
        out.extend(RULES[name](facts, thresholds))
    return out
