"""Five-category loan classification (五级分类, 《商业银行金融资产风险分类办法》 2023): the suggestion, and a
class change proposed by one lender account and approved by a second (maker-checker).

The suggestion is the worse of two things, kept apart and labelled:
- the **floor** the rules impose, each criterion named where it fires:
  days past due from the oldest unpaid principal **or interest** (any → 关注, over 90 → 次级,
  over 270 → 可疑, over 360 → 损失); credit impairment (stated with a proposal: → 次级); per debtor
  for non-retail debtors (another non-performing loan of the same borrower at the bank → 次级); a
  restructured loan (a change of terms granted to a debtor in financial difficulty) is at least 关注
  through its observation period, and one that was non-performing when restructured stays so; a
  non-performing loan is upgraded only when the cure conditions hold together (arrears and penalty paid;
  two consecutive periods or six months repaid on time; an assessment that the debtor can keep paying,
  stated with the proposal; no other non-performing debt of a non-retail debtor at the bank).
- **bank policy overlays** (unresolved high/critical alerts → 关注; collateral cover below what the terms
  require → 关注, one class further past 90 days), labelled as policy, not as the rule.
The bank may classify lower (worse) than the floor, never higher: `check_against_floor` refuses a better class
naming the criterion. A class other than the suggestion needs a written reason.

The suggestion states only what it checked; what it could not check (no schedule in the terms, no required
collateral cover, impairment) is listed under `unchecked`, never asserted.

A class change: `propose_classification` stores the written reason off chain (`classification_proposals`);
`approve_classification` by a second lender account of the same bank re-checks the floor, sends
`classify(loan, class, keccak256(reason))` from the approver's account, and records it
(`classification_reasons`). The proposer must still be an active lender account when it is approved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from ledger.chain.client import TxResult
from ledger.chain.contract import LedgerContract
from ledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from ledger.mirror.read import Mirror
from ledger.monitoring.alerts import Alert
from ledger.monitoring.monitor import Monitor
from ledger.monitoring.rules import (
    LOAN_WRITTEN_OFF,
    LoanFacts,
    PastDue,
    Severity,
    Thresholds,
    cover_items,
    past_due,
    servicing_position,
)
from ledger.protocol.codes import LoanStatus, RiskClass
from ledger.protocol.servicing import PaymentRecord

__all__ = [
    "CLASS_LABELS",
    "AppliedClassification",
    "ClassificationProposal",
    "ClassificationReason",
    "Criterion",
    "DebtorLoan",
    "Observation",
    "Suggestion",
    "approve_classification",
    "check_against_floor",
    "propose_classification",
    "reason_hash",
    "reject_classification",
    "suggest",
    "suggest_classification",
]

CLASS_LABELS = {c: f"{c.zh} ({c.en})" for c in RiskClass}
LOAN_REPAID = LoanStatus.REPAID
NPL = RiskClass.SUBSTANDARD  # 次级 and worse are non-performing
LENDER_ROLE = "0x" + keccak(b"LENDER_ROLE").hex()


class ClassificationReason(SQLModel, table=True):
    """The written reason behind a class applied on chain; `reason_hash` = keccak256(UTF-8 reason)."""

    __tablename__ = "classification_reasons"

    id: int | None = Field(default=None, primary_key=True)
    loan_id: str = Field(sa_type=sa.String(66), index=True)
    risk_class: int
    suggested_class: int
    reason: str = Field(sa_type=sa.Text)
    reason_hash: str = Field(sa_type=sa.String(66), index=True)
    applied_by: str = Field(sa_type=sa.String(200))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    transaction_hash: str | None = Field(default=None, sa_type=sa.String(66))


class ClassificationProposal(SQLModel, table=True):
    """A class change proposed by one lender account (maker), sent on chain when a second account of the same
    bank approves it (checker). `state`: proposed, approved or rejected."""

    __tablename__ = "classification_proposals"

    id: int | None = Field(default=None, primary_key=True)
    loan_id: str = Field(sa_type=sa.String(66), index=True)
    lender_org: str = Field(sa_type=sa.String(66), index=True)
    risk_class: int
    suggested_class: int
    floor_class: int
    reason: str = Field(sa_type=sa.Text)
    capacity_assessed: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    proposed_by: str = Field(sa_type=sa.String(42))
    proposed_by_name: str = Field(sa_type=sa.String(200))
    proposed_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    state: str = Field(sa_type=sa.String(16))
    decided_by: str | None = Field(default=None, sa_type=sa.String(42))
    decided_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    reason_hash: str | None = Field(default=None, sa_type=sa.String(66))
    transaction_hash: str | None = Field(default=None, sa_type=sa.String(66))


@dataclass(frozen=True)
class Criterion:
    """One reason for a class: `rule` (a floor of the 2023 rules) or `policy` (a bank overlay)."""

    code: str
    risk_class: RiskClass
    text: str
    text_zh: str
    kind: str = "rule"

    def line(self) -> str:
        label = "rule" if self.kind == "rule" else "bank policy"
        return f"[{label}] {self.text} → at least {CLASS_LABELS[self.risk_class]}"


@dataclass(frozen=True)
class Observation:
    """A restructured loan's observation period (重组观察期)."""

    restructured_on: date
    start: date | None  # first repayment date after the change (None: the terms hold no schedule)
    earliest_end: date | None
    restarted: int  # how often a missed payment restarted it
    ended: bool
    non_performing_at_restructuring: bool


