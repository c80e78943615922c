"""Loan servicing (issue 18): schedules, interest, penalty, allocation, days past due on principal and
interest, and the 2023 classification floors built on them (restructuring, cure, per-debtor contagion).

Pure: the facts are built here as the mirror would load them, so every boundary can be set to the day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ValidationError
from ledger.monitoring.classification import DebtorLoan, Suggestion, check_against_floor, suggest
from ledger.monitoring.rules import LoanFacts, RecordFact, TermsChangeFact, past_due, servicing_position
from ledger.protocol.codes import LoanStatus, RiskClass
from ledger.protocol.servicing import (
    DayCount,
    DueItem,
    PaymentRecord,
    ScheduleMethod,
    allocate,
    build_schedule,
    position,
)
from ledger.protocol.terms import Installment, InterestTerms, LoanTerms, LoanType

DAY = 86_400
START = date(2025, 1, 1)
LOAN = "0x" + "11" * 32
OTHER = "0x" + "22" * 32
BORROWER = "0x" + "ab" * 20


def ts(d: date, hour: int = 12) -> int:
    return int(datetime(d.year, d.month, d.day, hour, tzinfo=UTC).timestamp())


def facts(
    terms: LoanTerms | None,
    today: date,
    *,
    principal: int = 1_200_000_00,
    repaid: list[tuple[date, int, int]] | list[tuple[date, int, int, int]] = (),  # type: ignore[assignment]
    maturity: date = date(2030, 1, 1),
    changes: list[TermsChangeFact] = (),  # type: ignore[assignment]
    risk_class: RiskClass = RiskClass.NORMAL,
    class_history: list[tuple[int, int]] = (),  # type: ignore[assignment]
) -> LoanFacts:
    repayments = [
        RecordFact(100 + k, 0, ts(r[0]), amount=r[1], interest=r[2], penalty=r[3] if len(r) > 3 else 0)
        for k, r in enumerate(repaid)
    ]
    return LoanFacts(
        loan_id=LOAN,
        lender_org="0x" + "0b" * 32,
        borrower=BORROWER,
        principal=principal,
        disbursed=principal,
        repaid=sum(r[1] for r in repaid),
        currency="CNY",
        maturity=ts(maturity, 0),
        status=int(LoanStatus.OPEN),
        block_number=1,
        opened_at=ts(START),
        lots=[],
        repayments=repayments,
        valuations=[],
        inspections=[],
        terms=terms,
        now=ts(today),
        risk_class=int(risk_class),
        terms_changes=list(changes),
        class_history=list(class_history),
    )


def interest_only_terms(periods: int = 24) -> LoanTerms:
    return LoanTerms(
        loan_type=LoanType.WORKING_CAPITAL,
        interest=InterestTerms(
            method=ScheduleMethod.INTEREST_ONLY,
            annual_rate=Decimal("0.0435"),
            start_date=START,
            first_due_date=date(2025, 2, 1),
            periods=periods,
        ),
    )


def principal_terms(due: date) -> LoanTerms:
    return LoanTerms(
        loan_type=LoanType.WORKING_CAPITAL, repayment_schedule=[Installment(due_date=due, amount=100_000_00)]
    )


# ---------------------------------------------------------------------------------------------- arithmetic


def independent_interest(principal: int, rate: Decimal, days: int, basis: int) -> int:
    """Half-up rounding written another way: integer arithmetic on the rate's exact digits."""
    num, den = rate.as_integer_ratio()
    exact_num = principal * num * days
    exact_den = den * basis
    return (2 * exact_num + exact_den) // (2 * exact_den)


@settings(max_examples=200, deadline=None)
@given(
    principal=st.integers(1, 10**12),
    rate_bp=st.integers(0, 2400),
    periods=st.integers(1, 60),
    method=st.sampled_from(list(ScheduleMethod)[:3]),
    basis=st.sampled_from(list(DayCount)),
)
def test_schedules_conserve_principal_and_interest_matches_an_independent_computation(
    principal: int, rate_bp: int, periods: int, method: ScheduleMethod, basis: DayCount
) -> None:
    rate = Decimal(rate_bp) / 10_000
    items = build_schedule(
        principal=principal,
        method=method,
        annual_rate=rate,
        day_count=basis,
        start_date=START,
        first_due_date=date(2025, 1, 31),
        periods=periods,
    )
    assert len(items) == periods
    assert sum(i.principal for i in items) == principal  # no fen lost or created
    assert all(i.principal >= 0 and i.interest >= 0 for i in items)
    if method is not ScheduleMethod.EQUAL_INSTALMENTS or rate == 0:
        outstanding, previous = principal, START
        for item in items:
            days = (item.due_date - previous).days
            assert item.interest == independent_interest(outstanding, rate, days, basis.basis)
            outstanding -= item.principal
            previous = item.due_date
    else:
        r = Fraction(rate) / 12
        outstanding = principal
        for item in items:
            assert item.interest == int(outstanding * r + Fraction(1, 2))
            outstanding -= item.principal


