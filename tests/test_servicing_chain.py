"""Loan servicing end to end (issue 18): on the Hardhat node, through the indexer, into SQLite and PostgreSQL.

(On a node of the module's own: the tests move its clock by months.) A repayment's split goes on chain and
the mirror keeps the same split; days past due count from an unpaid
interest date on the chain's calendar; an extension under financial difficulty keeps the days past due and
the floor; one non-performing loan of a non-retail debtor makes its other loan non-performing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from conftest import h, make_world
from monitor_support import DAY, Watch, watching

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.monitoring.classification import suggest_classification
from ledger.monitoring.migration import migration_matrix
from ledger.monitoring.rules import servicing_position
from ledger.protocol.codes import RiskClass
from ledger.protocol.servicing import ScheduleMethod, allocate
from ledger.protocol.terms import InterestTerms, LoanTerms, LoanType


@pytest.fixture
def watch(private_client: ChainClient, compiled: CompiledContract, db_url: str) -> Iterator[Watch]:
    """On the module's own node: these tests move the chain's clock by months, which the session node's
    other users (maturities from the wall clock) must not see."""
    with watching(make_world(private_client, compiled), db_url) as w:
        yield w


def _today(watch: Watch) -> datetime:
    return datetime.fromtimestamp(watch.chain_time(), UTC)


def test_a_late_interest_payment_is_split_on_chain_and_mirrored_with_the_same_split(watch: Watch) -> None:
    c = watch.world.cast
    today = _today(watch).date()
    terms = LoanTerms(
        loan_type=LoanType.WORKING_CAPITAL,
        interest=InterestTerms(
            method=ScheduleMethod.INTEREST_ONLY,
            annual_rate=Decimal("0.0435"),
            start_date=today,
            first_due_date=today + timedelta(days=10),
            periods=12,
        ),
    )
    loan = watch.open_loan("late-interest", terms, principal=1_000_000_00)
    watch.disburse(loan, c.supplier, 1_000_000_00)
    first = terms.schedule(1_000_000_00)[0]
    assert (first.principal, first.interest) == (0, 1_191_78)  # 1,000,000.00 x 4.35% x 10/365 = 1,191.78
    watch.advance(15 * DAY)
    watch.sync()
    with watch.engine.connect() as conn:
        s = suggest_classification(conn, loan, watch.monitor)
        facts = watch.monitor.facts(conn, loan)
    assert facts is not None
    days = (_today(watch).date() - first.due_date).days
    assert (s.days_past_due, s.past_due_since, s.floor) == (days, first.due_date, RiskClass.SPECIAL_MENTION)
    assert f"interest due {first.due_date} unpaid" in s.reasons[0]
    alert = watch.only(loan, "late_interest")
    assert alert.title == f"Interest {days} day(s) past due"
    assert f"due on {first.due_date}" in alert.explanation
    pos = servicing_position(facts)
    assert pos is not None and pos.interest_due == first.interest and pos.penalty_due > 0
    split = allocate(pos.interest_due + pos.penalty_due + 1_00, pos, facts.outstanding)
    assert (split.penalty, split.interest, split.principal) == (pos.penalty_due, first.interest, 1_00)
    result = watch.world.ledger.repay_allocated(
        c.bank,
        loan_id=loan,
        principal=split.principal,
        interest=split.interest,
        penalty=split.penalty,
        evidence_hash=h("bank slip"),
    )
    event = result.event("RepaymentApplied")
    assert (event.args["principal"], event.args["interest"], event.args["penalty"]) == (
        1_00,
        first.interest,
        pos.penalty_due,
    )
    assert event.args["outstanding"] == 1_000_000_00 - 1_00
    watch.sync()
    t = sa.table(
        "repayments", sa.column("loan_id"), sa.column("amount"), sa.column("interest"), sa.column("penalty")
    )
    with watch.engine.connect() as conn:
        row = conn.execute(sa.select(t.c.amount, t.c.interest, t.c.penalty).where(t.c.loan_id == loan)).one()
        after = suggest_classification(conn, loan, watch.monitor)
    assert tuple(int(v) for v in row) == (1_00, first.interest, pos.penalty_due)  # the chain's split, as is
    assert (after.days_past_due, after.risk_class) == (0, RiskClass.NORMAL)
    assert watch.only(loan, "late_interest").resolved_by == "system"  # paid: the cause is gone
    assert watch.world.ledger.get_loan(loan).repaid == 1_00  # only principal lowers what is outstanding


def test_an_extension_under_financial_difficulty_keeps_days_past_due_and_the_floor(watch: Watch) -> None:
    c = watch.world.cast
    maturity = watch.chain_time() + 2 * DAY
    loan = watch.open_loan("extended", LoanTerms(loan_type=LoanType.WORKING_CAPITAL), maturity=maturity)
    watch.disburse(loan, c.supplier, 500_000_00)
    watch.advance(100 * DAY)
    watch.sync()
    with watch.engine.connect() as conn:
        before = suggest_classification(conn, loan, watch.monitor)
    assert before.floor == RiskClass.SUBSTANDARD and before.days_past_due > 90
    new_terms = LoanTerms(loan_type=LoanType.WORKING_CAPITAL)
    watch.terms[loan] = new_terms
    watch.world.ledger.change_terms(
        c.bank,
        loan_id=loan,
        maturity=watch.chain_time() + 730 * DAY,
        terms_hash=new_terms.hash(),
        change=0,
        financial_difficulty=True,
    )
    watch.sync()
    with watch.engine.connect() as conn:
        after = suggest_classification(conn, loan, watch.monitor)
    matured = datetime.fromtimestamp(maturity, UTC).date()
    assert (after.days_past_due, after.past_due_since) == (before.days_past_due, matured)  # never reset
    assert after.floor == RiskClass.SUBSTANDARD
    codes = [cr.code for cr in after.criteria]
    assert codes[0] == "days_past_due" and "restructured" in codes and "restructured_non_performing" in codes
    assert after.observation is not None and after.observation.non_performing_at_restructuring
    t = sa.table(
        "restructurings", sa.column("loan_id"), sa.column("change_kind"), sa.column("financial_difficulty")
    )
    with watch.engine.connect() as conn:
        row = conn.execute(
            sa.select(t.c.change_kind, t.c.financial_difficulty).where(t.c.loan_id == loan)
        ).one()
    assert (row.change_kind, bool(row.financial_difficulty)) == (0, True)


def test_one_non_performing_loan_of_a_non_retail_debtor_makes_the_other_non_performing(watch: Watch) -> None:
    c = watch.world.cast
    terms = LoanTerms(loan_type=LoanType.SUPPLY_CHAIN)
    late = watch.open_loan("debtor-late", terms, maturity=watch.chain_time() + DAY)
    sound = watch.open_loan("debtor-sound", LoanTerms(loan_type=LoanType.WORKING_CAPITAL))
    watch.disburse(late, c.supplier, 100_000_00)
    watch.disburse(sound, c.supplier, 100_000_00)
    watch.advance(95 * DAY)
    watch.sync()
    with watch.engine.connect() as conn:
        bad = suggest_classification(conn, late, watch.monitor)
        other = suggest_classification(conn, sound, watch.monitor)
    assert bad.floor == RiskClass.SUBSTANDARD
    assert other.days_past_due == 0
    assert other.floor == RiskClass.SUBSTANDARD
    assert other.criteria[0].code == "debtor_non_performing" and late[:10] in other.criteria[0].text
    assert (other.debtor_days_past_due, other.debtor_past_due_since) == (
        bad.days_past_due,
        bad.past_due_since,
    )


def test_the_migration_matrix_counts_each_loans_class_at_the_start_and_the_end_of_the_period(
    watch: Watch,
) -> None:
    c = watch.world.cast
    stays = watch.open_loan("m-stays")
    worsens = watch.open_loan("m-worsens")
    repaid = watch.open_loan("m-repaid")
    for loan, amount in ((stays, 100_000_00), (worsens, 300_000_00), (repaid, 50_000_00)):
        watch.disburse(loan, c.supplier, amount)
    watch.advance(2 * DAY)
    start = _today(watch).date()  # the period starts at 00:00 of this day, after the three disbursements
    watch.advance(DAY)
    watch.world.ledger.classify(c.bank, loan_id=worsens, risk_class=RiskClass.SUBSTANDARD, reason_hash=h("r"))
    watch.world.ledger.repay(c.bank, loan_id=repaid, amount=50_000_00, evidence_hash=h("slip"))
    watch.world.ledger.close_loan(c.bank, loan_id=repaid, status=2, reason_hash=h("closed"))
    watch.advance(DAY)
    end = _today(watch).date()
    watch.sync()
    with watch.engine.connect() as conn:
        m = migration_matrix(
            conn,
            start=int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp()),
            end=int(datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=UTC).timestamp()),
            lender_orgs=[c.bank_org],
        )
        other = migration_matrix(conn, start=0, end=2**40, lender_orgs=[c.other_bank_org])
    assert m.loans == 3
    assert m.counts["normal"] == {
        "normal": 1,
        "special_mention": 0,
        "substandard": 1,
        "doubtful": 0,
        "loss": 0,
        "repaid": 1,
    }
    assert (m.balances["normal"]["substandard"], m.balances["normal"]["repaid"]) == (300_000_00, 50_000_00)
    assert m.rate("normal", "substandard") == Decimal("0.6667")  # 300,000 of 450,000
    assert m.rate("substandard", "normal") is None  # nothing started there
    assert other.loans == 0


def test_repayments_stay_within_the_gas_budget(watch: Watch) -> None:
    """Issue 18: a repayment costs at most 1.3x the 45,000 gas `repay` cost before the split went on chain."""
    c = watch.world.cast
    loan = watch.open_loan("gas")
    watch.disburse(loan, c.supplier, 1_000_000_00)
    budget = 45_000 * 13 // 10
    plain = watch.world.ledger.repay(c.bank, loan_id=loan, amount=1_000_00, evidence_hash=h("slip-1"))
    split = watch.world.ledger.repay_allocated(
        c.bank, loan_id=loan, principal=1_000_00, interest=2_345_67, penalty=89_01, evidence_hash=h("slip-2")
    )
    assert plain.gas_used <= budget and split.gas_used <= budget, (plain.gas_used, split.gas_used)
