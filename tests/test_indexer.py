"""The indexer against the real Hardhat node, on SQLite and PostgreSQL: the mirror equals the chain, the
status, the guards (chain mismatch, one writer, hash-chain breaks) and range shrinking."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import World, make_world
from indexer_support import Activity, assert_mirror_matches_chain, indexer_env
from sqlalchemy.engine import Engine
from transport_support import RefusingTransport

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.localchain import LocalChain, project_root
from ledger.errors import ChainMismatchError, IndexerLockedError, MirrorIntegrityError
from ledger.mirror.indexer import BatchProgress, Indexer
from ledger.mirror.status import indexer_status
from ledger.store.db import IndexerLock


def index_once(engine: Engine, world: World, **kwargs: Any) -> int:
    with Indexer(engine, world.ledger.client, world.deployment, **kwargs) as indexer:
        indexer.run_once()
        return indexer.checkpoint.block_number


def test_mirror_equals_chain_after_random_activity(db_engine: Engine, world: World) -> None:
    activity = Activity(world, random.Random(11))
    activity.run(40)
    at = index_once(db_engine, world)
    assert at == world.ledger.client.block_number()
    assert assert_mirror_matches_chain(db_engine, world.ledger, world.deployment) == at
    # Incremental: more activity, index again, still equal (and the first batch was not written twice).
    activity.run(25)
    index_once(db_engine, world)
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_amounts_near_uint64_max_are_stored_exactly(db_engine: Engine, world: World) -> None:
    activity = Activity(world, random.Random(3))
    loan_id = activity.open_loan()
    activity.loans[loan_id]["principal"] = 2**64 - 1  # what the contract caps at; open_loan drew less
    world.ledger.value_collateral(
        world.cast.bank,
        loan_id=loan_id,
        collateral_id="0x" + "ab" * 32,
        value=2**64 - 1,
        evidence_hash="0x" + "01" * 32,
    )
    index_once(db_engine, world)
    with db_engine.connect() as conn:
        value = conn.execute(sa.text("SELECT value FROM collateral_valuations")).scalar_one()
    assert int(value) == 2**64 - 1  # raw column, not through the model type: no float rounding anywhere


def test_status_reports_head_indexed_block_lag_and_event_counts(db_engine: Engine, world: World) -> None:
    assert indexer_status(db_engine).initialized is False
    Activity(world, random.Random(5)).run(10)
    at = index_once(db_engine, world)
    world.ledger.record_inspection(
        world.cast.bank, loan_id=next(iter(_loans(db_engine))), kind=1, report_hash="0x" + "02" * 32
    )
    status = indexer_status(db_engine, world.ledger.client)
    assert status.initialized
    assert status.indexed_block == at
    assert status.head == world.ledger.client.block_number() == at + 1
    assert status.lag == 1
    truth = world.ledger.events.decode_all(
        world.ledger.client.get_logs(world.deployment.address, world.deployment.block_number, at)
    )
    expected: dict[str, int] = {}
    for event in truth:
        expected[event.name] = expected.get(event.name, 0) + 1
    assert status.event_counts == dict(sorted(expected.items()))
    assert status.events == len(truth)
    assert status.blocks == at - world.deployment.block_number + 1


def _loans(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT loan_id FROM loans"))]


def test_index_refuses_a_node_with_another_genesis(
    db_engine: Engine, world: World, compiled: CompiledContract
) -> None:
    Activity(world, random.Random(2)).run(3)
    index_once(db_engine, world)
    with LocalChain() as other:
        other_client = ChainClient(other.url)
        other_world = make_world(other_client, compiled)
        with pytest.raises(
            ChainMismatchError, match="this database mirrors chain 31337 with genesis"
        ) as info:
            Indexer(db_engine, other_client, other_world.deployment).open()
        assert "FUNDFLOW_DATABASE_URL" in (info.value.hint or "")
        # The same deployment record on a fresh node: refused before the mirror is touched.
        with pytest.raises(ChainMismatchError, match="genesis"):
            Indexer(db_engine, other_client, world.deployment).open()


def test_index_refuses_a_database_built_for_another_contract(
    db_engine: Engine, world: World, client: ChainClient, compiled: CompiledContract
) -> None:
    index_once(db_engine, world)
    second = make_world(client, compiled)
    with pytest.raises(ChainMismatchError, match="this database mirrors contract"):
        Indexer(db_engine, client, second.deployment).open()


def test_a_broken_hash_chain_stops_the_indexer(db_engine: Engine, world: World) -> None:
    activity = Activity(world, random.Random(9))
    loan_id = activity.open_loan()
    activity.disburse(loan_id)
    index_once(db_engine, world)
    # The mirror loses track of the loan's head (as if an event had been dropped) ...
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE loans SET head = :h WHERE loan_id = :l"), {"h": "0x" + "66" * 32, "l": loan_id}
        )
    activity.disburse(loan_id)
    before = indexer_status(db_engine).indexed_block
    # ... so the next event's head no longer follows: stop, loudly, committing nothing.
    with pytest.raises(MirrorIntegrityError, match=f"hash chain of loan {loan_id} breaks at Disbursed"):
        index_once(db_engine, world)
    assert indexer_status(db_engine).indexed_block == before


def test_a_second_indexer_is_refused_or_waits_for_the_lock(db_engine: Engine, world: World) -> None:
    client = world.ledger.client
    first = Indexer(db_engine, client, world.deployment).open()
    try:
        with pytest.raises(IndexerLockedError, match="another indexer holds the lock"):
            Indexer(db_engine, client, world.deployment).open(wait=False)
        waited = threading.Event()
        acquired = threading.Event()
        second = Indexer(db_engine, client, world.deployment)

        def run_second() -> None:
            second.open(wait=True, on_wait=waited.set)
            acquired.set()

        thread = threading.Thread(target=run_second)
        thread.start()
        assert waited.wait(10), "the second indexer should say it is waiting"
        assert not acquired.is_set()
    finally:
        first.close()
    thread.join(10)
    assert acquired.is_set(), "the second indexer takes over once the first exits"
    Activity(world, random.Random(4)).run(3)
    second.run_once()
    second.close()
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


@pytest.mark.postgres
def test_a_lost_postgres_lock_is_taken_again_or_the_indexer_stops(world: World) -> None:
    """A PostgreSQL advisory lock dies with its connection (server restart, killed backend). The indexer
    checks before each batch: it takes the lock again if it is free, and stops if another indexer took it."""
    from conftest import fresh_postgres_database

    from ledger.store.db import create_db_engine, migrate

    with fresh_postgres_database() as url:
        engine = create_db_engine(url)
        migrate(engine)
        client = world.ledger.client
        activity = Activity(world, random.Random(21))
        indexer = Indexer(engine, client, world.deployment).open()
        try:
            indexer.run_once()

            def kill_lock_backend() -> None:
                lock_conn = indexer.lock._connection  # noqa: SLF001 - the test cuts the lock's own connection
                assert lock_conn is not None
                pid = lock_conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                lock_conn.commit()
                with engine.connect() as admin:
                    # Wait (up to 5 s) until the backend is gone: termination is a signal, and under load the
                    # lock outlived the call long enough for the other indexer's try_acquire to fail.
                    admin.execute(sa.text("SELECT pg_terminate_backend(:p, 5000)"), {"p": pid})
                    admin.commit()

            # Lost and free: the next batch takes the lock again and goes on.
            kill_lock_backend()
            activity.run(3)
            indexer.run_once()
            assert indexer.lock.held
            assert_mirror_matches_chain(engine, world.ledger, world.deployment)

            # Lost and taken by another indexer: this one refuses to write and says why.
            kill_lock_backend()
            other = IndexerLock(engine)
            assert other.try_acquire()
            activity.run(2)
            before = indexer.checkpoint.block_number
            with pytest.raises(IndexerLockedError, match="was lost .* another indexer took it"):
                indexer.run_once()
            assert indexer.checkpoint.block_number == before
            other.release()
        finally:
            indexer.close()
            engine.dispose()


def test_lock_is_released_when_the_holder_dies(db_url: str, tmp_path: Path) -> None:
    """A killed indexer never leaves a stale lock: the advisory lock and flock die with the process."""
    script = (
        "import sys, time\n"
        "from ledger.store.db import IndexerLock, create_db_engine\n"
        "lock = IndexerLock(create_db_engine(sys.argv[1])); lock.acquire(wait=False)\n"
        "print('locked', flush=True); time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, db_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        from ledger.store.db import create_db_engine

        engine = create_db_engine(db_url)
        lock = IndexerLock(engine)
        assert not lock.try_acquire()
        holder.kill()
        holder.wait(10)
        lock.acquire(wait=True, timeout=10, poll=0.1)
        lock.release()
        engine.dispose()
    finally:
        holder.kill()
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()


def test_log_ranges_shrink_when_the_node_refuses_and_grow_again(
    db_engine: Engine, world: World, chain: LocalChain
) -> None:
    Activity(world, random.Random(8)).run(30)
    refusing = RefusingTransport(chain.url, limit=5)  # as Infura and Alchemy refuse too large a range
    client = ChainClient(chain.url, transport=refusing)
    progress: list[BatchProgress] = []
    with Indexer(
        db_engine, client, world.deployment, initial_range=4, on_progress=progress.append
    ) as indexer:
        indexer.run_once()
    assert refusing.refused > 0
    assert max(hi - lo + 1 for lo, hi in refusing.ranges) <= 5
    assert any(hi - lo + 1 == 4 for lo, hi in refusing.ranges)  # grew 4 -> 8, refused, shrank to 4
    assert sum(p.blocks for p in progress) == progress[-1].to_block - world.deployment.block_number + 1
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_ranges_follow_the_event_density_so_batches_stay_small(db_engine: Engine, world: World) -> None:
    """On a dense chain the next range is sized from the density just seen, so after the first batch no
    batch holds much more than max_logs_per_batch events (memory stays flat however dense the chain)."""
    Activity(world, random.Random(9)).run(40)
    progress: list[BatchProgress] = []
    with Indexer(
        db_engine,
        world.ledger.client,
        world.deployment,
        initial_range=8,
        max_logs_per_batch=6,
        on_progress=progress.append,
    ) as indexer:
        indexer.run_once()
    sizes = [p.events for p in progress]
    assert sum(sizes) > 60 and len(sizes) >= 6, sizes
    assert max(sizes[1:]) <= 12, sizes  # the first range knows nothing of the density yet
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


class HeadCountingClient(ChainClient):
    """The real node; counts the indexer's questions for the latest header, and can mine more blocks
    right after one of them (the chain grows while the backfill runs)."""

    def __init__(self, url: str, grow: Any = None) -> None:
        super().__init__(url)
        self.asked = 0
        self.grow = grow

    def get_header(self, block: Any) -> Any:
        header = super().get_header(block)
        if block == "latest":
            self.asked += 1
            if self.asked == 1 and self.grow is not None:
                self.grow()
        return header


def test_a_backfill_asks_for_the_head_once_per_catch_up_and_reaches_a_moving_head(
    db_engine: Engine, world: World, chain: LocalChain
) -> None:
    activity = Activity(world, random.Random(12))
    activity.run(30)
    # The chain grows after the first look at the head: run_once must still end at the new head.
    client = HeadCountingClient(chain.url, grow=lambda: activity.run(10))
    progress: list[BatchProgress] = []
    with Indexer(
        db_engine, client, world.deployment, initial_range=2, max_range=2, on_progress=progress.append
    ) as indexer:
        indexer.run_once()
        at = indexer.checkpoint.block_number
    assert len(progress) >= 10  # many batches of at most 2 blocks
    assert at == world.ledger.client.block_number()  # the blocks mined during the backfill are in
    # Once at the start, once at the first target (the head had moved), once at the new head: not once
    # per batch (each such question waited behind the node's answer to a prefetched range).
    assert client.asked <= 4 < len(progress), (client.asked, len(progress))
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_confirmation_depth_holds_back_the_newest_blocks(db_engine: Engine, world: World) -> None:
    Activity(world, random.Random(6)).run(6)
    at = index_once(db_engine, world, confirmations=3)
    assert at == world.ledger.client.block_number() - 3
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_cli_index_once_then_status(db_url: str, world: World, chain: LocalChain, tmp_path: Path) -> None:
    Activity(world, random.Random(12)).run(12)
    world.deployment.save(tmp_path / "deployment.json")
    env = indexer_env(db_url, chain.url, tmp_path, COLUMNS="200")
    fundflow = (
        [sys.executable, "-m", "fundflow.cli.main"]
        if not (Path(sys.executable).parent / "fundflow").exists()
        else [str(Path(sys.executable).parent / "fundflow")]
    )
    done = subprocess.run(
        [*fundflow, "index", "--once"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    head = world.ledger.client.block_number()
    assert f"at block {head}" in done.stdout
    shown = subprocess.run(
        [*fundflow, "status"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert "lag" in shown.stdout and "LoanOpened" in shown.stdout
    from ledger.store.db import create_db_engine

    engine = create_db_engine(db_url)
    assert_mirror_matches_chain(engine, world.ledger, world.deployment)
    engine.dispose()
    assert project_root().joinpath("ledger", "migrations").is_dir()