@settings(max_examples=300, deadline=None)
@given(
    amounts=st.lists(st.integers(1, 5_000_000_00), min_size=1, max_size=6),
    days=st.lists(st.integers(0, 400), min_size=1, max_size=6),
    order=st.permutations(["penalty", "interest", "principal"]),
)
def test_allocation_splits_every_repayment_exactly_and_dues_never_go_negative(
    amounts: list[int], days: list[int], order: list[str]
) -> None:
    schedule = build_schedule(
        principal=1_000_000_00,
        method=ScheduleMethod.EQUAL_PRINCIPAL,
        annual_rate=Decimal("0.06"),
        day_count=DayCount.ACT_365,
        start_date=START,
        first_due_date=date(2025, 2, 1),
        periods=12,
    )
    payments: list[PaymentRecord] = []
    paid_on = date(2025, 2, 1)
    principal_left = 1_000_000_00
    for amount, gap in zip(amounts, days, strict=False):
        paid_on += timedelta(days=gap)
        pos = position(schedule, payments, paid_on, penalty_rate=Decimal("0.09"))
        owed = pos.penalty_due + pos.interest_due + principal_left
        if amount > owed:
            with pytest.raises(ValueError, match="more than everything owed"):
                allocate(amount, pos, principal_left, order)
            continue
        split = allocate(amount, pos, principal_left, order)
        assert split.principal + split.interest + split.penalty == amount  # no fen lost or created
        assert split.interest <= pos.interest_due and split.penalty <= pos.penalty_due
        first = order[0]
        due_first = {
            "penalty": pos.penalty_due,
            "interest": pos.interest_due,
            "principal": pos.principal_due,
        }[first]
        got_first = {"penalty": split.penalty, "interest": split.interest, "principal": split.principal}[
            first
        ]
        assert got_first == min(amount, due_first) or first == "principal"
        payments.append(PaymentRecord(paid_on, split.principal, split.interest, split.penalty))
        principal_left -= split.principal
        after = position(schedule, payments, paid_on, penalty_rate=Decimal("0.09"))
        assert after.penalty_due == pos.penalty_due - split.penalty
        assert after.interest_due == pos.interest_due - split.interest


def test_penalty_accrues_per_day_on_overdue_amounts_after_the_grace_days() -> None:
    schedule = [DueItem(date(2025, 3, 1), 100_000_00, 5_000_00)]
    # 10 days overdue on 105,000.00 at 9%/year ACT/365, 3 grace days: 7 days of penalty
    pos = position(schedule, [], date(2025, 3, 11), penalty_rate=Decimal("0.09"), grace_days=3)
    assert pos.penalty_due == independent_interest(105_000_00, Decimal("0.09"), 7, 365)
    assert (pos.days_past_due, pos.oldest_overdue and pos.oldest_overdue.due_date) == (10, date(2025, 3, 1))
    # paid the interest on day 5: from then on the penalty runs on the principal only
    paid = [PaymentRecord(date(2025, 3, 5), 0, 5_000_00)]
    pos = position(schedule, paid, date(2025, 3, 11), penalty_rate=Decimal("0.09"), grace_days=3)
    exact = Fraction(105_000_00 * 9, 100 * 365) * 1 + Fraction(100_000_00 * 9, 100 * 365) * 6
    assert pos.penalty_due == int(exact + Fraction(1, 2))


# ---------------------------------------------------------------------------------------------- days past due


FLOORS = [
    (0, RiskClass.NORMAL),
    (1, RiskClass.SPECIAL_MENTION),
    (90, RiskClass.SPECIAL_MENTION),
    (91, RiskClass.SUBSTANDARD),
    (270, RiskClass.SUBSTANDARD),
    (271, RiskClass.DOUBTFUL),
    (360, RiskClass.DOUBTFUL),
    (361, RiskClass.LOSS),
]