@dataclass(frozen=True)
class DebtorLoan:
    """Another open loan of the same borrower at the same bank, as the per-debtor floor sees it."""

    loan_id: str
    risk_class: RiskClass
    days_past_due: int
    past_due_since: date | None = None

    @property
    def non_performing(self) -> bool:
        return self.risk_class >= NPL or self.days_past_due > 90


@dataclass(frozen=True)
class Suggestion:
    loan_id: str
    risk_class: RiskClass
    reasons: list[str]
    days_past_due: int
    collateral_cover: Decimal | None
    open_alert_ids: list[int] = field(default_factory=list)
    floor: RiskClass = RiskClass.NORMAL
    criteria: list[Criterion] = field(default_factory=list)
    past_due_since: date | None = None
    past_due_what: str = ""
    debtor_days_past_due: int = 0
    debtor_past_due_since: date | None = None
    observation: Observation | None = None
    cured: bool | None = None  # None: the loan is not non-performing, no upgrade question
    cure_missing: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    current_class: RiskClass = RiskClass.NORMAL
    retail: bool = False

    @property
    def label(self) -> str:
        return CLASS_LABELS[self.risk_class]

    def floor_criterion(self) -> Criterion | None:
        """The rule criterion that sets the floor (the first of the worst)."""
        rules = [c for c in self.criteria if c.kind == "rule" and c.risk_class == self.floor]
        return rules[0] if rules else None

    def text(self) -> str:
        """The suggestion as a reason text (what is hashed when the lender follows it)."""
        return f"Suggested {self.label}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class AppliedClassification:
    loan_id: str
    risk_class: RiskClass
    suggested: RiskClass
    reason: str
    reason_hash: str
    transaction_hash: str
    tx: TxResult | None = None


def reason_hash(reason: str) -> str:
    return "0x" + keccak(reason.encode("utf-8")).hex()


def _cover(facts: LoanFacts) -> Decimal | None:
    if facts.outstanding <= 0:
        return None
    # the register's effective value (haircuts, released items left out), as the collateral_cover rule
    value = sum(i.effective for i in cover_items(facts, Thresholds()))
    return Decimal(value) / Decimal(facts.outstanding)


def _day(ts: int) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def _dpd_criteria(pd: PastDue, *, prefix: str = "", code: str = "days_past_due") -> list[Criterion]:
    if pd.days <= 0:
        return []
    d = pd.days
    since = pd.since.isoformat() if pd.since else "?"
    if d > 360:
        cls, zh = RiskClass.LOSS, "逾期超过360天"
    elif d > 270:
        cls, zh = RiskClass.DOUBTFUL, "逾期超过270天"
    elif d > 90:
        cls, zh = RiskClass.SUBSTANDARD, "逾期超过90天"
    else:
        cls, zh = RiskClass.SPECIAL_MENTION, "逾期"
    return [Criterion(code, cls, f"{prefix}{d} day(s) past due since {since} ({pd.what})", f"{zh}（{d}天）")]


# ------------------------------------------------------------------------------------ restructuring


