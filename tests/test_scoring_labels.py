"""Behaviour-score label (issue 21): "reaches 90+ days past due within the next 365 days", at its exact
boundaries (89 vs 90 days past due; day 365 vs 366 of the horizon), the exclusion of loans already bad, and
the dataset keeping only fully observed windows. Real chain (a private one: the clock moves) and indexer,
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import make_world
from scoring_support import DAY, Site, day_start, site

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.config import Settings
from ledger.protocol.codes import LoanStatus
from ledger.protocol.terms import Installment, LoanTerms
from ledger.scoring.features import FEATURE_NAMES
from ledger.scoring.labels import build_dataset, build_labels

pytestmark = pytest.mark.slow

PRINCIPAL = 50_000_00


@dataclass
class Story:
    s: Site
    due: date  # the one instalment's due date (all the principal)
    paid_89: str  # repaid on due + 90: 89 days past due at most
    paid_90: str  # repaid on due + 91: 90 days past due on due + 90
    written_off: str  # written off on due + 30


def noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def world_factory(private_client: ChainClient, compiled: CompiledContract):  # type: ignore[no-untyped-def]
    return lambda: make_world(private_client, compiled)


@pytest.fixture
def story(world_factory, db_url: str):  # type: ignore[no-untyped-def]
    with site(world_factory(), db_url) as s:
        due = s.today() + timedelta(days=300)
        terms = LoanTerms(repayment_schedule=[Installment(due_date=due, amount=PRINCIPAL)])
        maturity = day_start(due) + DAY - 1
        loans = [
            s.open_loan(label, terms, principal=PRINCIPAL, maturity=maturity)
            for label in ("label-89", "label-90", "label-written-off")
        ]
        bank, supplier = s.world.cast.bank, s.world.cast.supplier
        for loan in loans:
            s.world.ledger.disburse(bank, loan_id=loan, payee=supplier.address, amount=PRINCIPAL, purpose=1)
        s.mine_at(day_start(due + timedelta(days=30)) + 3600)
        s.world.ledger.close_loan(
            bank, loan_id=loans[2], status=int(LoanStatus.WRITTEN_OFF), reason_hash="0x" + "ab" * 32
        )
        s.mine_at(day_start(due + timedelta(days=90)) + 3600)
        s.repay(loans[0], PRINCIPAL)
        s.mine_at(day_start(due + timedelta(days=91)) + 3600)
        s.repay(loans[1], PRINCIPAL)
        s.sync()
        yield Story(s, due, loans[0], loans[1], loans[2])


def test_89_days_past_due_is_not_bad_and_90_is(story: Story) -> None:
    labels = build_labels(story.s.engine, noon(story.due))
    assert labels.name == "bad"
    assert labels.index.name == "loan_id"
    assert labels[story.paid_89] == 0
    assert labels[story.paid_90] == 1
    # a lower threshold makes the 89-day loan bad too
    assert build_labels(story.s.engine, noon(story.due), dpd_threshold=89)[story.paid_89] == 1


def test_the_horizon_ends_on_day_365_inclusive(story: Story) -> None:
    reached = story.due + timedelta(days=90)  # the day paid_90 is 90 days past due
    last_day = build_labels(story.s.engine, noon(reached - timedelta(days=365)))
    assert last_day[story.paid_90] == 1
    one_too_early = build_labels(story.s.engine, noon(reached - timedelta(days=366)))
    assert one_too_early[story.paid_90] == 0
    assert (
        build_labels(story.s.engine, noon(reached - timedelta(days=366)), horizon_days=366)[story.paid_90]
        == 1
    )


def test_a_loan_already_90_days_past_due_is_left_out(story: Story) -> None:
    reached = story.due + timedelta(days=90)
    day_before = build_labels(story.s.engine, noon(reached - timedelta(days=1)))
    assert day_before[story.paid_90] == 1
    on_the_day = build_labels(story.s.engine, noon(reached))
    assert story.paid_90 not in on_the_day.index  # already bad
    assert on_the_day[story.paid_89] == 0  # repaid that day: 0 days past due
    assert story.written_off not in on_the_day.index  # closed before


def test_a_write_off_within_the_horizon_is_bad(story: Story) -> None:
    labels = build_labels(story.s.engine, noon(story.due))
    assert labels[story.written_off] == 1
    before_the_loans = build_labels(story.s.engine, noon(story.due - timedelta(days=400)))
    assert len(before_the_loans) == 0


def test_defaults_come_from_the_settings(monkeypatch: pytest.MonkeyPatch, story: Story) -> None:
    assert (Settings().score_label_dpd, Settings().score_horizon_days) == (90, 365)
    monkeypatch.setenv("FUNDFLOW_SCORE_LABEL_DPD", "89")
    assert build_labels(story.s.engine, noon(story.due))[story.paid_89] == 1
    monkeypatch.setenv("FUNDFLOW_SCORE_LABEL_DPD", "90")
    monkeypatch.setenv("FUNDFLOW_SCORE_HORIZON_DAYS", "89")
    assert build_labels(story.s.engine, noon(story.due))[story.paid_90] == 0
    # settings passed in win over the environment's
    observed = noon(story.due - timedelta(days=1))
    data = build_dataset(
        story.s.engine, [observed], settings=Settings(score_label_dpd=89, score_horizon_days=91)
    )
    assert dict(zip(data["loan_id"], data["bad"], strict=True))[story.paid_89] == 1


def test_the_dataset_keeps_only_fully_observed_windows(story: Story) -> None:
    observed = noon(story.due + timedelta(days=90) - timedelta(days=365))
    late = noon(story.due)  # its window ends 365 days after the due date: beyond the chain's last block
    data = build_dataset(story.s.engine, [late, observed])
    assert list(data.columns) == ["loan_id", "as_of", *FEATURE_NAMES, "bad"]
    assert set(data["as_of"]) == {observed}
    assert dict(zip(data["loan_id"], data["bad"], strict=True)) == {
        story.paid_89: 0,
        story.paid_90: 1,
        story.written_off: 1,
    }
    # a shorter horizon observes the later snapshot too
    short = build_dataset(story.s.engine, [late], horizon_days=60)
    assert set(short["as_of"]) == {late} and len(short) == 3