@pytest.mark.parametrize(("days", "floor"), FLOORS)
def test_interest_only_arrears_count_days_past_due_and_set_the_floor(days: int, floor: RiskClass) -> None:
    terms = interest_only_terms()
    first = terms.schedule(1_200_000_00)[0]
    f = facts(terms, first.due_date + timedelta(days=days))
    if days > 31:  # later interest dates fell due too, all unpaid: the oldest counts
        pass
    pd = past_due(f)
    assert pd.days == days
    assert first.principal == 0 and first.interest > 0  # arrears are interest only
    s = suggest(f, [])
    assert (s.floor, s.risk_class) == (floor, floor)
    if days:
        assert s.past_due_since == first.due_date
        assert f"{days} day(s) past due since {first.due_date}" in s.reasons[0]
        assert "interest due" in s.reasons[0]
        assert s.criteria[0].code == "days_past_due"
    else:
        assert s.reasons[0].startswith("no criterion fired: no principal or interest past due")
        assert "collateral cover" not in s.reasons[0]  # never checked, never stated
        assert "collateral cover: the terms state no required cover" in s.unchecked


@pytest.mark.parametrize(("days", "floor"), FLOORS)
def test_principal_arrears_count_days_past_due_and_set_the_floor(days: int, floor: RiskClass) -> None:
    due = date(2025, 6, 30)
    f = facts(principal_terms(due), due + timedelta(days=days))
    assert past_due(f).days == days
    s = suggest(f, [])
    assert s.floor == floor
    if days:
        assert "principal due 2025-06-30 unpaid" in s.reasons[0]


def test_interest_paid_late_stops_counting_and_partial_interest_keeps_it() -> None:
    terms = interest_only_terms()
    first = terms.schedule(1_200_000_00)[0]
    today = first.due_date + timedelta(days=20)
    assert (
        past_due(facts(terms, today, repaid=[(first.due_date + timedelta(days=5), 0, first.interest)])).days
        == 0
    )
    short = facts(terms, today, repaid=[(first.due_date + timedelta(days=5), 0, first.interest - 1)])
    assert past_due(short).days == 20  # one fen short is still past due


def test_without_terms_the_suggestion_says_what_it_did_not_check() -> None:
    s = suggest(facts(None, date(2025, 6, 1)), [])
    assert s.risk_class == RiskClass.NORMAL
    assert s.reasons == ["no criterion fired: nothing past maturity, no unresolved high-severity alerts"]
    assert any("no repayment schedule" in u for u in s.unchecked)
    assert not any("collateral cover met" in r for r in s.reasons)


# ---------------------------------------------------------------------------------------------- restructuring


def extension(
    on: date, old_maturity: date, new_maturity: date, outstanding: int, difficulty: bool = True
) -> TermsChangeFact:
    return TermsChangeFact(
        block_number=50,
        log_index=0,
        timestamp=ts(on),
        maturity=ts(new_maturity, 0),
        change=0,
        financial_difficulty=difficulty,
        previous_maturity=ts(old_maturity, 0),
        outstanding=outstanding,
    )


def test_an_overdue_loan_extended_under_financial_difficulty_keeps_its_days_past_due_and_floor() -> None:
    old = date(2025, 3, 1)
    extended_on = old + timedelta(days=200)
    new_maturity = date(2027, 3, 1)
    change = extension(extended_on, old, new_maturity, 1_200_000_00)
    later = extended_on + timedelta(days=30)
    f = facts(
        None, later, maturity=new_maturity, changes=[change], class_history=[(40, int(RiskClass.SUBSTANDARD))]
    )
    pd = past_due(f)
    assert (pd.days, pd.since) == (230, old)  # not reset by the extension
    s = suggest(f, [])
    assert s.floor == RiskClass.SUBSTANDARD
    assert (
        s.criteria[0].code == "days_past_due" and "230 day(s) past due since 2025-03-01" in s.criteria[0].text
    )
    codes = {c.code for c in s.criteria}
    assert {"restructured", "restructured_non_performing"} <= codes
    with pytest.raises(ValidationError, match="230 day\\(s\\) past due since 2025-03-01"):
        check_against_floor(LOAN, RiskClass.NORMAL, s)
    check_against_floor(LOAN, RiskClass.DOUBTFUL, s)  # lower than the floor is the bank's right


