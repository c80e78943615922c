"""The indexer's decoding worker process (`ledger.mirror.decoding`), on SQLite and PostgreSQL, real node:
what it decodes mirrors the chain exactly, a hash-chain break inside a range stops the indexer as it does
in-process, a refused range shrinks, and the indexer carries on in-process when the worker dies."""

from __future__ import annotations

import gc
import logging
import os
import random
from decimal import Decimal
from typing import Any

import pytest
from conftest import World
from indexer_support import Activity, assert_mirror_matches_chain
from sqlalchemy.engine import Engine
from transport_support import RefusingTransport, RewritingTransport

from ledger.chain.client import ChainClient
from ledger.errors import MirrorIntegrityError
from ledger.mirror.decoding import _pack, _unpack, backfill_gc
from ledger.mirror.indexer import Indexer
from ledger.protocol.events import EventDecoder


def _indexer(engine: Engine, world: World, client: ChainClient | None = None, **kwargs: Any) -> Indexer:
    return Indexer(engine, client or world.ledger.client, world.deployment, initial_range=4, **kwargs)


def test_ranges_decoded_by_the_worker_mirror_the_chain_exactly(db_engine: Engine, world: World) -> None:
    activity = Activity(world, random.Random(21))
    activity.run(40)
    thresholds = gc.get_threshold()
    with _indexer(db_engine, world) as indexer:
        indexer.start_decode_worker(wait=True)
        worker = indexer._worker
        assert worker is not None
        assert gc.get_threshold()[0] > thresholds[0]  # the collector relaxed for the backfill
        indexer.run_once()
        assert worker.decoded_ranges >= 3  # ranges of 4+ blocks went through it
        # Caught up, the indexer follows the tip in-process: the worker's process has ended, and the
        # collector runs as it did before.
        assert indexer._worker is None
        assert gc.get_threshold() == thresholds
        with pytest.raises(ProcessLookupError):
            os.kill(worker.pid, 0)
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)
    # More activity, indexed in-process this time: the two paths write the same mirror.
    activity.run(15)
    with _indexer(db_engine, world, decode_worker_min_logs=0) as indexer:
        indexer.run_once()
        assert indexer._worker is None
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_the_worker_starts_when_the_next_range_should_be_dense(db_engine: Engine, world: World) -> None:
    """The first range of a backfill is small; the worker starts once the next one, at the density just
    seen, should hold decode_worker_min_logs logs, and ranges fetched before it is ready are decoded here."""
    Activity(world, random.Random(31)).run(40)
    client = world.ledger.client
    first = world.deployment.block_number
    seen = len(client.get_logs(world.deployment.address, first, first + 1))
    assert seen > 0
    with _indexer(db_engine, world, decode_worker_min_logs=seen + 1) as indexer:
        indexer.range = 2  # first range: 2 blocks, `seen` logs, fewer than the threshold...
        indexer.step()  # ...but the next range is twice the size
        assert indexer._worker is not None
        indexer.run_once()
        assert indexer._worker is None  # caught up: stopped
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_backfill_gc_is_counted_and_restores_the_thresholds() -> None:
    before = gc.get_threshold()
    backfill_gc(True)
    backfill_gc(True)  # a second indexer in the same process
    relaxed = gc.get_threshold()
    assert relaxed[0] >= 100 * before[0]
    backfill_gc(False)
    assert gc.get_threshold() == relaxed  # the other one still backfills
    backfill_gc(False)
    assert gc.get_threshold() == before
    backfill_gc(False)  # one too many changes nothing
    assert gc.get_threshold() == before


def test_worker_replies_round_trip_through_marshal_or_else_pickle() -> None:
    rows = [(31337, "0x" + "ab" * 32, 3, 7, "Paid", None, '{"amount":"5"}')]
    events = [("Paid", {"amount": 2**64 - 1, "declaredUse": True}, "0xAbC", 7, "0x01", "0x02", 3)]
    reply = ("ok", events, rows, [None])
    assert _pack(reply)[:1] == b"m"
    assert _unpack(_pack(reply)) == reply
    odd = ("rpc_error", -32000, "bad", Decimal("1.5"))  # not a type marshal carries
    assert _pack(odd)[:1] == b"p"
    assert _unpack(_pack(odd)) == odd


class Tamperer:
    """Changes the `amount` word of the last Disbursed log of an eth_getLogs answer by one, whichever way the
    logs are asked for: as the indexer's in-process path parses them, or as the worker is handed them."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        spec = EventDecoder(abi).by_name["Disbursed"]
        self.topic0 = spec.topic0
        indexed, self.word = spec.positions["amount"]
        assert not indexed

    def __call__(self, logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        hits = [log for log in logs if log["topics"][0] == self.topic0]
        if len(hits) >= 2:  # not the loan's first event in the range: that one is checked another way
            log = hits[-1]
            start = 2 + 64 * self.word
            word = int(log["data"][start : start + 64], 16) ^ 1
            log["data"] = log["data"][:start] + f"{word:064x}" + log["data"][start + 64 :]
        return logs


@pytest.mark.parametrize("through_worker", [True, False], ids=["worker", "in-process"])
def test_a_hash_chain_break_inside_a_range_stops_the_indexer_either_way(
    db_engine: Engine, world: World, through_worker: bool
) -> None:
    activity = Activity(world, random.Random(5))
    loan_id = activity.open_loan()
    activity.disburse(loan_id)
    activity.disburse(loan_id)
    activity.disburse(loan_id)
    url = world.ledger.client.rpc_url
    client = ChainClient(url, transport=RewritingTransport(url, Tamperer(world.deployment.abi)))
    indexer = Indexer(db_engine, client, world.deployment, initial_range=64)
    with indexer:
        if through_worker:
            indexer.start_decode_worker(wait=True)
        with pytest.raises(MirrorIntegrityError, match=f"hash chain of loan {loan_id} breaks at Disbursed"):
            indexer.run_once()
        if through_worker:
            assert indexer._worker is not None and indexer._worker.decoded_ranges == 1
        assert indexer.checkpoint.block_number < world.deployment.block_number  # nothing committed


def test_a_range_the_node_refuses_shrinks_through_the_worker(db_engine: Engine, world: World) -> None:
    Activity(world, random.Random(8)).run(30)
    url = world.ledger.client.rpc_url
    refusing = RefusingTransport(url, limit=5)  # as Infura and Alchemy refuse too large a range
    with _indexer(db_engine, world, ChainClient(url, transport=refusing)) as indexer:
        indexer.start_decode_worker(wait=True)
        worker = indexer._worker
        indexer.run_once()
        assert worker is not None and worker.decoded_ranges > 0
    assert refusing.refused > 0
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_the_indexer_carries_on_in_process_when_the_worker_dies(
    db_engine: Engine, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    Activity(world, random.Random(13)).run(30)
    with _indexer(db_engine, world) as indexer:
        indexer.start_decode_worker(wait=True)
        assert indexer._worker is not None
        indexer._worker._process.kill()
        indexer._worker._process.wait(10)
        with caplog.at_level(logging.WARNING, logger="ledger.mirror.indexer"):
            indexer.run_once()
        assert indexer._worker is None
    assert "decoding worker process exited" in caplog.text
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)
