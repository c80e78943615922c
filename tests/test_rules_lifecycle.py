"""Alert lifecycle (acknowledge, resolve, system resolution, reopening), alerts across reorgs on a private
Hardhat node, and the five-category classification suggestion and its application on chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import LENDER_ROLE, World, h, make_world
from eth_account.signers.local import LocalAccount
from indexer_support import forget_nonces
from monitor_support import DAY, Watch, watching

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import RiskClass
from ledger.errors import NotFoundError, PermissionDeniedError, ValidationError
from ledger.monitoring.alerts import acknowledge, resolve
from ledger.monitoring.classification import (
    ClassificationReason,
    approve_classification,
    propose_classification,
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
    due_date = datetime.fromtimestamp(due, UTC).date()
    if days:
        assert reasons[0].startswith(
            f"[rule] {days} day(s) past due since {due_date} (principal due {due_date}"
        )
    else:
        assert reasons == [
            "no criterion fired: no principal or interest past due, no unresolved high-severity alerts"
        ]


def test_suggestion_counts_unresolved_serious_alerts_and_missing_cover(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("misused", LoanTerms(counterparties=[c.supplier.address]))
    watch.disburse(loan, c.supplier, 100_000_00, Purpose.REAL_ESTATE)
    watch.sync()
    alert = watch.only(loan, "prohibited_use")
    cls, reasons = _suggest(watch, loan)
    assert cls == RiskClass.SPECIAL_MENTION
    assert reasons == [
        f"[bank policy] unresolved critical alert #{alert.id}: {alert.title} "
        "→ at least 关注 (special mention)"
    ]
    resolve(watch.engine, alert.id, by="officer.li@bank-a", note="funds recalled")
    assert _suggest(watch, loan)[0] == RiskClass.NORMAL

    short, due = _late_loan(watch, "short-cover", cover="1.5")
    cls, reasons = _suggest(watch, short, due + 100 * DAY)
    assert cls == RiskClass.DOUBTFUL  # substandard by days past due, one further without cover (policy)
    assert reasons[0].startswith("[rule] 100 day(s) past due since")
    assert (
        "[bank policy] collateral cover 0.00× below the required 1.5× → at least 关注 (special mention)"
        in reasons
    )
    assert (
        reasons[-1]
        == "[bank policy] past due over 90 days without full collateral cover → at least 可疑 (doubtful)"
    )


# ------------------------------------------------------------------------------------------ maker-checker


def _propose(watch: Watch, loan: str, cls: RiskClass, reason: str | None, by: LocalAccount) -> int:
    p = propose_classification(
        watch.engine,
        loan_id=loan,
        risk_class=cls,
        reason=reason,
        proposed_by=by.address,
        proposed_by_name="officer.li@bank-a",
        monitor=watch.monitor,
    )
    assert p.id is not None
    return p.id


def _approve(watch: Watch, proposal: int, by: LocalAccount) -> Any:
    return approve_classification(
        watch.engine,
        watch.world.ledger,
        by,
        proposal_id=proposal,
        approver_org=watch.world.cast.bank_org,
        approved_by_name="officer.wang@bank-a",
        monitor=watch.monitor,
    )


def test_a_class_change_needs_a_reason_to_depart_and_a_second_person_to_approve(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("apply", LoanTerms(counterparties=[c.supplier.address]))
    watch.disburse(loan, c.supplier, 100_000_00)
    watch.sync()
    with pytest.raises(ValidationError, match="a written reason is required"):
        _propose(watch, loan, RiskClass.SUBSTANDARD, "", c.bank)
    reason = "Borrower's main customer filed for bankruptcy on 3 March; receivables at risk."
    proposal = _propose(watch, loan, RiskClass.SUBSTANDARD, reason, c.bank)
    with pytest.raises(PermissionDeniedError, match="cannot also approve it"):
        _approve(watch, proposal, c.bank)  # the maker is not the checker
    assert watch.world.ledger.get_loan(loan).risk_class == RiskClass.NORMAL  # nothing was sent
    applied = _approve(watch, proposal, c.bank2)
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
    assert (row.reason, row.reason_hash, row.transaction_hash) == (
        reason,
        reason_hash(reason),
        applied.transaction_hash,
    )
    assert c.bank.address in row.applied_by and c.bank2.address in row.applied_by
    with pytest.raises(ValidationError, match="already approved"):
        _approve(watch, proposal, c.bank2)
    # back to 正常 from a non-performing class: the cure conditions and the assessment are needed
    watch.sync()
    with pytest.raises(ValidationError, match="needs an assessment that the debtor can keep paying"):
        _propose(watch, loan, RiskClass.NORMAL, "customer paid", c.bank2)


def test_a_revoked_accounts_proposal_cannot_be_approved(watch: Watch) -> None:
    c = watch.world.cast
    loan = watch.open_loan("revoked", LoanTerms(counterparties=[c.supplier.address]))
    watch.disburse(loan, c.supplier, 100_000_00)
    watch.sync()
    proposal = _propose(watch, loan, RiskClass.SPECIAL_MENTION, "sector downturn", c.bank2)
    watch.world.ledger.revoke_role(c.operator, LENDER_ROLE, c.bank2.address)
    watch.sync()
    with pytest.raises(PermissionDeniedError, match="no longer an active lender account"):
        _approve(watch, proposal, c.bank)
    assert watch.world.ledger.get_loan(loan).risk_class == RiskClass.NORMAL


def test_a_class_better_than_the_floor_is_refused_naming_the_criterion(watch: Watch) -> None:
    c = watch.world.cast
    loan, due = _late_loan(watch, "floor")
    watch.monitor.now = lambda: due + 100 * DAY
    due_date = datetime.fromtimestamp(due, UTC).date()
    with pytest.raises(ValidationError, match=f"because 100 day\\(s\\) past due since {due_date}"):
        _propose(watch, loan, RiskClass.SPECIAL_MENTION, "the borrower promised to pay", c.bank)
    # worse than the floor is the bank's right, with a reason
    _approve(watch, _propose(watch, loan, RiskClass.DOUBTFUL, "guarantor insolvent", c.bank), c.bank2)
    assert watch.world.ledger.get_loan(loan).risk_class == RiskClass.DOUBTFUL