def _paid_dates(facts: LoanFacts) -> list[tuple[date, date | None]]:
    """(due date, date fully paid or None) of each scheduled item, repayments applied oldest first."""
    if facts.terms is None:
        return []
    schedule = facts.terms.schedule(facts.principal)
    payments = sorted(
        (PaymentRecord(_day(r.timestamp), r.amount, r.interest, r.penalty) for r in facts.repayments),
        key=lambda p: p.paid_on,
    )
    out: list[tuple[date, date | None]] = []
    cum_p = cum_i = 0
    for item in schedule:
        cum_p += item.principal
        cum_i += item.interest
        paid_p = paid_i = 0
        settled: date | None = None
        for pay in payments:
            paid_p += pay.principal
            paid_i += pay.interest
            if paid_p >= cum_p and paid_i >= cum_i:
                settled = pay.paid_on
                break
        if settled is None and cum_p == 0 and cum_i == 0:
            settled = item.due_date
        out.append((item.due_date, settled))
    return out


def _late(due: date, settled: date | None, today: date) -> bool:
    return (settled is None and due < today) or (settled is not None and settled > due)


def _observation(facts: LoanFacts, npl_then: bool, changed_at: int) -> Observation:
    """Starts at the first repayment date after the change; lasts at least two consecutive repayment periods
    and at least a year; a missed payment in it restarts it from the next repayment date."""
    changed = _day(changed_at)
    today = _day(facts.now)
    items = [(d, s) for d, s in _paid_dates(facts) if d > changed]
    if not items:
        return Observation(changed, None, None, 0, False, npl_then)
    start_idx, restarted = 0, 0
    while True:
        start = items[start_idx][0]
        second = items[start_idx + 1][0] if start_idx + 1 < len(items) else None
        earliest_end = max(start + timedelta(days=365), second or start + timedelta(days=365))
        missed = next(
            (
                k
                for k in range(start_idx, len(items))
                if items[k][0] <= earliest_end and items[k][0] < today and _late(*items[k], today)
            ),
            None,
        )
        if missed is None or missed + 1 >= len(items):
            if missed is not None:  # missed the last scheduled payment: nothing to restart from
                return Observation(changed, items[missed][0], None, restarted + 1, False, npl_then)
            ended = today > earliest_end and second is not None and second < today
            return Observation(changed, start, earliest_end, restarted, ended, npl_then)
        start_idx, restarted = missed + 1, restarted + 1


def _cure(facts: LoanFacts, others: Sequence[DebtorLoan], retail: bool) -> list[str]:
    """The cure conditions for upgrading a non-performing loan that do not hold (empty: all checked hold;
    the repayment-capacity assessment is stated with the proposal, not checked here)."""
    missing: list[str] = []
    pos = servicing_position(facts)
    today = _day(facts.now)
    if pos is None:
        if facts.outstanding > 0 and facts.now > facts.maturity:
            missing.append("principal is outstanding past maturity")
        missing.append("no repayment schedule in the terms: normal repayment since cannot be checked")
    else:
        if pos.principal_overdue or pos.interest_overdue or pos.penalty_due:
            missing.append(
                f"arrears not fully paid ({facts.money(pos.principal_overdue)} principal, "
                f"{facts.money(pos.interest_overdue)} interest, {facts.money(pos.penalty_due)} penalty)"
            )
        items = [(d, s) for d, s in _paid_dates(facts) if d <= today]
        last_late = max((k for k, (d, s) in enumerate(items) if _late(d, s, today)), default=None)
        on_time = items[last_late + 1 :] if last_late is not None else items
        since = items[last_late][1] if last_late is not None else None
        months_ok = since is not None and (today - since).days >= 183
        if len(on_time) < 2 and not months_ok and last_late is not None:
            missing.append(
                f"normal repayment for two consecutive periods or six months not yet shown "
                f"({len(on_time)} period(s) on time since the last late payment)"
            )
    if not retail and any(o.non_performing for o in others):
        ids = ", ".join(o.loan_id[:10] + "…" for o in others if o.non_performing)
        missing.append(f"the debtor has other non-performing debt at the bank ({ids})")
    return missing


# ------------------------------------------------------------------------------------ the suggestion