def _schedule_terms(first_due: date, periods: int = 24) -> LoanTerms:
    return LoanTerms(
        loan_type=LoanType.WORKING_CAPITAL,
        interest=InterestTerms(
            method=ScheduleMethod.EQUAL_PRINCIPAL,
            annual_rate=Decimal("0.05"),
            start_date=first_due - timedelta(days=30),
            first_due_date=first_due,
            periods=periods,
        ),
    )


def test_the_observation_period_starts_at_the_first_repayment_after_the_change_and_restarts_on_a_miss() -> (
    None
):
    changed = date(2025, 1, 15)
    terms = _schedule_terms(date(2025, 2, 1))
    items = terms.schedule(1_200_000_00)
    change = extension(changed, date(2024, 12, 31), date(2027, 12, 31), 1_200_000_00)
    change = TermsChangeFact(
        **{**change.__dict__, "previous_maturity": ts(date(2027, 12, 31))}
    )  # not overdue then
    on_time = [(i.due_date, i.principal, i.interest) for i in items[:4]]
    f = facts(terms, items[3].due_date + timedelta(days=1), changes=[change], repaid=on_time)
    s = suggest(f, [])
    obs = s.observation
    assert obs is not None
    assert (obs.start, obs.restarted, obs.ended) == (date(2025, 2, 1), 0, False)
    assert obs.earliest_end == date(2026, 2, 1)  # at least a year (and two periods)
    assert s.floor == RiskClass.SPECIAL_MENTION  # restructured: at least 关注, no days past due
    assert s.criteria[0].code == "restructured"
    # the third instalment paid 3 days late: the period restarts at the next repayment date
    late = on_time[:2] + [
        (items[2].due_date + timedelta(days=3), items[2].principal, items[2].interest),
        on_time[3],
    ]
    obs2 = suggest(
        facts(terms, items[3].due_date + timedelta(days=1), changes=[change], repaid=late), []
    ).observation
    assert obs2 is not None
    assert (obs2.start, obs2.restarted) == (items[3].due_date, 1)
    assert obs2.earliest_end == items[3].due_date + timedelta(days=365)
    # repaid on time through the year after the (restarted) start: the period ends, the floor goes
    all_paid = [(i.due_date, i.principal, i.interest) for i in items[:16]]
    done = suggest(
        facts(terms, items[15].due_date + timedelta(days=1), changes=[change], repaid=all_paid), []
    )
    assert done.observation is not None and done.observation.ended
    assert done.floor == RiskClass.NORMAL


def test_a_non_performing_loan_is_upgraded_only_when_the_cure_conditions_hold() -> None:
    terms = _schedule_terms(date(2025, 2, 1))
    items = terms.schedule(1_200_000_00)
    # nothing paid for 101 days: 次级; then the arrears are paid, then instalments on time
    today = items[0].due_date + timedelta(days=101)
    npl = facts(terms, today, repaid=[], risk_class=RiskClass.SUBSTANDARD)
    s = suggest(npl, [])
    assert s.floor == RiskClass.SUBSTANDARD  # 101 days past due anyway
    # arrears paid without the penalty interest: not cured
    catch_up = [(today, items[k].principal, items[k].interest) for k in range(4)]
    no_penalty = suggest(facts(terms, today, repaid=catch_up, risk_class=RiskClass.SUBSTANDARD), [])
    assert no_penalty.cured is False and "arrears not fully paid" in no_penalty.cure_missing[0]
    penalty = servicing_position(npl)
    assert penalty is not None and penalty.penalty_due > 0
    catch_up.append((today, 0, 0, penalty.penalty_due))
    # arrears and penalty paid but no track record yet: stays 次级, the missing conditions named
    paid = facts(terms, today, repaid=catch_up, risk_class=RiskClass.SUBSTANDARD)
    s = suggest(paid, [])
    assert s.days_past_due == 0
    assert (s.floor, s.cured) == (RiskClass.SUBSTANDARD, False)
    assert any("two consecutive periods or six months" in m for m in s.cure_missing)
    with pytest.raises(ValidationError, match="upgrading from 次级"):
        check_against_floor(LOAN, RiskClass.SPECIAL_MENTION, s)
    # two later instalments paid on their due dates: cured (the assessment comes with the proposal)
    track = catch_up + [(items[k].due_date, items[k].principal, items[k].interest) for k in (4, 5)]
    cured = suggest(
        facts(terms, items[5].due_date + timedelta(days=1), repaid=track, risk_class=RiskClass.SUBSTANDARD),
        [],
    )
    assert (cured.cured, cured.cure_missing, cured.floor) == (True, [], RiskClass.NORMAL)
    # ...unless the non-retail debtor has other non-performing debt at the bank
    blocked = suggest(
        facts(terms, items[5].due_date + timedelta(days=1), repaid=track, risk_class=RiskClass.SUBSTANDARD),
        [],
        [DebtorLoan(OTHER, RiskClass.DOUBTFUL, 0)],
    )
    assert blocked.floor == RiskClass.SUBSTANDARD
    assert blocked.criteria[0].code == "debtor_non_performing"


