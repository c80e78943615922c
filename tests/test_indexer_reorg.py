"""Reorgs made on a real Hardhat node (evm_snapshot, activity, evm_revert, different activity), on a node of
this module's own so the session node's history is never rewritten. After each, the mirror must equal the
new canonical chain, projections included."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from conftest import World, fresh_postgres_database, h, make_world
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from indexer_support import Activity, assert_mirror_matches_chain, indexed_block, mine_empty
from sqlalchemy.engine import Engine

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.errors import ReorgTooDeepError
from ledger.mirror.indexer import Indexer
from ledger.mirror.status import indexer_status
from ledger.protocol.codes import ENTERPRISE_ROLE, LENDER_ROLE
from ledger.store.db import create_db_engine, migrate


@pytest.fixture
def fork_world(private_client: ChainClient, compiled: CompiledContract) -> World:
    return make_world(private_client, compiled)


def index(engine: Engine, world: World, **kwargs: object) -> int:
    with Indexer(engine, world.ledger.client, world.deployment, **kwargs) as indexer:  # type: ignore[arg-type]
        indexer.run_once()
        return indexer.checkpoint.block_number


def blocks_of(engine: Engine) -> dict[int, str]:
    with engine.connect() as conn:
        return {n: h for n, h in conn.execute(sa.text("SELECT number, hash FROM blocks"))}


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_reorg_of_depth_is_undone(db_engine: Engine, fork_world: World, depth: int) -> None:
    activity = Activity(fork_world, random.Random(depth))
    activity.run(15)
    index(db_engine, fork_world)
    fork_point = fork_world.ledger.client.block_number()
    snapshot = activity.snapshot()
    activity.run(depth)  # `depth` transactions = `depth` blocks on the soon orphaned branch
    orphaned_tip = index(db_engine, fork_world)
    assert orphaned_tip == fork_point + depth
    orphaned = blocks_of(db_engine)
    activity.revert(snapshot)
    activity.run(depth + 1)  # a different, longer branch
    index(db_engine, fork_world)
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)
    now = blocks_of(db_engine)
    assert all(now[n] == orphaned[n] for n in range(fork_world.deployment.block_number, fork_point + 1))
    assert all(now[n] != orphaned[n] for n in range(fork_point + 1, orphaned_tip + 1))


def test_reorg_in_a_range_without_events(db_engine: Engine, fork_world: World) -> None:
    activity = Activity(fork_world, random.Random(21))
    activity.run(8)
    snapshot = activity.snapshot()
    client = fork_world.ledger.client
    mine_empty(client, 4)
    index(db_engine, fork_world)
    orphaned = blocks_of(db_engine)
    activity.revert(snapshot)
    mine_empty(client, 3)  # a shorter branch of different empty blocks
    activity.run(2)
    index(db_engine, fork_world)
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)
    assert blocks_of(db_engine) != orphaned


def test_reorg_to_a_shorter_branch_is_seen_while_idle(db_engine: Engine, fork_world: World) -> None:
    activity = Activity(fork_world, random.Random(22))
    activity.run(6)
    snapshot = activity.snapshot()
    activity.run(4)
    index(db_engine, fork_world)
    activity.revert(snapshot)
    activity.run(2)  # the new chain is two blocks shorter than what was indexed
    at = index(db_engine, fork_world)
    assert at == fork_world.ledger.client.block_number()
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)


def test_two_reorgs_in_a_row(db_engine: Engine, fork_world: World) -> None:
    activity = Activity(fork_world, random.Random(23))
    activity.run(10)
    with Indexer(db_engine, fork_world.ledger.client, fork_world.deployment) as indexer:
        indexer.run_once()
        first = activity.snapshot()
        activity.run(3)
        indexer.run_once()
        activity.revert(first)
        activity.run(4)
        second = activity.snapshot()
        activity.run(2)
        indexer.run_once()
        assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)
        activity.revert(second)
        activity.run(3)
        indexer.run_once()
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)


def test_reorg_while_the_indexer_is_stopped(db_engine: Engine, fork_world: World) -> None:
    activity = Activity(fork_world, random.Random(24))
    activity.run(10)
    snapshot = activity.snapshot()
    activity.run(5)
    index(db_engine, fork_world)  # the indexer stops here ...
    activity.revert(snapshot)  # ... the chain reorganises while it is down ...
    activity.run(7)
    index(db_engine, fork_world)  # ... and the restarted indexer notices and repairs
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)


def test_reorg_deeper_than_allowed_stops_with_a_clear_error(db_engine: Engine, fork_world: World) -> None:
    activity = Activity(fork_world, random.Random(25))
    activity.run(6)
    snapshot = activity.snapshot()
    activity.run(5)
    at = index(db_engine, fork_world, max_reorg_depth=3)
    before = blocks_of(db_engine)
    activity.revert(snapshot)
    activity.run(6)
    with pytest.raises(ReorgTooDeepError, match="deeper than max_reorg_depth=3") as info:
        index(db_engine, fork_world, max_reorg_depth=3)
    assert "FUNDFLOW_MAX_REORG_DEPTH" in (info.value.hint or "")
    # Nothing was guessed: the mirror is exactly as it was.
    assert indexer_status(db_engine).indexed_block == at
    assert blocks_of(db_engine) == before
    # Allowed a deeper undo, the same database recovers.
    index(db_engine, fork_world, max_reorg_depth=10)
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)


# ---------------------------------------------------------------------------------------------- undo images


def _images(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT block_number, table_name FROM undo_images"))]


def _participant_changes(world: World) -> None:
    """One block each: an account leaves, a role is revoked, a new organisation, account and role arrive
    (none of them an account `Activity` acts with)."""
    ledger, cast = world.ledger, world.cast
    ledger.remove_account(cast.operator, cast.outsider.address)
    ledger.revoke_role(cast.operator, LENDER_ROLE, cast.other_bank.address)
    org = h("org:reorg-only")
    ledger.register_organization(cast.operator, org, h("profile:reorg-only"))
    ledger.add_account(cast.operator, org, cast.stranger.address)
    ledger.grant_role(cast.operator, ENTERPRISE_ROLE, cast.stranger.address)


def test_undo_puts_back_what_orphaned_blocks_changed_without_a_rebuild(
    db_engine: Engine, fork_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows changed in place on the orphaned branch (a loan's totals, lots paid from and confirmed,
    participants) come back from their images; rows it appended go. No loan is replayed."""
    activity = Activity(fork_world, random.Random(31))
    activity.open_loan()
    activity.run(12)
    with Indexer(db_engine, fork_world.ledger.client, fork_world.deployment) as indexer:
        indexer.run_once()
        snapshot = activity.snapshot()
        _participant_changes(fork_world)
        for _ in range(3):
            activity.disburse()
            activity.pay()
            activity.confirm_or_dispute()
        activity.servicing()
        indexer.run_once()
        assert {name for _, name in _images(db_engine)} >= {"", "loans", "lots", "accounts", "role_grants"}
        activity.revert(snapshot)
        activity.run(3)
        with caplog.at_level("WARNING", logger="ledger.mirror.indexer"):
            indexer.run_once()
    assert "reorg: undid" in caplog.text
    assert "rebuilding" not in caplog.text
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)