def suggest(
    facts: LoanFacts,
    alerts: list[Alert],
    debtor_loans: Sequence[DebtorLoan] = (),
    *,
    impaired: bool = False,
) -> Suggestion:
    """The suggested class: the rules' floor with each criterion named, and bank-policy overlays labelled."""
    cover = _cover(facts)
    current = RiskClass(facts.risk_class)
    if facts.status == LOAN_WRITTEN_OFF:
        c = Criterion("written_off", RiskClass.LOSS, "the loan was written off", "已核销")
        return Suggestion(
            facts.loan_id, RiskClass.LOSS, [c.line()], 0, cover, floor=RiskClass.LOSS, criteria=[c],
            current_class=current,
        )  # fmt: skip
    if facts.status == LOAN_REPAID:
        return Suggestion(
            facts.loan_id,
            RiskClass.NORMAL,
            ["the loan is repaid and closed"],
            0,
            cover,
            current_class=current,
        )
    retail = facts.terms is not None and facts.terms.loan_type is not None and facts.terms.loan_type.retail
    unchecked: list[str] = []
    criteria: list[Criterion] = []

    pd = past_due(facts)
    criteria += _dpd_criteria(pd)
    if facts.terms is None or not facts.terms.schedule(facts.principal):
        unchecked.append(
            "no repayment schedule in the terms: days past due count from the maturity only "
            "(scheduled principal and interest not checked)"
        )
    debtor_pd = pd
    others = [o for o in debtor_loans if o.loan_id != facts.loan_id]
    if others and max(o.days_past_due for o in others) > pd.days:
        worst = max(others, key=lambda o: o.days_past_due)
        debtor_pd = PastDue(worst.days_past_due, worst.past_due_since, f"loan {worst.loan_id[:10]}…")
    if impaired:
        criteria.append(
            Criterion("credit_impaired", NPL, "credit impairment stated by the lender", "信用减值")
        )
    else:
        unchecked.append("credit impairment is not recorded on chain: state it with a proposal")
    if facts.terms is None or facts.terms.loan_type is None:
        unchecked.append("loan type not stated: treated as non-retail (classified per debtor)")
    if not retail:
        npl = [o for o in others if o.non_performing]
        if npl:
            ids = ", ".join(o.loan_id[:10] + "…" for o in npl)
            criteria.append(
                Criterion(
                    "debtor_non_performing",
                    NPL,
                    f"another loan of this non-retail debtor at the bank is non-performing ({ids})",
                    "同一债务人其他贷款不良",
                )
            )

    observation: Observation | None = None
    difficult = [c for c in facts.terms_changes if c.financial_difficulty]
    if any(c.financial_difficulty is None for c in facts.terms_changes):
        unchecked.append("an older restructuring did not say whether the debtor was in financial difficulty")
    if difficult:
        first = difficult[0]
        before = replace(
            facts,
            now=first.timestamp,
            maturity=first.previous_maturity if first.previous_maturity is not None else facts.maturity,
            repayments=[r for r in facts.repayments if r.block_number < first.block_number],
            terms_changes=[c for c in facts.terms_changes if c.block_number < first.block_number],
        )
        npl_then = past_due(before).days > 90 or _class_at(facts, first.block_number) >= NPL
        observation = _observation(facts, npl_then, difficult[-1].timestamp)
        if not observation.ended:
            when = observation.restructured_on.isoformat()
            period = (
                f"observation period from {observation.start} to at least {observation.earliest_end}"
                if observation.start and observation.earliest_end
                else "observation period open (no repayment date after the change in the terms)"
            )
            criteria.append(
                Criterion(
                    "restructured",
                    RiskClass.SPECIAL_MENTION,
                    f"restructured on {when} for a debtor in financial difficulty; {period}"
                    + (
                        f", restarted {observation.restarted}× by missed payments"
                        if observation.restarted
                        else ""
                    ),
                    "重组资产（观察期内）",
                )
            )
        # Non-performing when restructured: stays so through the observation period, and after it until
        # the upgrade conditions hold.
        if npl_then and (not observation.ended or _cure(facts, others, retail)):
            criteria.append(
                Criterion(
                    "restructured_non_performing",
                    NPL,
                    "non-performing when restructured: stays non-performing through the observation period "
                    "and until the upgrade conditions hold",
                    "重组前已不良",
                )
            )

    floor = max((c.risk_class for c in criteria), default=RiskClass.NORMAL)
    cured: bool | None = None
    cure_missing: list[str] = []
    if current >= NPL and floor < current:
        cure_missing = _cure(facts, others, retail)
        cured = not cure_missing
        if not cured:
            criteria.append(
                Criterion(
                    "not_cured",
                    current,
                    f"upgrading from {CLASS_LABELS[current]} needs: " + "; ".join(cure_missing),
                    "未满足上调条件",
                )
            )
            floor = current
    cls = floor
    serious = [a for a in alerts if Severity(a.severity).rank >= Severity.HIGH.rank]
    for a in sorted(serious, key=lambda a: (-Severity(a.severity).rank, a.id or 0)):
        criteria.append(
            Criterion(
                "alert", RiskClass.SPECIAL_MENTION, f"unresolved {a.severity} alert #{a.id}: {a.title}",
                "未处理的预警", kind="policy",
            )
        )  # fmt: skip
    required = facts.terms.required_collateral_cover if facts.terms is not None else None
    if required is None:
        unchecked.append("collateral cover: the terms state no required cover")
    elif cover is None:
        unchecked.append("collateral cover: nothing outstanding to cover")
    elif cover < required:
        criteria.append(
            Criterion(
                "collateral_cover",
                RiskClass.SPECIAL_MENTION,
                f"collateral cover {cover:.2f}× below the required {required}×",
                "抵质押覆盖不足",
                kind="policy",
            )
        )
        if pd.days > 90 and floor < RiskClass.LOSS:
            criteria.append(
                Criterion(
                    "collateral_cover_past_due",
                    RiskClass(floor + 1),
                    "past due over 90 days without full collateral cover",
                    "逾期超过90天且抵质押不足",
                    kind="policy",
                )
            )
    cls = max([floor, *(c.risk_class for c in criteria if c.kind == "policy")])

    reasons = [c.line() for c in criteria]
    if not reasons:
        checked = ["no principal or interest past due"]
        if facts.terms is None or not facts.terms.schedule(facts.principal):
            checked = ["nothing past maturity"]
        checked.append("no unresolved high-severity alerts")
        if required is not None and cover is not None:
            checked.append(f"collateral cover {cover:.2f}× meets the required {required}×")
        reasons.append("no criterion fired: " + ", ".join(checked))
    return Suggestion(
        facts.loan_id,
        cls,
        reasons,
        pd.days,
        cover,
        [a.id for a in serious if a.id is not None],
        floor=floor,
        criteria=criteria,
        past_due_since=pd.since,
        past_due_what=pd.what,
        debtor_days_past_due=debtor_pd.days,
        debtor_past_due_since=debtor_pd.since,
        observation=observation,
        cured=cured,
        cure_missing=cure_missing,
        unchecked=unchecked,
        current_class=current,
        retail=retail,
    )