# ---------------------------------------------------------------------------------------------- per debtor


def test_one_non_performing_loan_of_a_non_retail_debtor_makes_its_other_loans_non_performing() -> None:
    f = facts(interest_only_terms(), date(2025, 1, 20))  # nothing due yet
    s = suggest(f, [], [DebtorLoan(OTHER, RiskClass.NORMAL, 120)])
    assert s.floor == RiskClass.SUBSTANDARD
    assert s.criteria[0].code == "debtor_non_performing"
    assert s.debtor_days_past_due == 120
    assert s.days_past_due == 0
    # a retail debtor is classified per loan
    retail = LoanTerms(**{**interest_only_terms().model_dump(), "loan_type": LoanType.PERSONAL})
    assert suggest(
        facts(retail, date(2025, 1, 20)), [], [DebtorLoan(OTHER, RiskClass.NORMAL, 120)]
    ).floor == (RiskClass.NORMAL)
    # a performing other loan changes nothing
    assert suggest(f, [], [DebtorLoan(OTHER, RiskClass.SPECIAL_MENTION, 30)]).floor == RiskClass.NORMAL


def test_one_person_classification_is_a_dev_only_setting() -> None:
    from ledger.config import Settings
    from ledger.errors import ConfigError

    assert Settings(env="dev", classification_single_person=True).classification_single_person
    with pytest.raises(ConfigError, match="maker-checker"):
        Settings(env="test", classification_single_person=True)
    assert Settings(repayment_allocation_order="interest, penalty,principal").repayment_allocation_order == [
        "interest",
        "penalty",
        "principal",
    ]
    with pytest.raises(Exception, match="name each of penalty, interest and principal once"):
        Settings(repayment_allocation_order="interest,interest,principal")


def test_a_loan_non_performing_when_restructured_stays_so_until_the_period_ends_and_it_is_cured() -> None:
    changed = date(2025, 1, 15)
    base = _schedule_terms(date(2025, 2, 1))
    terms = LoanTerms(
        **{**base.model_dump(), "carried_arrears": {"since": date(2024, 12, 1), "amount": 5_000_00}}
    )
    items = terms.schedule(1_200_000_00)
    change = TermsChangeFact(
        block_number=50,
        log_index=0,
        timestamp=ts(changed),
        maturity=ts(date(2027, 12, 31)),
        change=1,
        financial_difficulty=True,
        previous_maturity=ts(date(2027, 12, 31)),
        outstanding=1_200_000_00,
    )
    history = [(40, int(RiskClass.SUBSTANDARD))]  # classified 次级 before the change
    arrears = [(changed + timedelta(days=3), 0, 5_000_00)]  # the carried arrears, paid after the change

    def at(n: int) -> Suggestion:
        paid = arrears + [(i.due_date, i.principal, i.interest) for i in items[:n]]
        today = items[n - 1].due_date + timedelta(days=1)
        return suggest(
            facts(
                terms,
                today,
                repaid=paid,
                changes=[change],
                risk_class=RiskClass.SUBSTANDARD,
                class_history=history,
            ),
            [],
        )

    during = at(4)
    assert during.observation is not None and during.observation.non_performing_at_restructuring
    assert during.floor == RiskClass.SUBSTANDARD
    assert "restructured_non_performing" in {c.code for c in during.criteria}
    after = at(16)  # past the year (and two periods) since 2025-02-01, every payment on time
    assert after.observation is not None and after.observation.ended
    assert not {"restructured", "restructured_non_performing"} & {c.code for c in after.criteria}
    assert (after.cured, after.floor) == (True, RiskClass.NORMAL)
