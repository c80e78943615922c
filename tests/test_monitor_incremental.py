"""The monitor after a batch sees only what the batch changed (issue 24); its alerts must be what a whole
evaluation of every loan gives.

Random but valid activity (payments to the borrower's side and away, near the approval threshold, into
undeclared and prohibited purposes, confirmations, disputes, repayments, valuations, inspections,
restructurings, closings) and reorgs run on a real node; the monitor follows the indexer with its sweep
switched off, so between batches it only ever evaluates changes. After every batch a whole evaluation of
every loan, in a transaction rolled back afterwards, must find nothing to raise, refresh, resolve, reopen or
delete.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from conftest import World, make_world
from indexer_support import Activity, assert_mirror_matches_chain
from sqlalchemy.engine import Engine

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.mirror.indexer import Indexer
from ledger.mirror.read import Mirror
from ledger.monitoring.alerts import Alert
from ledger.monitoring.monitor import EvaluationResult, Monitor
from ledger.protocol.terms import Installment, LoanTerms, ScheduledInspection

THRESHOLD = 100_000_00  # CNY 100,000.00


def _terms(world: World) -> LoanTerms:
    """One set of terms for every loan: every rule that needs terms has something to check."""
    cast = world.cast
    past = date.today() - timedelta(days=10)
    return LoanTerms(
        repayment_schedule=[Installment(due_date=past, amount=1_000_00)],
        inspection_schedule=[ScheduledInspection(due_date=past, kind="site_visit")],
        counterparties=[cast.supplier.address],
        approval_threshold=THRESHOLD,
        required_collateral_cover=Decimal("1.5"),
        linked_parties=[cast.subsupplier.address],
    )


def _pay_near_threshold(activity: Activity) -> None:
    """Payments just under the approval threshold, often several in a row (structuring)."""
    for _ in range(activity.rng.choice([1, 3])):
        spendable = [
            (k, v)
            for k, v in activity.lots.items()
            if v.remaining > THRESHOLD and activity.loans[v.loan_id]["open"]
        ]
        if not spendable:
            return
        lot_id, info = activity.rng.choice(spendable)
        amount = THRESHOLD - activity.rng.randint(1, THRESHOLD // 20)
        payee = activity._enterprise()
        result = activity.ledger.pay(
            info.holder,
            loan_id=info.loan_id,
            from_lot=lot_id,
            payee=payee.address,
            amount=amount,
            purpose=1,
            evidence_hash="0x" + "00" * 32,
        )
        info.remaining -= amount
        new = result.event("Paid").args["lotId"]
        activity.lots[new] = type(info)(info.loan_id, payee, amount)


def _pass_through(activity: Activity) -> None:
    """Most of a fresh loan disbursed to the borrower and passed on at once to a payee the terms do not name
    (rapid pass-through, concentration)."""
    fresh = [i for i, s in activity.loans.items() if s["open"] and s["disbursed"] == 0]
    if not fresh:
        return
    loan_id = activity.rng.choice(fresh)
    state = activity.loans[loan_id]
    cast = activity.world.cast
    amount = state["principal"] * 9 // 10
    result = activity.ledger.disburse(
        cast.bank, loan_id=loan_id, payee=cast.borrower.address, amount=amount, purpose=1
    )
    state["disbursed"] += amount
    lot_id = result.event("Disbursed").args["lotId"]
    passed = amount * 9 // 10
    paid = activity.ledger.pay(
        cast.borrower,
        loan_id=loan_id,
        from_lot=lot_id,
        payee=cast.supplier2.address,
        amount=passed,
        purpose=1,
    )
    info = type(next(iter(activity.lots.values())))
    activity.lots[lot_id] = info(loan_id, cast.borrower, amount - passed)
    activity.lots[paid.event("Paid").args["lotId"]] = info(loan_id, cast.supplier2, passed)


def _step(activity: Activity) -> None:
    draw = activity.rng.random()
    if draw < 0.15:
        _pay_near_threshold(activity)
    elif draw < 0.25:
        _pass_through(activity)
    else:
        activity.random_step()


def _whole_evaluation(engine: Engine, monitor: Monitor) -> EvaluationResult:
    """What a whole evaluation of every loan would change now (rolled back)."""
    with engine.connect() as conn:
        tx = conn.begin()
        try:
            return monitor.evaluate(conn, Mirror(conn).loan_ids())
        finally:
            tx.rollback()


def _assert_agrees(engine: Engine, whole: Monitor) -> None:
    result = _whole_evaluation(engine, whole)
    changed = {
        "raised": result.raised,
        "updated": result.updated,
        "cleared": result.cleared,
        "reopened": result.reopened,
        "deleted": result.deleted,
        "failed": result.failed_rules,
    }
    assert not any(changed.values()), changed


@pytest.mark.parametrize("seed", [1, 2])
def test_alerts_after_each_batch_are_what_a_whole_evaluation_gives(
    db_engine: Engine, private_client: ChainClient, compiled: CompiledContract, seed: int
) -> None:
    world = make_world(private_client, compiled)
    terms = _terms(world)
    provider = lambda loan_id: terms  # noqa: E731
    incremental = Monitor(terms=provider, sweep_seconds=10**12)
    whole = Monitor(terms=provider)
    activity = Activity(world, random.Random(seed))
    rng = random.Random(seed)
    for _ in range(3):
        activity.open_loan()
    activity.disburse()
    _pass_through(activity)
    with Indexer(
        db_engine, private_client, world.deployment, initial_range=1, after_batch=incremental.after_batch
    ) as indexer:
        for _ in range(14):
            if rng.random() < 0.3:  # a reorg: some blocks (maybe indexed), then a different branch
                snapshot = activity.snapshot()
                for _ in range(rng.randint(1, 4)):
                    _step(activity)
                if rng.random() < 0.7:
                    indexer.run_once()
                    _assert_agrees(db_engine, whole)
                activity.revert(snapshot)
            for _ in range(rng.randint(1, 5)):
                _step(activity)
            indexer.run_once()
            _assert_agrees(db_engine, whole)
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)
    with db_engine.connect() as conn:
        rules = {r[0] for r in conn.execute(sa.select(Alert.__table__.c.rule).distinct())}  # type: ignore[attr-defined]
    # The activity reached the rules of every scope (not a test that could pass by raising nothing).
    assert {"circular_flow", "rapid_pass_through", "structuring", "concentration", "late_repayment"} <= rules
