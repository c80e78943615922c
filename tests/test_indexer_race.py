"""A reorg that lands between two of the indexer's calls to the node (issue 24).

The node is real (a Hardhat node of this module's own); `RacingTransport` forwards the indexer's calls one at
a time and makes the reorg (evm_revert, then different transactions, through another client) just before
call number k. Every k of a catch-up is tried, from before the first call to after the last, with a batch's
calls in either order: whatever the interleaving, the mirror must end equal to the chain, and the loan's
next event must index. On the code before the fix, the tip's batch `[eth_getLogs(n), eth_getBlockByNumber(n)]`
committed the new block n under its header with the old block's (empty) logs: the new block's event was lost
for good, and a non-chained one (an attestation, an organization) without any later error.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import World, h, make_world
from indexer_support import Activity, assert_mirror_matches_chain, mine_empty
from sqlalchemy.engine import Engine
from transport_support import RacingTransport

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.localchain import LocalChain
from ledger.mirror.indexer import Indexer
from ledger.store.db import create_db_engine, migrate

Step = Callable[[Activity, str], None]


def _empty(activity: Activity, loan_id: str) -> None:
    mine_empty(activity.ledger.client, 1)


def _disburse(activity: Activity, loan_id: str) -> None:
    activity.disburse(loan_id)


def _attest(activity: Activity, loan_id: str) -> None:
    """TrailAttested: a loan's event outside its hash chain."""
    cast = activity.world.cast
    head = activity.ledger.head_of(loan_id)
    activity.ledger.attest(
        cast.auditor, loan_id=loan_id, head=head, report_hash=h(f"audit:{activity.counter}")
    )
    activity.counter += 1


def _organization(activity: Activity, loan_id: str) -> None:
    """OrganizationRegistered: a participant event, in no hash chain."""
    activity.counter += 1
    org = h(f"org:race:{activity.counter}")
    activity.ledger.register_organization(activity.world.cast.operator, org, h(f"profile:{org}"))


def _three(activity: Activity, loan_id: str) -> None:
    """Three blocks with events (the loan stays open): the indexer fetches them as a range."""
    activity.disburse(loan_id)
    activity.pay()
    activity.confirm_or_dispute()


# (what the orphaned branch holds, what replaces it)
SCENARIOS: dict[str, tuple[Step, Step]] = {
    "empty-block-replaced-by-disbursement": (_empty, _disburse),
    "disbursement-replaced-by-empty-block": (_disburse, _empty),
    "range-replaced-by-range": (_three, _three),
}


@pytest.fixture(scope="module")
def race_chain() -> Iterator[LocalChain]:
    with LocalChain() as node:
        yield node


class _Race:
    """One world on the module's node, its mirror indexed up to a base block held as a SQLite file, and
    the chain at that base kept as a snapshot to go back to."""

    def __init__(self, node: LocalChain, compiled: CompiledContract, tmp: Path) -> None:
        self.node = node
        self.client = ChainClient(node.url)
        self.world: World = make_world(self.client, compiled)
        self.activity = Activity(self.world, random.Random(24))
        self.loan_id = self.activity.open_loan()
        self.activity.disburse(self.loan_id)
        self.tmp = tmp
        self.template = tmp / "base.db"
        engine = self._engine(self.template)
        with Indexer(engine, self.client, self.world.deployment) as indexer:
            indexer.run_once()
        engine.dispose()
        self.base: Any = self.activity.snapshot()
        self.runs = 0

    def _engine(self, path: Path) -> Engine:
        engine = create_db_engine(f"sqlite:///{path}")
        migrate(engine)
        return engine

    def back_to_base(self) -> None:
        self.activity.revert(self.base)
        self.base = self.activity.snapshot()

    def run(self, orphaned: Step, replacement: Step, *, at: int | None, reverse: bool) -> RacingTransport:
        """From the base: the orphaned branch is mined, and the indexer catches up through a racing
        transport that replaces it before call `at`; then the loan's next event is indexed too, and the
        mirror must equal the chain."""
        self.back_to_base()
        orphaned(self.activity, self.loan_id)
        self.runs += 1
        path = self.tmp / f"run{self.runs}.db"
        shutil.copyfile(self.template, path)
        engine = self._engine(path)

        def reorg() -> None:
            self.back_to_base()
            replacement(self.activity, self.loan_id)

        transport = RacingTransport(self.node.url, at=at, race=reorg, reverse_batches=reverse)
        racing = ChainClient(self.node.url, transport=transport)
        try:
            with Indexer(engine, racing, self.world.deployment, initial_range=4) as indexer:
                indexer.run_once()
                if at is not None and not transport.fired:  # after the catch-up's last call: still a reorg
                    transport.at = len(transport.methods)
                    indexer.run_once()
                assert transport.fired == (at is not None)
                self.activity.disburse(self.loan_id)  # the loan's next event must index
                indexer.run_once()
            assert_mirror_matches_chain(engine, self.world.ledger, self.world.deployment)
        finally:
            racing.close()
            engine.dispose()
            path.unlink()
        return transport


@pytest.fixture(scope="module")
def race(
    race_chain: LocalChain, compiled: CompiledContract, tmp_path_factory: pytest.TempPathFactory
) -> _Race:
    return _Race(race_chain, compiled, tmp_path_factory.mktemp("race"))


def _every_position(race: _Race, orphaned: Step, replacement: Step, reverse: bool) -> None:
    # How many calls a catch-up over the orphaned branch makes when nothing races it ...
    calls = len(race.run(orphaned, replacement, at=None, reverse=reverse).methods)
    assert calls >= 3
    # ... and the reorg before each of them, and after the last.
    for at in range(calls + 1):
        race.run(orphaned, replacement, at=at, reverse=reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["batch-in-order", "batch-reversed"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_reorg_between_any_two_calls_loses_nothing(race: _Race, scenario: str, reverse: bool) -> None:
    orphaned, replacement = SCENARIOS[scenario]
    _every_position(race, orphaned, replacement, reverse)


@pytest.mark.parametrize("reverse", [False, True], ids=["batch-in-order", "batch-reversed"])
@pytest.mark.parametrize("replacement", [_attest, _organization], ids=["attestation", "organization"])
def test_a_non_chained_event_is_not_lost_to_a_race(race: _Race, replacement: Step, reverse: bool) -> None:
    """An event no hash chain covers (an auditor's attestation, a new organization) in the block that
    replaced an empty one: before the fix, at the tip's batch the old block's empty logs were committed
    under the new header and the event was missing from the mirror with no error at all, then or later."""
    _every_position(race, _empty, replacement, reverse)
