"""Alert lifecycle (acknowledge, resolve, system resolution, reopening), alerts across reorgs on a private
Hardhat node, and the five-category classification suggestion and its application on chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from conftest import World, h, make_world
from indexer_support import forget_nonces
from monitor_support import DAY, Watch, watching

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import RiskClass
from ledger.errors import NotFoundError, ValidationError
from ledger.monitoring.alerts import acknowledge, resolve
from ledger.monitoring.classification import (
    ClassificationReason,
    apply_classification,
    reason_hash,
    suggest_classification,
)
from ledger.protocol.purposes import Purpose
from ledger.protocol.terms import Installment, LoanTerms


@pytest.fixture
def watch(world: World, db_url: str) -> Iterator[Watch]:
    with watching(world, db_url) as w:
        yield w


# ---------------------------------------------------------------------------------------------- lifecycle


def test_alert_lifecycle_records_who_and_when_and_resolution_survives_re_evaluation(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("lifecycle")
    watch.disburse(loan, c.supplier, 100_000_00, Purpose.SECURITIES)
    watch.sync()
    alert = watch.only(loan, "prohibited_use")
    assert (alert.state, alert.acknowledged_by, alert.resolved_by) == ("open", None, None)
    before = datetime.now(UTC)
    seen = acknowledge(watch.engine, alert.id, by="officer.li@bank-a")
    assert (seen.state, seen.acknowledged_by) == ("acknowledged", "officer.li@bank-a")
    assert seen.acknowledged_at is not None and seen.acknowledged_at.replace(tzinfo=UTC) >= before
    assert acknowledge(watch.engine, alert.id, by="someone.else").acknowledged_by == "officer.li@bank-a"
    with pytest.raises(ValidationError, match="needs a note"):
        resolve(watch.engine, alert.id, by="officer.li@bank-a", note="  ")
    done = resolve(watch.engine, alert.id, by="officer.li@bank-a", note="borrower repaid the securities buy")
    assert (done.state, done.resolved_by, done.resolution_note) == (
        "resolved",
        "officer.li@bank-a",
        "borrower repaid the securities buy",
    )
    # the cause persists; re-evaluation and later batches leave the person's resolution alone
    watch.evaluate(loan)
    watch.disburse(loan, c.supplier, 1_000_00)
    watch.sync()
    assert watch.only(loan, "prohibited_use") == done
    with pytest.raises(ValidationError, match="already resolved"):
        acknowledge(watch.engine, alert.id, by="officer.li@bank-a")
    with pytest.raises(NotFoundError):
        acknowledge(watch.engine, 999_999, by="x")


def test_a_cause_that_goes_away_is_resolved_by_system_keeping_the_acknowledgement(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("cleared")
    lot, _ = watch.disburse(loan, c.supplier, 100_000_00)
    watch.world.ledger.dispute_lot(c.supplier, loan_id=loan, lot_id=lot, reason_hash=h("wrong amount"))
    watch.sync()
    alert = watch.only(loan, "disputed_payment")
    acknowledge(watch.engine, alert.id, by="officer.wang@bank-a")
    watch.world.ledger.confirm_lot(c.supplier, loan_id=loan, lot_id=lot, evidence_hash=h("settled"))
    watch.sync()
    cleared = watch.only(loan, "disputed_payment")
    assert (cleared.state, cleared.resolved_by, cleared.acknowledged_by) == (
        "resolved",
        "system",
        "officer.wang@bank-a",
    )
    assert cleared.resolution_note is not None and "no longer holds" in cleared.resolution_note


# ---------------------------------------------------------------------------------------------- reorgs


@pytest.fixture
def fork_world(private_client: ChainClient, compiled: CompiledContract) -> World:
    return make_world(private_client, compiled)


def test_reorg_deletes_alerts_built_on_orphaned_events_and_keeps_the_others(
    fork_world: World, db_url: str
) -> None:
    c = fork_world.cast
    with watching(fork_world, db_url) as watch:
        loan = watch.open_loan("reorg")
        lot, _ = watch.disburse(loan, c.supplier, 300_000_00, Purpose.ONWARD_LENDING)
        watch.sync()
        kept = watch.only(loan, "prohibited_use")
        acknowledge(watch.engine, kept.id, by="officer.zhao@bank-a")
        client = fork_world.ledger.client
        snapshot = client.rpc("evm_snapshot")
        watch.pay(c.supplier, loan, lot, c.subsupplier, 50_000_00, Purpose.DEBT_REPAYMENT)  # to be orphaned
        watch.sync()
        assert len(watch.alerts(loan, "prohibited_use")) == 2
        orphan = watch.alerts(loan, "prohibited_use")[1]
        acknowledge(watch.engine, orphan.id, by="officer.zhao@bank-a")
        assert client.rpc("evm_revert", [snapshot]) is True
        forget_nonces(client)
        watch.pay(c.supplier, loan, lot, c.subsupplier, 40_000_00, Purpose.RAW_MATERIALS)  # the new branch
        client.rpc("evm_mine")  # longer than the orphaned branch
        watch.sync()
        alerts = watch.alerts(loan)
        assert [a.id for a in alerts] == [kept.id]
        assert alerts[0].state == "acknowledged"
        assert alerts[0].acknowledged_by == "officer.zhao@bank-a"


# ------------------------------------------------------------------------------------------ classification


def _suggest(watch: Watch, loan: str, now: int | None = None) -> tuple[RiskClass, list[str]]:
    watch.monitor.now = (lambda: now) if now is not None else None
    with watch.engine.connect() as conn:
        s = suggest_classification(conn, loan, watch.monitor)
    return s.risk_class, s.reasons


def _late_loan(watch: Watch, label: str, cover: str | None = None) -> tuple[str, int]:
    c = watch.world.cast
    today = datetime.fromtimestamp(watch.chain_time(), UTC).date()
    terms = LoanTerms(
        repayment_schedule=[Installment(due_date=today, amount=100_000_00)],
        counterparties=[c.supplier.address],
        required_collateral_cover=Decimal(cover) if cover else None,
    )
    loan = watch.open_loan(label, terms)
    watch.disburse(loan, c.supplier, 500_000_00)
    watch.sync()
    due_end = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp())
    return loan, due_end


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (0, RiskClass.NORMAL),
        (10, RiskClass.SPECIAL_MENTION),
        (91, RiskClass.SUBSTANDARD),
        (271, RiskClass.DOUBTFUL),
        (361, RiskClass.LOSS),
    ],
)
def test_suggestion_follows_days_past_due(watch: Watch, days: int, expected: RiskClass) -> None:
    loan, due = _late_loan(watch, f"dpd-{days}")
    cls, reasons = _suggest(watch, loan, due + days * DAY + 3600)
    assert cls == expected
    if days:
        assert reasons[0] == f"{days} day(s) past due"
    else:
        assert reasons == ["repayments on schedule, no unresolved high-severity alerts, collateral cover met"]


def test_suggestion_counts_unresolved_serious_alerts_and_missing_cover(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("misused", LoanTerms(counterparties=[c.supplier.address]))
    watch.disburse(loan, c.supplier, 100_000_00, Purpose.REAL_ESTATE)
    watch.sync()
    alert = watch.only(loan, "prohibited_use")
    cls, reasons = _suggest(watch, loan)
    assert cls == RiskClass.SPECIAL_MENTION
    assert reasons == [f"unresolved critical alert #{alert.id}: {alert.title}"]
    resolve(watch.engine, alert.id, by="officer.li@bank-a", note="funds recalled")
    assert _suggest(watch, loan)[0] == RiskClass.NORMAL

    short, due = _late_loan(watch, "short-cover", cover="1.5")
    cls, reasons = _suggest(watch, short, due + 100 * DAY)
    assert cls == RiskClass.DOUBTFUL  # substandard by days past due, one further without cover
    assert reasons[0] == "100 day(s) past due"
    assert "collateral cover 0.00× below the required 1.5×" in reasons
    assert reasons[-1] == "past due over 90 days without full collateral cover"


def test_apply_classification_needs_a_reason_to_depart_from_the_suggestion(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("apply", LoanTerms(counterparties=[c.supplier.address]))
    watch.disburse(loan, c.supplier, 100_000_00)
    watch.sync()
    with pytest.raises(ValidationError, match="a written reason is required"):
        apply_classification(
            watch.engine,
            watch.world.ledger,
            c.bank,
            loan_id=loan,
            risk_class=RiskClass.SUBSTANDARD,
            reason="",
            applied_by="officer.li@bank-a",
        )
    reason = "Borrower's main customer filed for bankruptcy on 3 March; receivables at risk."
    applied = apply_classification(
        watch.engine,
        watch.world.ledger,
        c.bank,
        loan_id=loan,
        risk_class=RiskClass.SUBSTANDARD,
        reason=reason,
        applied_by="officer.li@bank-a",
    )
    assert (applied.risk_class, applied.suggested, applied.reason_hash) == (
        RiskClass.SUBSTANDARD,
        RiskClass.NORMAL,
        reason_hash(reason),
    )
    event = watch.world.ledger.result_of(applied.transaction_hash).event("RiskClassified")
    assert (event.args["riskClass"], event.args["reasonHash"]) == (
        int(RiskClass.SUBSTANDARD),
        reason_hash(reason),
    )
    table = ClassificationReason.__table__  # type: ignore[attr-defined]
    with watch.engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.loan_id == loan)).one()
    assert (row.reason, row.reason_hash, row.transaction_hash, row.applied_by) == (
        reason,
        reason_hash(reason),
        applied.transaction_hash,
        "officer.li@bank-a",
    )
    # following the suggestion needs no reason: the suggestion's own reasons are hashed
    followed = apply_classification(
        watch.engine,
        watch.world.ledger,
        c.bank,
        loan_id=loan,
        risk_class=RiskClass.NORMAL,
        reason=None,
        applied_by="officer.li@bank-a",
    )
    assert followed.reason.startswith("Suggested 正常 (normal): ")
    assert watch.world.ledger.get_loan(loan).risk_class == RiskClass.NORMAL