def _class_at(facts: LoanFacts, block: int) -> RiskClass:
    cls = RiskClass.NORMAL
    for number, value in facts.class_history:
        if number < block:
            cls = RiskClass(value)
    return cls


def debtor_loans(conn: sa.Connection, facts: LoanFacts, monitor: Monitor) -> list[DebtorLoan]:
    """The borrower's other open loans at the same bank, with their class and days past due."""
    mirror = Mirror(conn)
    out = []
    for loan in mirror.loans(borrower=facts.borrower, status=int(LoanStatus.OPEN)):
        if loan.loan_id == facts.loan_id or loan.lender_org != facts.lender_org:
            continue
        other = monitor.facts(conn, loan.loan_id, now=facts.now)
        if other is None:
            continue
        pd = past_due(other)
        out.append(DebtorLoan(loan.loan_id, RiskClass(int(loan.risk_class)), pd.days, pd.since))
    return out


def suggest_classification(
    conn: sa.Connection, loan_id: str, monitor: Monitor | None = None, *, impaired: bool = False
) -> Suggestion:
    """The suggestion for one mirrored loan (chain time = newest mirrored block unless `monitor` says)."""
    monitor = monitor or Monitor()
    facts = monitor.facts(conn, loan_id)
    if facts is None:
        raise NotFoundError(f"loan {loan_id} is not in the mirror")
    t = Alert.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(t).where(t.c.loan_id == loan_id, t.c.state != "resolved")).all()
    alerts = [Alert.model_validate(dict(r._mapping)) for r in rows]
    return suggest(facts, alerts, debtor_loans(conn, facts, monitor), impaired=impaired)


