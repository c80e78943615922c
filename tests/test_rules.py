"""Every monitoring rule on the real chain: a scenario that raises it (explanation asserted), a near miss that
does not, and raising once per cause. The monitor runs as the indexer's after-batch hook; time-based rules
get an injected 'now' (chain time plus days) instead of moving the shared node's clock by months."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import World, h, reverts
from monitor_support import DAY, Watch, short, watching

from ledger.monitoring.rules import Thresholds, fmt_money, fmt_time
from ledger.protocol.purposes import Purpose
from ledger.protocol.terms import Installment, LoanTerms

THRESHOLDS = Thresholds(circular_flow_hops=2)


@pytest.fixture
def watch(world: World, db_url: str) -> Iterator[Watch]:
    with watching(world, db_url, THRESHOLDS) as w:
        yield w


def test_fmt_money_formats_minor_units_with_currency() -> None:
    assert fmt_money(123_456_789, "CNY") == "CNY 1,234,567.89"
    assert fmt_money(5, "USD") == "USD 0.05"
    assert fmt_money(1500, "JPY") == "JPY 1,500"


# ---------------------------------------------------------------------------------------------- use of funds


def test_undeclared_use_raises_for_a_purpose_the_loan_does_not_allow(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("undeclared")
    lot, _ = watch.disburse(loan, c.supplier, 400_000_00)
    bad, ts = watch.pay(c.supplier, loan, lot, c.subsupplier, 50_000_00, Purpose.GOODS)
    watch.pay(c.supplier, loan, lot, c.supplier2, 60_000_00, Purpose.EQUIPMENT)  # near miss: allowed
    watch.sync()
    alert = watch.only(loan, "undeclared_use")
    assert alert.severity == "high"
    assert alert.lot_ids == [bad]
    assert alert.explanation == (
        f"CNY 50,000.00 was paid to {short(c.subsupplier.address)} out of the lot held by "
        f"{short(c.supplier.address)} on {fmt_time(ts)} for goods (purpose 2), which is not among the loan's "
        "declared purposes."  # who signed is not known (no API wrote it): only what the trail shows
    )
    assert watch.alerts(loan, "prohibited_use") == []


def test_prohibited_use_raises_even_when_the_loan_allows_the_purpose(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("prohibited", purposes=(Purpose.RAW_MATERIALS, Purpose.REAL_ESTATE))
    lot, ts = watch.disburse(loan, c.borrower, 300_000_00, Purpose.REAL_ESTATE)
    watch.disburse(loan, c.supplier, 100_000_00, Purpose.RAW_MATERIALS)  # near miss
    watch.sync()
    alert = watch.only(loan, "prohibited_use")
    assert alert.severity == "critical"
    assert alert.lot_ids == [lot]
    assert alert.explanation == (
        f"The lender disbursed CNY 300,000.00 to the borrower ({short(c.borrower.address)}) on "
        f"{fmt_time(ts)} for real estate (房地产), a prohibited use of loan funds. The loan's purpose set "
        "allows it, but the sector is banned."
    )
    assert watch.alerts(loan, "undeclared_use") == []


def test_prohibited_use_near_miss_when_the_sector_is_not_configured_as_prohibited(
    world: World, db_url: str
) -> None:
    with watching(world, db_url, Thresholds(prohibited_purposes=frozenset({29}))) as watch:
        loan = watch.open_loan("prohibited-off", purposes=(Purpose.REAL_ESTATE,))
        watch.disburse(loan, world.cast.borrower, 300_000_00, Purpose.REAL_ESTATE)
        watch.sync()
        assert watch.alerts(loan) == []


def test_circular_flow_raises_when_money_returns_to_the_borrower_within_the_hop_limit(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("circular")
    d, _ = watch.disburse(loan, c.supplier, 500_000_00)
    p1, _ = watch.pay(c.supplier, loan, d, c.subsupplier, 200_000_00)
    back, ts = watch.pay(c.subsupplier, loan, p1, c.borrower, 150_000_00)
    # near miss: three hops away from the borrower's side before coming back (limit 2)
    q1, _ = watch.pay(c.supplier, loan, d, c.supplier2, 200_000_00)
    q2, _ = watch.pay(c.supplier2, loan, q1, c.subsupplier, 100_000_00)
    watch.pay(c.subsupplier, loan, q2, c.borrower, 50_000_00)
    watch.sync()
    alert = watch.only(loan, "circular_flow")
    assert alert.severity == "critical"
    assert alert.cause_key == back
    assert alert.lot_ids == [d, p1, back]
    borrower = f"the borrower ({short(c.borrower.address)})"
    assert alert.explanation == (
        f"CNY 150,000.00 reached {borrower} on {fmt_time(ts)} after 2 hop(s) away from the borrower's side: "
        f"{short(c.supplier.address)} → {short(c.subsupplier.address)} → {borrower} (limit 2)."
    )


def test_circular_flow_counts_parties_linked_to_the_borrower(watch: Watch) -> None:
    c = watch.world.cast
    terms = LoanTerms(linked_parties=[c.supplier2.address])
    loan = watch.open_loan("circular-linked", terms)
    d, _ = watch.disburse(loan, c.supplier, 500_000_00)
    back, _ = watch.pay(c.supplier, loan, d, c.supplier2, 80_000_00)
    watch.sync()
    alert = watch.only(loan, "circular_flow")
    assert alert.lot_ids == [d, back]
    assert f"reached borrower-linked party {short(c.supplier2.address)}" in alert.explanation
    assert "after 1 hop(s)" in alert.explanation


def test_rapid_pass_through_raises_when_most_of_a_disbursement_leaves_for_undeclared_payees(
    watch: Watch,
) -> None:
    c = watch.world.cast
    loan = watch.open_loan("pass-through", LoanTerms(counterparties=[c.supplier.address]))
    d, dts = watch.disburse(loan, c.supplier, 100_000_00)
    p, pts = watch.pay(c.supplier, loan, d, c.supplier2, 85_000_00)
    # near miss 1: only 70% passed on
    d2, _ = watch.disburse(loan, c.supplier, 100_000_00)
    watch.pay(c.supplier, loan, d2, c.supplier2, 70_000_00)
    # near miss 2: 90% passed on, but 25 hours later (the chain's clock moves)
    d3, _ = watch.disburse(loan, c.supplier, 100_000_00)
    watch.advance(25 * 3600)
    watch.pay(c.supplier, loan, d3, c.supplier2, 90_000_00)
    watch.sync()
    alert = watch.only(loan, "rapid_pass_through")
    assert alert.cause_key == d
    assert alert.lot_ids == [d, p]
    hours = (pts - dts) / 3600
    assert alert.explanation == (
        f"Of CNY 100,000.00 disbursed to {short(c.supplier.address)} on {fmt_time(dts)}, "
        f"CNY 85,000.00 (85.0%) left within {hours:.1f} hours for payee(s) not named in the loan contract: "
        f"{short(c.supplier2.address)} (threshold 80% within 24 h)."
    )


def test_structuring_raises_once_for_a_growing_group_of_near_threshold_payments(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("structuring", LoanTerms(approval_threshold=100_000_00))
    d, _ = watch.disburse(loan, c.supplier, 900_000_00)
    lots = [
        watch.pay(c.supplier, loan, d, payee, amount)[0]
        for payee, amount in (
            (c.subsupplier, 99_000_00),
            (c.supplier2, 95_000_00),
            (c.subsupplier, 99_990_00),
        )
    ]
    watch.sync()
    alert = watch.only(loan, "structuring")
    assert alert.lot_ids == lots
    assert alert.explanation.startswith(
        "3 payments of between CNY 95,000.00 and CNY 99,990.00 (total CNY 293,990.00), each just under the "
        "CNY 100,000.00 approval threshold, were made within "
    )
    lots.append(watch.pay(c.supplier, loan, d, c.supplier2, 98_000_00)[0])
    watch.sync()
    again = watch.only(loan, "structuring")
    assert (again.id, again.cause_key, again.lot_ids) == (alert.id, alert.cause_key, lots)
    assert again.explanation.startswith("4 payments")


def test_structuring_near_miss_at_or_far_below_the_threshold(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("structuring-miss", LoanTerms(approval_threshold=100_000_00))
    d, _ = watch.disburse(loan, c.supplier, 900_000_00)
    for amount in (99_000_00, 95_000_00, 100_000_00, 50_000_00, 89_999_99):
        watch.pay(c.supplier, loan, d, c.subsupplier, amount)
    watch.sync()
    assert watch.alerts(loan, "structuring") == []


def test_concentration_raises_for_an_unnamed_payee_receiving_too_much(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("concentration", LoanTerms(counterparties=[c.supplier.address]))
    big, _ = watch.disburse(loan, c.supplier2, 350_000_00)
    big2, ts = watch.disburse(loan, c.supplier2, 250_000_00)
    watch.disburse(loan, c.subsupplier, 300_000_00)  # near miss: 30% unnamed
    watch.disburse(loan, c.supplier, 100_000_00)  # named in the contract
    watch.sync()
    alert = watch.only(loan, "concentration")
    assert alert.cause_key == c.supplier2.address
    assert alert.lot_ids == [big, big2]
    assert alert.explanation == (
        f"{short(c.supplier2.address)}, not named in the loan contract, received CNY 600,000.00 in "
        f"2 payment(s) up to {fmt_time(ts)}: 60.0% of the CNY 1,000,000.00 principal (threshold 50%)."
    )


def test_rules_needing_terms_stay_silent_without_them(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("no-terms")
    d, _ = watch.disburse(loan, c.supplier2, 900_000_00)
    watch.pay(c.supplier2, loan, d, c.subsupplier, 850_000_00)
    watch.sync()
    assert watch.alerts(loan) == []


# ---------------------------------------------------------------------------------------------- confirmations


def test_unconfirmed_payment_raises_after_the_limit_and_clears_on_confirmation(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("unconfirmed")
    lot, ts = watch.disburse(loan, c.supplier, 200_000_00)
    watch.disburse(loan, c.borrower, 100_000_00)  # self-paid disbursement: nobody to confirm
    confirmed, _ = watch.pay(c.supplier, loan, lot, c.subsupplier, 10_000_00)
    watch.world.ledger.confirm_lot(c.subsupplier, loan_id=loan, lot_id=confirmed, evidence_hash=h("receipt"))
    watch.sync()
    assert watch.evaluate(loan, now=ts + 6 * DAY).raised == []  # near miss: within 7 days
    watch.evaluate(loan, now=ts + 8 * DAY)
    alert = watch.only(loan, "unconfirmed_payment")
    assert alert.lot_ids == [lot]
    assert alert.explanation == (
        f"The lender disbursed CNY 200,000.00 to {short(c.supplier.address)} on {fmt_time(ts)}; "
        "the payee has not confirmed receipt after 8 days (limit 7 days)."
    )
    watch.world.ledger.confirm_lot(c.supplier, loan_id=loan, lot_id=lot, evidence_hash=h("late receipt"))
    watch.sync()
    watch.evaluate(loan, now=ts + 9 * DAY)
    cleared = watch.only(loan, "unconfirmed_payment")
    assert (cleared.state, cleared.resolved_by) == ("resolved", "system")


def test_disputed_payment_raises_and_stays_resolved_once_the_payee_confirms(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("disputed")
    lot, _ = watch.disburse(loan, c.supplier, 200_000_00)
    child, ts = watch.pay(c.supplier, loan, lot, c.subsupplier, 10_000_00)
    other, _ = watch.pay(c.supplier, loan, lot, c.supplier2, 10_000_00)
    watch.world.ledger.confirm_lot(
        c.supplier2, loan_id=loan, lot_id=other, evidence_hash=h("ok")
    )  # near miss
    result = watch.world.ledger.dispute_lot(c.subsupplier, loan_id=loan, lot_id=child, reason_hash=h("short"))
    watch.sync()
    alert = watch.only(loan, "disputed_payment")
    assert alert.severity == "high"
    assert alert.explanation == (
        f"CNY 10,000.00 was paid to {short(c.subsupplier.address)} out of the lot held by "
        f"{short(c.supplier.address)} on {fmt_time(ts)}; the payee disputed it on "
        f"{fmt_time(watch.stamp(result))}."
    )
    watch.world.ledger.confirm_lot(c.subsupplier, loan_id=loan, lot_id=child, evidence_hash=h("settled"))
    watch.sync()
    assert watch.only(loan, "disputed_payment").state == "resolved"
    # A confirmation is final on chain (issue 16): no dispute can follow it, so the alert stays resolved.
    with reverts("LedgerLotAlreadyConfirmed", loanId=loan, lotId=child):
        watch.world.ledger.dispute_lot(c.subsupplier, loan_id=loan, lot_id=child, reason_hash=h("again"))
    watch.sync()
    settled = watch.only(loan, "disputed_payment")
    assert (settled.id, settled.state, settled.resolved_by) == (alert.id, "resolved", "system")


# ---------------------------------------------------------------------------------------------- repayment


def _today(watch: Watch) -> datetime:
    return datetime.fromtimestamp(watch.chain_time(), UTC)


def test_late_repayment_raises_for_an_installment_short_after_its_due_date(watch: Watch) -> None:
    c = watch.world.cast
    today = _today(watch).date()
    schedule = [
        Installment(due_date=today - timedelta(days=10), amount=200_000_00),
        Installment(due_date=today + timedelta(days=30), amount=300_000_00),
    ]
    terms = LoanTerms(repayment_schedule=schedule, counterparties=[c.supplier.address])
    loan = watch.open_loan("late", terms)
    paid = watch.open_loan("on-time", terms)  # near miss
    for loan_id, repaid in ((loan, 100_000_00), (paid, 200_000_00)):
        watch.disburse(loan_id, c.supplier, 500_000_00)
        watch.world.ledger.repay(c.bank, loan_id=loan_id, amount=repaid, evidence_hash=h("bank slip"))
    watch.sync()
    assert watch.alerts(paid) == []
    alert = watch.only(loan, "late_repayment")
    assert (alert.severity, alert.cause_key) == ("medium", f"installment:{schedule[0].due_date}")
    assert alert.explanation == (
        f"The installment of CNY 200,000.00 due on {schedule[0].due_date} is 10 day(s) past due: "
        "CNY 200,000.00 was due by then and CNY 100,000.00 has been repaid, CNY 100,000.00 short."
    )
    watch.world.ledger.repay(c.bank, loan_id=loan, amount=100_000_00, evidence_hash=h("second slip"))
    watch.sync()
    assert watch.only(loan, "late_repayment").resolved_by == "system"


def test_past_maturity_raises_only_after_maturity_with_principal_outstanding(watch: Watch) -> None:
    c = watch.world.cast
    maturity = watch.chain_time() + 2 * DAY
    loan = watch.open_loan("maturity", maturity=maturity)
    watch.disburse(loan, c.supplier, 500_000_00)
    watch.world.ledger.repay(c.bank, loan_id=loan, amount=100_000_00, evidence_hash=h("slip"))
    watch.sync()
    assert watch.evaluate(loan, now=maturity - 60).raised == []  # near miss: not yet mature
    watch.evaluate(loan, now=maturity + 5 * DAY + 60)
    alert = watch.only(loan, "past_maturity")
    assert alert.severity == "high"
    assert alert.explanation == (
        f"The loan matured on {fmt_time(maturity)}; CNY 400,000.00 of the CNY 500,000.00 disbursed is still "
        "outstanding 5 day(s) later."
    )


# ---------------------------------------------------------------------------------------------- collateral


def test_collateral_cover_raises_below_the_required_ratio(watch: Watch) -> None:
    c = watch.world.cast
    terms = LoanTerms(required_collateral_cover=Decimal("1.5"), counterparties=[c.supplier.address])
    loan = watch.open_loan("cover", terms)
    covered = watch.open_loan("covered", terms)  # near miss
    for loan_id, value in ((loan, 1_200_000_00), (covered, 1_600_000_00)):
        watch.disburse(loan_id, c.supplier, 1_000_000_00)
        watch.world.ledger.value_collateral(
            c.bank, loan_id=loan_id, collateral_id=h("warehouse"), value=value, evidence_hash=h("appraisal")
        )
    watch.sync()
    assert watch.alerts(covered) == []
    alert = watch.only(loan, "collateral_cover")
    assert alert.explanation.startswith("Collateral valued at CNY 1,200,000.00 (1 item(s), latest valuation ")
    assert alert.explanation.endswith(
        "covers 1.20× the outstanding CNY 1,000,000.00; the loan requires 1.5×."
    )
    watch.world.ledger.value_collateral(
        c.bank,
        loan_id=loan,
        collateral_id=h("warehouse"),
        value=1_500_000_00,
        evidence_hash=h("re-appraisal"),
    )
    watch.sync()
    cleared = watch.only(loan, "collateral_cover")
    assert (cleared.id, cleared.state, cleared.resolved_by) == (alert.id, "resolved", "system")
    # The cause comes back (the collateral is revalued down again): the same alert reopens.
    watch.world.ledger.value_collateral(
        c.bank, loan_id=loan, collateral_id=h("warehouse"), value=1_100_000_00, evidence_hash=h("slump")
    )
    watch.sync()
    reopened = watch.only(loan, "collateral_cover")
    assert (reopened.id, reopened.state, reopened.resolved_by) == (alert.id, "open", None)


def test_collateral_stale_raises_for_a_valuation_older_than_the_limit(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("stale")
    watch.disburse(loan, c.supplier, 100_000_00)
    result = watch.world.ledger.value_collateral(
        c.bank, loan_id=loan, collateral_id=h("plant"), value=300_000_00, evidence_hash=h("appraisal")
    )
    ts = watch.stamp(result)
    watch.sync()
    watch.evaluate(loan, now=ts + 179 * DAY)
    assert watch.alerts(loan, "collateral_stale") == []  # near miss
    watch.evaluate(loan, now=ts + 181 * DAY)
    alert = watch.only(loan, "collateral_stale")
    assert alert.explanation == (
        f"Collateral {h('plant')[:10]}… was last valued at CNY 300,000.00 on {fmt_time(ts)}, 181 days ago "
        "(limit 180 days)."
    )


# ---------------------------------------------------------------------------------------------- inspections


def test_missed_inspection_raises_when_none_is_recorded_within_the_interval(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("inspection", LoanTerms(inspection_interval_days=90))
    watch.disburse(loan, c.supplier, 100_000_00)
    result = watch.world.ledger.record_inspection(c.bank, loan_id=loan, kind=0, report_hash=h("site visit"))
    ts = watch.stamp(result)
    watch.sync()
    watch.evaluate(loan, now=ts + 89 * DAY)
    assert watch.alerts(loan, "missed_inspection") == []  # near miss
    watch.evaluate(loan, now=ts + 93 * DAY)
    alert = watch.only(loan, "missed_inspection")
    assert alert.explanation == (
        f"An inspection is due every 90 days and was due on {fmt_time(ts + 90 * DAY)}; "
        f"the last inspection was on {fmt_time(ts)}. It is 3 day(s) overdue."
    )


def test_missed_inspection_counts_from_the_loan_opening_when_none_was_ever_recorded(watch: Watch) -> None:
    loan = watch.open_loan("never-inspected", LoanTerms(inspection_interval_days=30))
    watch.sync()
    with watch.engine.connect() as conn:
        opened = watch.monitor.facts(conn, loan)
    assert opened is not None
    watch.evaluate(loan, now=opened.opened_at + 31 * DAY)
    assert "none has been recorded since the loan opened" in watch.only(loan, "missed_inspection").explanation


# ------------------------------------------------------------------------------------------ once per cause


def test_re_evaluation_raises_each_cause_once(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("once")
    watch.disburse(loan, c.supplier, 100_000_00, Purpose.SECURITIES)
    watch.sync()
    first = watch.alerts(loan)
    for _ in range(3):
        result = watch.evaluate(loan)
        assert (result.raised, result.updated, result.cleared, result.deleted) == ([], [], [], [])
    watch.disburse(loan, c.supplier, 1_000_00)  # another batch touching the loan
    watch.sync()
    assert watch.alerts(loan) == first


def test_missed_inspection_follows_an_inspection_schedule(watch: Watch) -> None:
    c = watch.world.cast
    today = datetime.fromtimestamp(watch.chain_time(), UTC).date()
    schedule = [{"due": (today - timedelta(days=5)).isoformat(), "kind": "site_visit"}]
    loan = watch.open_loan(
        "scheduled-inspection", LoanTerms.model_validate({"inspection_schedule": schedule})
    )
    inspected = watch.open_loan("inspected", LoanTerms.model_validate({"inspection_schedule": schedule}))
    watch.world.ledger.record_inspection(c.bank, loan_id=inspected, kind=0, report_hash=h("visit"))
    watch.sync()
    assert watch.alerts(inspected) == []  # near miss
    assert watch.only(loan, "missed_inspection").explanation == (
        f"The loan contract schedules inspection no. 1 (site visit) by {schedule[0]['due']}; only 0 "
        "site visit(s) are recorded, 5 day(s) after that date."
    )


def test_terms_stored_by_the_api_are_used_when_they_hash_to_the_on_chain_terms(
    world: World, db_url: str
) -> None:
    """Without an explicit provider the monitor reads the terms the API keeps (`terms_versions`)."""
    import sqlalchemy as sa

    from ledger.monitoring.monitor import Monitor
    from ledger.store.offchain import LoanMetadata, keep_terms_version, terms_hash

    c = world.cast
    with watching(world, db_url) as watch:
        watch.monitor = Monitor()  # default provider: the database
        watch.indexer.after_batch = watch.monitor.after_batch
        document = {
            "repayment_schedule": [],
            "counterparties": [{"name": "Supplier One", "role": "supplier", "address": c.supplier.address}],
            "approval_threshold": 100_000_00,
        }
        stored = LoanTerms.from_document(document)
        loan = h("loan:api-terms")
        world.ledger.open_loan(
            c.bank,
            loan_id=loan,
            borrower=c.borrower.address,
            borrower_ref=h("ref:api-terms"),
            principal=1_000_000_00,
            currency="CNY",
            allowed_purposes=(Purpose.RAW_MATERIALS,),
            maturity=watch.chain_time() + 365 * DAY,
            terms_hash=terms_hash(document),
        )
        with watch.engine.begin() as conn:
            conn.execute(
                sa.insert(LoanMetadata.__table__).values(  # type: ignore[attr-defined]
                    loan_id=loan,
                    loan_number="LN-2026-0042",
                    terms=document,
                    terms_hash=terms_hash(document),
                    created_by=c.bank.address,
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
            keep_terms_version(conn, loan, document, terms_hash(document), datetime.now(UTC))
        d, _ = watch.disburse(loan, c.supplier, 600_000_00)
        for amount in (99_000_00, 98_000_00, 97_000_00):
            watch.pay(c.supplier, loan, d, c.subsupplier, amount)
        watch.sync()
        assert stored.counterparties == [c.supplier.address]
        assert [a.rule for a in watch.alerts(loan)] == ["structuring"]  # supplier is named: no concentration
