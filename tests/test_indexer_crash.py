"""Crash harness: the indexer runs as its own process (`python -m fundflow.cli.index index`) and is SIGKILLed
at random moments, at least 20 times, while ledger activity goes on; each time it is restarted. At the end:
no gap, no duplicate, projections equal to ground truth."""

from __future__ import annotations

import contextlib
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import make_world
from indexer_support import Activity, assert_mirror_matches_chain, indexed_block, indexer_env

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.store.db import create_db_engine

KILLS = 20


@pytest.mark.slow
def test_indexer_survives_sigkill_at_random_moments(
    db_url: str, private_client: ChainClient, compiled: CompiledContract, tmp_path: Path
) -> None:
    world = make_world(private_client, compiled)
    world.deployment.save(tmp_path / "deployment.json")
    # The decoding worker process starts at the first range with a log, so kills also hit the indexer
    # while it runs; the worker must never outlive it.
    env = indexer_env(
        db_url,
        private_client.rpc_url,
        tmp_path,
        FUNDFLOW_POLL_INTERVAL="0.02",
        FUNDFLOW_DECODE_WORKER_MIN_LOGS="1",
    )
    command = [sys.executable, "-m", "fundflow.cli.index", "index"]
    rng = random.Random(1234)
    activity = Activity(world, random.Random(99))
    stop = threading.Event()
    failures: list[BaseException] = []

    def keep_busy() -> None:
        try:
            while not stop.wait(0.05):  # steady, bounded activity: the final check reads every lot
                activity.random_step()
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    busy = threading.Thread(target=keep_busy)
    busy.start()
    engine = create_db_engine(db_url)
    progress: list[int] = []
    workers: set[int] = set()
    log = open(tmp_path / "indexer.log", "ab")  # noqa: SIM115
    try:
        for kill in range(KILLS):
            if kill % 4 == 1:
                time.sleep(1.0)  # a longer backlog: the restart backfills it with its decoding worker
            before = indexed_block(engine)
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=tmp_path)
            if kill % 4 == 3:
                time.sleep(rng.uniform(0.1, 2.0))  # during start-up: imports, migrations, checkpoint
            elif kill % 4 == 1:
                # While the decoding worker runs: it starts with the backfill and stops once caught up, which
                # a fast indexer reaches well inside the random delay used for the other kills.
                deadline = time.monotonic() + 30
                while not _children(process.pid) and time.monotonic() < deadline:
                    assert process.poll() is None, f"the indexer exited by itself; see {tmp_path}/indexer.log"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.02))
            else:
                # Once it is indexing (the checkpoint moved), at a random moment of its batches.
                deadline = time.monotonic() + 30
                while indexed_block(engine) == before and time.monotonic() < deadline:
                    assert process.poll() is None, f"the indexer exited by itself; see {tmp_path}/indexer.log"
                    time.sleep(0.02)
                time.sleep(rng.uniform(0.0, 0.5))
            assert process.poll() is None, f"the indexer exited by itself; see {tmp_path / 'indexer.log'}"
            children = _children(process.pid)
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            workers.update(children)
            progress.append(indexed_block(engine))
    finally:
        stop.set()
        busy.join(30)
        log.close()
    assert not failures, failures
    # Every decoding worker of a killed indexer saw its pipe close and exited.
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert workers, "no kill hit an indexer while its decoding worker ran"
    assert not [pid for pid in workers if _alive(pid)], "a decoding worker outlived its indexer"
    assert progress[-1] > progress[0], f"the indexer made no progress between kills: {progress}"
    # A final clean run catches up and exits; the result must be exact.
    done = subprocess.run(
        [*command, "--once"], env=env, capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    at = assert_mirror_matches_chain(engine, world.ledger, world.deployment)
    assert at == private_client.block_number()
    with engine.connect() as conn:
        events = conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one()
        distinct = conn.execute(
            sa.text("SELECT COUNT(*) FROM (SELECT DISTINCT transaction_hash, log_index FROM events) AS d")
        ).scalar_one()
        numbers = [r[0] for r in conn.execute(sa.text("SELECT number FROM blocks ORDER BY number"))]
    assert events == distinct  # no duplicate
    assert numbers == list(range(world.deployment.block_number, at + 1))  # no gap
    engine.dispose()


def _children(pid: int) -> set[int]:
    """The child processes of `pid` (the decoding worker, once started)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):  # the task ended meanwhile
            out.update(int(c) for c in (task / "children").read_text().split())
    return out


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