def check_against_floor(loan_id: str, cls: RiskClass, suggestion: Suggestion) -> None:
    """Refuse a class better than the rules' floor, naming the criterion that sets it."""
    if cls < suggestion.floor:
        criterion = suggestion.floor_criterion()
        because = criterion.text if criterion else "the classification rules"
        raise ValidationError(
            f"loan {loan_id} cannot be classified {CLASS_LABELS[cls]}: the rules put it at least "
            f"{CLASS_LABELS[suggestion.floor]} because {because}",
            hint="a bank may classify lower (worse) than the floor, never higher; choose "
            f"{CLASS_LABELS[suggestion.floor]} or worse",
        )


# ------------------------------------------------------------------------------------ maker-checker


def _proposals() -> sa.Table:
    return ClassificationProposal.__table__  # type: ignore[attr-defined,no-any-return]


def propose_classification(
    engine: Engine,
    *,
    loan_id: str,
    risk_class: RiskClass | int,
    reason: str | None,
    proposed_by: str,
    proposed_by_name: str,
    capacity_assessed: bool = False,
    impaired: bool = False,
    monitor: Monitor | None = None,
) -> ClassificationProposal:
    """Record a proposed class change (maker). Refused when the class is better than the floor, or differs
    from the suggestion without a written reason."""
    cls = RiskClass(int(risk_class))
    with engine.connect() as conn:
        suggestion = suggest_classification(conn, loan_id, monitor, impaired=impaired)
        loan = Mirror(conn).loan(loan_id)
    assert loan is not None  # suggest_classification found it
    _check_upgrade(loan_id, cls, suggestion, capacity_assessed)
    check_against_floor(loan_id, cls, suggestion)
    text = (reason or "").strip()
    if cls != suggestion.risk_class and not text:
        raise ValidationError(
            f"classifying loan {loan_id} as {CLASS_LABELS[cls]} differs from the suggested "
            f"{suggestion.label} ({'; '.join(suggestion.reasons)}): a written reason is required",
            hint="give the reason for departing from the suggestion",
        )
    if not text:
        text = suggestion.text()
    if impaired:
        text += " [credit impairment stated]"
    row = {
        "loan_id": loan_id,
        "lender_org": loan.lender_org,
        "risk_class": int(cls),
        "suggested_class": int(suggestion.risk_class),
        "floor_class": int(suggestion.floor),
        "reason": text,
        "capacity_assessed": capacity_assessed,
        "proposed_by": proposed_by,
        "proposed_by_name": proposed_by_name,
        "proposed_at": datetime.now(UTC),
        "state": "proposed",
    }
    with engine.begin() as conn:
        row["id"] = conn.execute(
            sa.insert(_proposals()).values(**row).returning(_proposals().c.id)
        ).scalar_one()
    return ClassificationProposal.model_validate(row)


def _check_upgrade(loan_id: str, cls: RiskClass, suggestion: Suggestion, capacity_assessed: bool) -> None:
    """Upgrading a non-performing loan also needs the lender's assessment that the debtor can keep paying."""
    if suggestion.current_class >= NPL and cls < suggestion.current_class and not capacity_assessed:
        raise ValidationError(
            f"upgrading loan {loan_id} from {CLASS_LABELS[suggestion.current_class]} needs an assessment "
            "that the debtor can keep paying",
            hint="state capacity_assessed: true with the assessment in the reason",
        )


def _proposal(conn: sa.Connection, proposal_id: int) -> ClassificationProposal:
    row = conn.execute(sa.select(_proposals()).where(_proposals().c.id == proposal_id)).first()
    if row is None:
        raise NotFoundError(f"classification proposal {proposal_id} does not exist")
    return ClassificationProposal.model_validate(dict(row._mapping))