def test_images_are_kept_for_max_reorg_depth_blocks_even_within_one_batch(
    db_engine: Engine, fork_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """One batch of many blocks keeps images of its newest `max_reorg_depth` only, and a reorg that deep
    is undone from them; older images go as the tip moves on."""
    activity = Activity(fork_world, random.Random(32))
    activity.open_loan()
    activity.run(20)
    snapshot_at = fork_world.ledger.client.block_number() - 3
    with Indexer(db_engine, fork_world.ledger.client, fork_world.deployment, max_reorg_depth=4) as indexer:
        indexer.run_once()
        at = indexer.checkpoint.block_number
        assert {b for b, _ in _images(db_engine)} == set(range(at - 3, at + 1))
        snapshot = activity.snapshot()
        activity.run(4)  # four more blocks, journaled; the older images go
        indexer.run_once()
        assert {b for b, _ in _images(db_engine)} == set(range(at + 1, at + 5))
        activity.revert(snapshot)
        activity.run(5)
        with caplog.at_level("WARNING", logger="ledger.mirror.indexer"):
            indexer.run_once()
    assert snapshot_at < at
    assert "reorg: undid 4 block(s)" in caplog.text
    assert "rebuilding" not in caplog.text
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)


def test_undo_without_images_rebuilds_the_touched_loans(
    db_engine: Engine, fork_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A mirror indexed before migration 0010 has no images: its first reorg undo replays the touched
    loans (and participants) from their raw events, as before, and ends equal to the chain all the same."""
    activity = Activity(fork_world, random.Random(33))
    activity.open_loan()
    activity.run(8)
    with Indexer(db_engine, fork_world.ledger.client, fork_world.deployment) as indexer:
        indexer.run_once()
        snapshot = activity.snapshot()
        _participant_changes(fork_world)
        activity.run(4)
        indexer.run_once()
        with db_engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM undo_images"))
        activity.revert(snapshot)
        activity.run(3)
        with caplog.at_level("WARNING", logger="ledger.mirror.indexer"):
            indexer.run_once()
    assert "rebuilding the touched loans" in caplog.text
    assert_mirror_matches_chain(db_engine, fork_world.ledger, fork_world.deployment)
    assert all(b <= indexed_block(db_engine) for b, _ in _images(db_engine))


# ---------------------------------------------------------------------------------------------- property


Op = tuple[str, int, int]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("act"), st.integers(1, 6), st.just(0)),
        st.tuples(st.just("mine"), st.integers(1, 4), st.just(0)),
        st.tuples(st.just("index"), st.just(0), st.just(0)),
        # fork: snapshot, `a` blocks of activity (maybe indexed), revert, `b` different ones
        st.tuples(st.just("fork"), st.integers(1, 6), st.integers(0, 7)),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        with fresh_postgres_database():  # skips (or fails on CI) when the server is unreachable
            pass
    return str(request.param)


@pytest.fixture
def engine_factory(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Hypothesis runs many examples in one test call: each gets a fresh database from this factory."""
    stack: list[object] = []

    def make() -> Engine:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('prop') / 'mirror.db'}"
        else:
            manager = fresh_postgres_database()
            url = manager.__enter__()
            stack.append(manager)
        engine = create_db_engine(url)
        migrate(engine)
        stack.append(engine)
        return engine

    yield make
    for item in reversed(stack):
        if isinstance(item, Engine):
            item.dispose()
        else:
            item.__exit__(None, None, None)  # type: ignore[attr-defined]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=ops, seed=st.integers(0, 2**32 - 1))
def test_mirror_equals_chain_after_random_mining_and_forking(
    engine_factory: object,
    private_client: ChainClient,
    compiled: CompiledContract,
    script: list[Op],
    seed: int,
) -> None:
    world = make_world(private_client, compiled)
    engine = engine_factory()  # type: ignore[operator]
    activity = Activity(world, random.Random(seed))
    activity.open_loan()
    rng = random.Random(seed)
    with Indexer(
        engine, private_client, world.deployment, max_reorg_depth=64, initial_range=rng.choice([1, 4, 64])
    ) as ix:
        for op, a, b in script:
            if op == "act":
                activity.run(a)
            elif op == "mine":
                mine_empty(private_client, a)
            elif op == "index":
                ix.run_once()
            else:
                snapshot = activity.snapshot()
                activity.run(a)
                if rng.random() < 0.7:
                    ix.run_once()
                activity.revert(snapshot)
                activity.run(b)
                if rng.random() < 0.5:
                    mine_empty(private_client, 1)
        ix.run_once()
    assert_mirror_matches_chain(engine, world.ledger, world.deployment)
