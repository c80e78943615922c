"""Behaviour-score features (issue 21): each feature on a hand-built scene on the real chain and indexer, and
point-in-time correctness: rows indexed after the as-of date change nothing. SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import World, h, make_world
from scoring_support import DAY, Site, day_start, moment, site

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.monitoring.alerts import Alert
from ledger.protocol.codes import FileRecordKind, InspectionKind
from ledger.protocol.guarantees import GUARANTEE_SCHEMA, Guarantee, GuaranteeKind
from ledger.protocol.purposes import Purpose
from ledger.protocol.servicing import DueItem, ScheduleMethod, add_months
from ledger.protocol.terms import Installment, InterestTerms, LoanTerms
from ledger.scoring import features
from ledger.scoring.features import FEATURE_NAMES, FEATURES, compute_features, feature
from ledger.scoring.labels import build_labels
from ledger.store.db import create_db_engine, migrate
from ledger.store.offchain import FileContent

pytestmark = pytest.mark.slow

PRINCIPAL = 1_000_000_00
GUARANTOR_PRINCIPAL = 100_000_00


@pytest.fixture(scope="module")
def world_factory(private_client: ChainClient, compiled: CompiledContract):  # type: ignore[no-untyped-def]
    return lambda: make_world(private_client, compiled)


@dataclass
class Scene:
    s: Site
    loan: str
    guarantor_loan: str
    items: list[DueItem]
    opened: int
    disbursed_at: int
    paid_on_at: int
    lot1: str
    child: str
    mid: int  # a moment in the middle of the story
    at_mid: pd.DataFrame  # the features as of `mid`, computed then
    as_of: int


def _scene(s: Site) -> Scene:
    w = s.world
    c = w.cast
    d0 = s.today()
    terms = LoanTerms(
        interest=InterestTerms(
            method=ScheduleMethod.EQUAL_PRINCIPAL,
            annual_rate=Decimal("0.06"),
            start_date=d0,
            first_due_date=add_months(d0, 1),
            periods=3,
        )
    )
    items = terms.schedule(PRINCIPAL)
    loan = s.open_loan(
        "score-a", terms, principal=PRINCIPAL, maturity=day_start(items[-1].due_date) + DAY - 1
    )
    opened = s.now()
    lot1 = w.ledger.disburse(c.bank, loan_id=loan, payee=c.supplier.address, amount=600_000_00, purpose=1)
    disbursed_at = s.stamp(lot1)
    lot1_id = str(lot1.event("Disbursed").args["lotId"])
    lot2 = w.ledger.disburse(c.bank, loan_id=loan, payee=c.supplier2.address, amount=400_000_00, purpose=3)
    lot2_id = str(lot2.event("Disbursed").args["lotId"])
    s.mine_at(disbursed_at + 2 * 3600)
    child = w.ledger.pay(
        c.supplier,
        loan_id=loan,
        from_lot=lot1_id,
        payee=c.subsupplier.address,
        amount=100_000_00,
        purpose=int(Purpose.SECURITIES),
    )
    paid_on_at = s.stamp(child)
    w.ledger.confirm_lot(c.supplier, loan_id=loan, lot_id=lot1_id, evidence_hash=h("confirm-1"))
    w.ledger.dispute_lot(c.supplier2, loan_id=loan, lot_id=lot2_id, reason_hash=h("dispute-2"))
    collateral = h("collateral:a")
    w.ledger.value_collateral(
        c.bank, loan_id=loan, collateral_id=collateral, value=1_200_000_00, evidence_hash=h("v1")
    )

    # the guarantor is itself a borrower here, with a loan that falls due in 20 days and is never repaid
    due_b = d0 + timedelta(days=20)
    terms_b = LoanTerms(repayment_schedule=[Installment(due_date=due_b, amount=GUARANTOR_PRINCIPAL)])
    guarantor_loan = s.open_loan(
        "score-guarantor",
        terms_b,
        principal=GUARANTOR_PRINCIPAL,
        maturity=day_start(due_b) + DAY - 1,
        borrower=c.outsider.address,
    )
    w.ledger.disburse(
        c.bank, loan_id=guarantor_loan, payee=c.supplier.address, amount=GUARANTOR_PRINCIPAL, purpose=1
    )
    g = Guarantee(
        guarantor=c.outsider.address,
        kind=GuaranteeKind.JOINT_SURETY,
        amount=500_000_00,
        start=d0,
        expiry=d0 + timedelta(days=400),
        loan_id=loan,
    )
    with s.engine.begin() as conn:
        conn.execute(
            sa.insert(FileContent.__table__).values(  # type: ignore[attr-defined]
                hash=g.record_id,
                schema_name=GUARANTEE_SCHEMA,
                content=g.document(),
                created_by=c.bank.address,
            )
        )
    w.ledger.file_record(
        c.bank,
        loan_id=loan,
        record_kind=int(FileRecordKind.GUARANTEE),
        record_id=g.record_id,
        content_hash=g.record_id,
    )

    # instalment 1 is repaid 10 days late; the collateral is revalued lower
    s.mine_at(day_start(items[0].due_date) + 10 * DAY + 10 * 3600)
    s.repay(loan, items[0].principal, items[0].interest)
    w.ledger.value_collateral(
        c.bank, loan_id=loan, collateral_id=collateral, value=900_000_00, evidence_hash=h("v2")
    )
    s.sync()
    mid = s.now()
    at_mid = compute_features(s.engine, moment(mid))

    # instalment 2 is never paid: 40 days past due on the as-of date
    s.mine_at(day_start(items[1].due_date) + 40 * DAY + 10 * 3600)
    as_of = s.now()
    with s.engine.begin() as conn:
        t = Alert.__table__  # type: ignore[attr-defined]
        base = {
            "rule": "late_repayment",
            "loan_id": loan,
            "title": "t",
            "explanation": "e",
            "lot_ids": [],
            "details": {},
            "source_block": 1,
            "raised_at": moment(opened),
            "updated_at": moment(opened),
        }
        for values in (
            {**base, "severity": "critical", "cause_key": "a", "raised_chain_time": mid + 1},
            {
                **base,
                "severity": "high",
                "cause_key": "b",
                "raised_chain_time": opened,
                "state": "resolved",
                "resolved_at": moment(opened + DAY),
            },
            {**base, "severity": "medium", "cause_key": "c", "raised_chain_time": as_of + 1},
        ):
            conn.execute(sa.insert(t).values(**values))  # one by one: their columns differ
    s.sync()
    child_id = str(child.event("Paid").args["lotId"])
    return Scene(
        s,
        loan,
        guarantor_loan,
        items,
        opened,
        disbursed_at,
        paid_on_at,
        lot1_id,
        child_id,
        mid,
        at_mid,
        as_of,
    )


@pytest.fixture
def scene(world_factory, db_url: str):  # type: ignore[no-untyped-def]
    world: World = world_factory()
    with site(world, db_url) as s:
        yield _scene(s)


def test_the_feature_table_names_each_feature_in_english_and_chinese() -> None:
    assert len(set(FEATURE_NAMES)) == len(FEATURES)
    for f in FEATURES:
        assert f.en and f.zh and f.unit and f.risk_when in ("high", "low")
        assert feature(f.name) is f
    assert feature("dpd_now").zh == "当前逾期天数"


def test_each_feature_on_a_hand_built_loan(scene: Scene) -> None:
    sc = scene
    frame = compute_features(sc.s.engine, moment(sc.as_of))
    assert list(frame.columns) == list(FEATURE_NAMES)
    assert frame.dtypes.eq("float64").all()
    assert frame.index.name == "loan_id"
    row = frame.loc[sc.loan]
    today = moment(sc.as_of).date()
    due1, due2, due3 = (i.due_date for i in sc.items)
    assert row["dpd_now"] == (today - due2).days == 40
    assert row["dpd_max"] == 40
    assert due3 < today
    assert row["late_3m"] == row["late_6m"] == row["late_12m"] == 3  # 10 days late, and two unpaid
    i1 = sc.items[0]
    scheduled = sum(i.principal + i.interest for i in sc.items)
    assert row["repaid_ratio"] == pytest.approx((i1.principal + i1.interest) / scheduled)
    assert row["undeclared_share"] == pytest.approx(0.1)
    assert row["prohibited_share"] == pytest.approx(0.1)
    assert row["pass_through_hours"] == pytest.approx((sc.paid_on_at - sc.disbursed_at) / 3600)
    assert row["disputed_payments"] == 1
    assert row["unconfirmed_share"] == pytest.approx(1 / 3)  # confirmed, disputed, and one not answered
    assert row["top_payee_share"] == pytest.approx(600 / 1100)
    assert row["payee_hhi"] == pytest.approx((600**2 + 400**2 + 100**2) / 1100**2)
    assert row["collateral_cover"] == pytest.approx(900_000_00 / (PRINCIPAL - i1.principal))
    assert row["collateral_trend"] == pytest.approx(-0.25)
    opened_day = moment(sc.opened).date()
    assert row["visit_overdue_days"] == (today - opened_day).days - 90 > 0  # never visited, quarterly
    assert row["restructured"] == 0
    assert (row["alerts_critical"], row["alerts_high"], row["alerts_other"]) == (1, 0, 0)
    assert row["guarantees"] == 1
    assert row["guarantor_dpd"] == (today - opened_day - timedelta(days=20)).days
    assert row["months_on_book"] == pytest.approx((sc.as_of - sc.opened) / (DAY * 365.25 / 12))
    # the guarantor's own loan: no schedule interest, no collateral, no payments out of its lot
    other = frame.loc[sc.guarantor_loan]
    assert other["dpd_now"] == row["guarantor_dpd"]
    assert pd.isna(other["collateral_cover"]) and pd.isna(other["pass_through_hours"])
    assert other["guarantees"] == 0 and pd.isna(other["guarantor_dpd"])
    # only the loans asked for
    only = compute_features(sc.s.engine, moment(sc.as_of), [sc.loan])
    pd.testing.assert_frame_equal(only, frame.loc[[sc.loan]])


def test_a_row_after_the_as_of_date_changes_nothing(scene: Scene) -> None:
    sc = scene
    w = sc.s.world
    c = w.cast
    # the rows the scene indexed after `mid` already must not count...
    again = compute_features(sc.s.engine, moment(sc.mid))
    pd.testing.assert_frame_equal(again, sc.at_mid)
    # ...nor do more of every kind, indexed later
    w.ledger.repay_allocated(
        c.bank,
        loan_id=sc.loan,
        principal=sc.items[1].principal,
        interest=sc.items[1].interest,
        penalty=0,
        evidence_hash=h("late-2"),
    )
    w.ledger.value_collateral(
        c.bank, loan_id=sc.loan, collateral_id=h("collateral:b"), value=5, evidence_hash=h("v3")
    )
    w.ledger.record_inspection(
        c.bank, loan_id=sc.loan, kind=int(InspectionKind.SITE_VISIT), report_hash=h("r")
    )
    w.ledger.classify(c.bank, loan_id=sc.loan, risk_class=2, reason_hash=h("substandard"))
    w.ledger.change_terms(
        c.bank,
        loan_id=sc.loan,
        maturity=sc.s.now() + 400 * DAY,
        terms_hash=h("terms:restructured"),
        change=0,
        financial_difficulty=True,
    )
    w.ledger.pay(
        c.supplier, loan_id=sc.loan, from_lot=sc.lot1, payee=c.supplier2.address, amount=5, purpose=29
    )
    w.ledger.dispute_lot(c.subsupplier, loan_id=sc.loan, lot_id=sc.child, reason_hash=h("late dispute"))
    sc.s.sync()
    later = compute_features(sc.s.engine, moment(sc.mid))
    pd.testing.assert_frame_equal(later, sc.at_mid)
    # while at a date after them they do count (so the comparison above could fail)
    now = compute_features(sc.s.engine, moment(sc.s.now()))
    assert now.loc[sc.loan, "restructured"] == 1
    assert now.loc[sc.loan, "visit_overdue_days"] == 0
    assert now.loc[sc.loan, "dpd_now"] < 40
    # the features before the loan opened: no row for it
    before = compute_features(sc.s.engine, moment(sc.opened - 1))
    assert sc.loan not in before.index


def test_many_loan_ids_are_filtered_in_memory_with_the_same_result(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `IN_LIMIT` ids the rows are read whole and filtered in pandas: the same answer as in SQL."""
    engine, when = scene.s.engine, moment(scene.as_of)
    in_sql = compute_features(engine, when, [scene.loan, scene.guarantor_loan])
    monkeypatch.setattr(features, "IN_LIMIT", 1)
    features._SCHEDULES.clear()
    in_memory = compute_features(engine, when, [scene.loan, scene.guarantor_loan])
    pd.testing.assert_frame_equal(in_memory, in_sql)
    assert len(in_sql) == 2


def test_a_date_without_a_time_zone_is_refused_with_what_to_do(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_db_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    migrate(engine)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_features(engine, datetime(2027, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_labels(engine, datetime(2027, 1, 1))
    assert compute_features(engine, datetime(2027, 1, 1, tzinfo=UTC)).empty  # an empty mirror: no rows
    engine.dispose()