def _active_lender(conn: sa.Connection, account: str, org_id: str) -> bool:
    accounts = SQLModel.metadata.tables["accounts"]
    grants = SQLModel.metadata.tables["role_grants"]
    acct = conn.execute(sa.select(accounts).where(accounts.c.address == account)).first()
    if acct is None or not acct.active or acct.org_id != org_id:
        return False
    grant = conn.execute(
        sa.select(grants.c.active).where(grants.c.account == account, grants.c.role == LENDER_ROLE)
    ).first()
    return grant is not None and bool(grant.active)


def approve_classification(
    engine: Engine,
    ledger: LedgerContract,
    approver: LocalAccount,
    *,
    proposal_id: int,
    approver_org: str,
    approved_by_name: str,
    single_person: bool = False,
    monitor: Monitor | None = None,
) -> AppliedClassification:
    """Approve a proposal (checker) and send the class on chain from the approver's account. The approver must
    be another account of the same bank (unless `single_person`, dev only); the proposer must still be an
    active lender account; the floor is checked again against the mirror as it is now."""
    with engine.connect() as conn:
        p = _proposal(conn, proposal_id)
        proposer_active = _active_lender(conn, p.proposed_by, p.lender_org)
    if p.state != "proposed":
        raise ValidationError(f"classification proposal {proposal_id} is already {p.state}")
    if p.lender_org != approver_org:
        raise PermissionDeniedError(
            f"classification proposal {proposal_id} belongs to another bank",
            hint="a proposal is approved by a lender account of the bank that services the loan",
        )
    if p.proposed_by.lower() == approver.address.lower() and not single_person:
        raise PermissionDeniedError(
            f"{approved_by_name} proposed classification {proposal_id} and cannot also approve it "
            "(maker-checker: a second person approves)",
            hint="ask another lender account of the bank to approve it",
        )
    if not proposer_active:
        raise PermissionDeniedError(
            f"classification proposal {proposal_id} was made by {p.proposed_by_name} ({p.proposed_by}), "
            "which is no longer an active lender account: it cannot be approved",
            hint="reject it and propose again from an active account",
        )
    with engine.connect() as conn:
        suggestion = suggest_classification(
            conn, p.loan_id, monitor, impaired="[credit impairment" in p.reason
        )
    cls = RiskClass(p.risk_class)
    _check_upgrade(p.loan_id, cls, suggestion, p.capacity_assessed)
    check_against_floor(p.loan_id, cls, suggestion)
    digest = reason_hash(p.reason)
    table = ClassificationReason.__table__  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row_id = conn.execute(
            sa.insert(table)
            .values(
                loan_id=p.loan_id,
                risk_class=int(cls),
                suggested_class=int(suggestion.risk_class),
                reason=p.reason,
                reason_hash=digest,
                applied_by=f"proposed by {p.proposed_by_name} ({p.proposed_by}), approved by "
                f"{approved_by_name} ({approver.address})",
                created_at=now,
            )
            .returning(table.c.id)
        ).scalar_one()
    result = ledger.classify(approver, loan_id=p.loan_id, risk_class=int(cls), reason_hash=digest)
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == row_id).values(transaction_hash=result.tx_hash))
        conn.execute(
            sa.update(_proposals())
            .where(_proposals().c.id == proposal_id)
            .values(
                state="approved",
                decided_by=approver.address,
                decided_at=now,
                reason_hash=digest,
                transaction_hash=result.tx_hash,
            )
        )
    return AppliedClassification(
        p.loan_id, cls, suggestion.risk_class, p.reason, digest, result.tx_hash, result
    )


def reject_classification(
    engine: Engine, *, proposal_id: int, rejecter: str, rejecter_org: str
) -> ClassificationProposal:
    """Reject a proposal (any lender account of the bank, the proposer included: withdrawing it)."""
    with engine.begin() as conn:
        p = _proposal(conn, proposal_id)
        if p.lender_org != rejecter_org:
            raise PermissionDeniedError(f"classification proposal {proposal_id} belongs to another bank")
        if p.state != "proposed":
            raise ValidationError(f"classification proposal {proposal_id} is already {p.state}")
        now = datetime.now(UTC)
        conn.execute(
            sa.update(_proposals())
            .where(_proposals().c.id == proposal_id)
            .values(state="rejected", decided_by=rejecter, decided_at=now)
        )
    return p.model_copy(update={"state": "rejected", "decided_by": rejecter, "decided_at": now})
