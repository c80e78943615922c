"""The indexer: mirrors every ledger event into SQL and keeps the mirror equal to the canonical chain.

Rules (from Shovel, Ponder and Chainlink's log poller):
- A batch's block headers, raw events, projections and the checkpoint commit in one transaction, and each
  batch starts right after the committed checkpoint, so a replay after a crash writes nothing twice (the
  natural keys would refuse it anyway).
- Every processed header is kept. A batch whose first parent hash differs from the checkpoint, or a
  checkpoint that is no longer on the node's chain, is a reorg: walk back to the newest stored block the
  node still has, delete everything above it, rebuild the affected loans from the raw events that remain,
  in one transaction. Deeper than `max_reorg_depth` stops with `ReorgTooDeepError`.
- `eth_getLogs` ranges double on success and halve when the node refuses; every log must carry the hash of
  the header fetched for its height, else the chain moved under us and the batch is retried.
- Each loan's hash chain is recomputed; a break raises `MirrorIntegrityError` and the indexer stops.
- One indexer per database (`IndexerLock`); the checkpoint pins chain id, genesis, contract and ABI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from ledger.bulk import insert_rows, insert_values
from ledger.chain import BlockHeader, ChainClient, RpcError
from ledger.db import IndexerLock, json_text
from ledger.deploy import Deployment
from ledger.errors import ChainError, ChainMismatchError, IndexerError, ReorgTooDeepError
from ledger.events import DecodedEvent, EventDecoder
from ledger.hashchain import HashChain
from ledger.projections import LOAN_EVENTS, PARTICIPANT_EVENTS, Projector, chunks

__all__ = ["BatchProgress", "Indexer", "StoredCheckpoint"]

log = logging.getLogger(__name__)

_REFUSALS = (
    "too many",
    "more than",
    "limit",
    "exceed",
    "range",
    "timeout",
    "timed out",
    "response size",
    "too large",
)
_HEADER_BATCH = 500
_EVENT_COLUMNS = (
    "chain_id",
    "block_hash",
    "log_index",
    "block_number",
    "transaction_hash",
    "transaction_index",
    "address",
    "name",
    "loan_id",
    "args",
    "topics",
    "data",
)


@dataclass(frozen=True)
class StoredCheckpoint:
    block_number: int
    block_hash: str
    start_block: int


@dataclass(frozen=True)
class BatchProgress:
    """What one committed batch did, for progress bars and logs."""

    from_block: int
    to_block: int
    target: int
    start_block: int
    blocks: int
    events: int


@dataclass(frozen=True)
class _Fetched:
    """One range as the node returned it: logs and the header of every block."""

    lo: int
    hi: int
    logs: list[dict[str, Any]]
    headers: list[BlockHeader]


class _Outage:
    """Backoff state of one run: 0.5 s doubling to 30 s while the node or database stays unreachable."""

    def __init__(self, report: Callable[[BaseException | None, float], None] | None) -> None:
        self.report = report
        self.delay = 0.0

    def failed(self, error: BaseException) -> float:
        self.delay = min(30.0, self.delay * 2 or 0.5)
        if self.report is not None:
            self.report(error, self.delay)
        else:
            log.warning("indexer: %s; retrying in %.1f s", error, self.delay)
        return self.delay

    def passed(self) -> None:
        if self.delay:
            self.delay = 0.0
            if self.report is not None:
                self.report(None, 0.0)
            else:
                log.warning("indexer: node and database reachable again; carrying on")


class _ChainMoved(Exception):
    """The node's chain changed while a batch was being fetched; fetch again."""


def _tables() -> dict[str, sa.Table]:
    return dict(SQLModel.metadata.tables)


class Indexer:
    """Mirrors the ledger at `deployment` on the chain behind `client` into the database behind `engine`.

    Use as a context manager (takes the one-writer lock and checks the checkpoint), then `run_once()` to
    catch up or `run_forever()` to follow the tip.
    """

    def __init__(
        self,
        engine: Engine,
        client: ChainClient,
        deployment: Deployment,
        *,
        confirmations: int = 0,
        max_reorg_depth: int = 64,
        poll_interval: float = 0.1,
        initial_range: int = 16,
        max_range: int = 2048,
        max_logs_per_batch: int = 5_000,
        on_progress: Callable[[BatchProgress], None] | None = None,
        after_batch: Callable[[sa.Connection, list[str]], object] | None = None,
    ) -> None:
        self.engine = engine
        self.client = client
        self.deployment = deployment
        self.confirmations = confirmations
        self.max_reorg_depth = max_reorg_depth
        self.poll_interval = poll_interval
        self.max_range = max_range
        self.max_logs_per_batch = max_logs_per_batch
        self.range = max(1, min(initial_range, max_range))
        self.on_progress = on_progress
        # Called inside each batch's (and each reorg undo's) transaction with the loan ids it touched, so
        # derived state such as monitoring alerts commits or rolls back with the rows it rests on.
        self.after_batch = after_batch
        self.decoder = EventDecoder(deployment.abi)
        self.projector = Projector(HashChain(deployment.abi), self.decoder)
        self.lock = IndexerLock(engine)
        self.chain_id = deployment.chain_id
        self._checkpoint: StoredCheckpoint | None = None
        self._t = _tables()
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: tuple[int, Future[_Fetched]] | None = None
        self._latest: BlockHeader | None = None

    # ------------------------------------------------------------------ lifecycle

    def open(self, *, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Indexer:
        self.lock.acquire(wait=wait, on_wait=on_wait)
        try:
            self._checkpoint = self._prepare_checkpoint()
        except BaseException:
            self.lock.release()
            raise
        return self

    def close(self) -> None:
        self._discard_prefetch()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.lock.release()

    def __enter__(self) -> Indexer:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def checkpoint(self) -> StoredCheckpoint:
        if self._checkpoint is None:
            raise IndexerError("the indexer is not open", hint="use it as a context manager or call open()")
        return self._checkpoint

    def _prepare_checkpoint(self) -> StoredCheckpoint:
        """Create the checkpoint on first run; later, refuse a node, contract or ABI it was not built from."""
        d = self.deployment
        node_chain = self.client.chain_id
        genesis = self.client.get_header(0).hash
        checkpoint = self._t["checkpoint"]
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(checkpoint).where(checkpoint.c.id == 1)).first()
            if row is not None:
                if row.chain_id != node_chain or row.genesis_hash != genesis:
                    raise ChainMismatchError(
                        f"this database mirrors chain {row.chain_id} with genesis {row.genesis_hash}, "
                        f"but the node at {self.client.display_url} is chain {node_chain} "
                        f"with genesis {genesis}",
                        hint="point FUNDFLOW_RPC_URL at the chain the mirror was built from, or give this "
                        "chain its own database (FUNDFLOW_DATABASE_URL)",
                    )
                if row.contract_address.lower() != d.address.lower() or row.abi_hash != d.abi_hash:
                    raise ChainMismatchError(
                        f"this database mirrors contract {row.contract_address} (ABI {row.abi_hash[:10]}), "
                        f"but the deployment record names {d.address} (ABI {d.abi_hash[:10]})",
                        hint="use the deployment the mirror was built from, or a fresh database for this one",
                    )
                return StoredCheckpoint(row.block_number, row.block_hash, row.start_block)
            if d.chain_id != node_chain or d.genesis_hash != genesis:
                raise ChainMismatchError(
                    f"the deployment record is for chain {d.chain_id} with genesis {d.genesis_hash}, "
                    f"but the node at {self.client.display_url} is chain {node_chain} with genesis {genesis}",
                    hint="deploy again (fundflow deploy) or point FUNDFLOW_RPC_URL at the original chain",
                )
            deployed = self.client.get_header(d.block_number)
            if deployed.hash != d.block_hash:
                raise ChainMismatchError(
                    f"block {d.block_number} on the node is {deployed.hash}, not the block {d.block_hash} "
                    "the ledger was deployed in: the deployment was reorganised away",
                    hint="deploy again",
                )
            conn.execute(
                sa.insert(checkpoint).values(
                    id=1,
                    chain_id=node_chain,
                    genesis_hash=genesis,
                    contract_address=d.address,
                    abi_hash=d.abi_hash,
                    start_block=d.block_number,
                    block_number=d.block_number - 1,
                    block_hash=deployed.parent_hash,
                    updated_at=datetime.now(UTC),
                )
            )
            return StoredCheckpoint(d.block_number - 1, deployed.parent_hash, d.block_number)

    # ------------------------------------------------------------------ loops

    def target(self) -> tuple[int, int]:
        """(node head, highest block to index = head - confirmations).

        Asks for the latest header rather than the number alone: when nothing is new, its hash is all the
        canonical check of the checkpoint needs, so an idle poll costs one round trip.
        """
        latest = self.client.get_header("latest")
        self._latest = latest
        return latest.number, latest.number - self.confirmations

    def run_once(
        self,
        stop: threading.Event | None = None,
        *,
        on_outage: Callable[[BaseException | None, float], None] | None = None,
    ) -> int:
        """Catch up with the node (up to head - confirmations) and return the number of blocks indexed.

        Without `on_outage` an unreachable node or database raises; with it, outages are waited out as in
        `run_forever` (until `stop` is set)."""
        stop = stop or threading.Event()
        outage = _Outage(on_outage)
        total = 0
        while not stop.is_set():
            done = self.step() if on_outage is None else self._step_through_outage(stop, outage)
            if done is None:
                continue
            if done < 0:  # caught up
                return total
            total += done
        return total

    def run_forever(
        self,
        stop: threading.Event | None = None,
        *,
        on_outage: Callable[[BaseException | None, float], None] | None = None,
    ) -> None:
        """Follow the tip until `stop` is set; returns only then.

        An outage (the node unreachable or timing out, the database connection lost) is waited out: the
        step is retried after 0.5 s, doubling to 30 s, from the committed checkpoint, so nothing is lost or
        written twice. `on_outage(error, retry_in)` hears of each failed attempt and, with error None, of
        the recovery. Everything else propagates: a different chain, a reorg too deep, a mirror that no
        longer adds up, another writer.
        """
        stop = stop or threading.Event()
        outage = _Outage(on_outage)
        while not stop.is_set():
            done = self._step_through_outage(stop, outage)
            if done is not None and done < 0:
                stop.wait(self.poll_interval)

    def _step_through_outage(self, stop: threading.Event, outage: _Outage) -> int | None:
        """`step()`, or None after an outage was reported and waited for."""
        try:
            if outage.delay:
                # After an outage trust only what committed: a cut-off commit may or may not have landed.
                self._checkpoint = self._prepare_checkpoint()
            done = self.step()
        except (ChainError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if isinstance(exc, ChainMismatchError):
                raise
            self._discard_prefetch()
            stop.wait(outage.failed(exc))
            return None
        outage.passed()
        return done

    def step(self) -> int:
        """One unit of work: a batch, a reorg undo, or a check that nothing changed.

        Returns blocks indexed (0 after a reorg undo or a retry), or -1 when there was nothing to do.
        While a batch is written, the next range is already being fetched (backfill only), so the node's
        work and ours overlap; a prefetched range is used only if it starts right after the checkpoint, and
        its headers are checked against the checkpoint like any other.
        """
        cp = self.checkpoint
        head, target = self.target()
        if target <= cp.block_number:
            if self._checkpoint_is_canonical(head):
                return -1
            self._discard_prefetch()
            self._undo_reorg(head)
            return 0
        lo = cp.block_number + 1
        try:
            fetched = self._take_prefetch(lo) or self._fetch(lo, min(target, cp.block_number + self.range))
            self._adapt_range(fetched)
            if fetched.hi < target:
                self._prefetch(fetched.hi + 1, min(target, fetched.hi + self.range))
            done = self._index_range(cp, fetched, target)
        except _ChainMoved as exc:
            self._discard_prefetch()
            log.info("chain moved while fetching blocks from %d (%s); retrying", lo, exc)
            time.sleep(min(self.poll_interval, 0.05))
            return 0
        if done == 0:
            self._discard_prefetch()
        return done

    def _adapt_range(self, fetched: _Fetched) -> None:
        """Size the next range to hold about `max_logs_per_batch` logs at the density just seen (growing at
        most twofold): batches stay alike in size, and memory stays flat however dense the chain is."""
        count = len(fetched.logs)
        grown = min(self.max_range, self.range * 2)
        if count == 0:
            self.range = grown
        else:
            blocks = fetched.hi - fetched.lo + 1
            self.range = max(1, min(grown, blocks * self.max_logs_per_batch // count))

    def _prefetch(self, lo: int, hi: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="indexer-prefetch")
        self._ahead = (lo, self._pool.submit(self._fetch, lo, hi))

    def _take_prefetch(self, lo: int) -> _Fetched | None:
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != lo:
            return None
        return ahead[1].result()

    def _discard_prefetch(self) -> None:
        self._ahead = None  # a running fetch finishes on its own; its result is simply not used

    # ------------------------------------------------------------------ one batch

    def _fetch_logs(self, lo: int, hi: int) -> tuple[int, list[dict[str, Any]]]:
        """Logs of [lo, hi'], hi' <= hi, shrinking the range while the node refuses it."""
        while True:
            try:
                logs = self.client.get_logs(self.deployment.address, lo, hi)
            except (RpcError, ChainError) as exc:
                text = str(exc).lower()
                refused = isinstance(exc, RpcError) and any(word in text for word in _REFUSALS)
                if not (refused or "timeout" in text) or hi == lo:
                    raise
                self.range = max(1, (hi - lo + 1) // 2)
                hi = lo + self.range - 1
                log.info("node refused eth_getLogs range; shrinking to %d blocks", self.range)
                continue
            return hi, logs

    def _fetch(self, lo: int, hi: int) -> _Fetched:
        """Logs and headers of [lo, hi'] (hi' <= hi). Following the tip block by block, both come in one
        JSON-RPC round trip (a single block's logs are never refused for size)."""
        if hi == lo:
            query = {"address": self.deployment.address, "fromBlock": hex(lo), "toBlock": hex(lo)}
            logs, raw_header = self.client.batch(
                [("eth_getLogs", [query]), ("eth_getBlockByNumber", [hex(lo), False])]
            )
            if raw_header is None:
                raise _ChainMoved(f"block {lo} is not on the node any more")
            return _Fetched(lo, hi, list(logs), [BlockHeader.from_rpc(raw_header)])
        hi, logs = self._fetch_logs(lo, hi)
        headers: list[BlockHeader] = []
        for part in chunks(list(range(lo, hi + 1)), _HEADER_BATCH):
            headers.extend(self.client.get_headers(list(part)))
        return _Fetched(lo, hi, logs, headers)

    def _index_range(self, cp: StoredCheckpoint, fetched: _Fetched, target: int) -> int:
        lo, hi, logs, headers = fetched.lo, fetched.hi, fetched.logs, fetched.headers
        if headers[0].parent_hash != cp.block_hash:
            log.warning(
                "block %d's parent %s is not the indexed block %d (%s): reorg",
                lo,
                headers[0].parent_hash,
                cp.block_number,
                cp.block_hash,
            )
            self._undo_reorg(None)
            return 0
        for previous, header in zip(headers, headers[1:], strict=False):
            if header.parent_hash != previous.hash:
                raise _ChainMoved(f"block {header.number} does not follow block {previous.number}")
        events: list[DecodedEvent] = []
        event_rows: list[tuple[Any, ...]] = []  # in _EVENT_COLUMNS order, driver-ready
        codec, chain_id, decode = self.projector.codec, self.chain_id, self.decoder.decode
        for raw in logs:
            number = int(raw["blockNumber"], 16)
            if raw.get("removed") or not lo <= number <= hi or raw["blockHash"] != headers[number - lo].hash:
                raise _ChainMoved(f"log in block {number} belongs to another block than its header")
            decoded = decode(raw)
            if decoded is None:
                name, args, loan_id = "Unknown", {}, None
                tx_index = int(raw.get("transactionIndex", "0x0"), 16)
            else:
                events.append(decoded)
                name, args = decoded.name, codec.to_json(decoded.name, decoded.args)
                loan_id = decoded.args.get("loanId")
                tx_index = decoded.transaction_index
            event_rows.append(
                (
                    chain_id,
                    raw["blockHash"],
                    int(raw["logIndex"], 16),
                    number,
                    raw["transactionHash"],
                    tx_index,
                    raw["address"],
                    name,
                    loan_id,
                    json_text(args),
                    json_text(raw["topics"]),
                    raw["data"],
                )
            )
        block_rows = [
            {
                "chain_id": self.chain_id,
                "number": h.number,
                "hash": h.hash,
                "parent_hash": h.parent_hash,
                "timestamp": h.timestamp,
            }
            for h in headers
        ]
        t = self._t
        with self._write() as conn:
            moved = conn.execute(
                sa.update(t["checkpoint"])
                .where(t["checkpoint"].c.id == 1, t["checkpoint"].c.block_number == cp.block_number)
                .values(block_number=hi, block_hash=headers[-1].hash, updated_at=datetime.now(UTC))
            )
            if moved.rowcount != 1:
                raise IndexerError(
                    f"the checkpoint is no longer at block {cp.block_number}: "
                    "another process wrote the mirror",
                    hint="run one indexer per database; restart this one",
                )
            insert_rows(conn, t["blocks"], block_rows)
            insert_values(conn, t["events"], _EVENT_COLUMNS, event_rows)
            self.projector.apply(conn, events)
            if self.after_batch is not None:
                touched = {e.args["loanId"] for e in events if "loanId" in e.args}
                self.after_batch(conn, sorted(touched))
        self._checkpoint = StoredCheckpoint(hi, headers[-1].hash, cp.start_block)
        if self.on_progress is not None:
            self.on_progress(BatchProgress(lo, hi, target, cp.start_block, hi - lo + 1, len(event_rows)))
        return hi - lo + 1

    def _write(self) -> AbstractContextManager[sa.Connection]:
        """A transaction that writes the mirror. One writer only: a lock lost with its connection is
        noticed here, before anything is written (`IndexerLock.ensure`)."""
        self.lock.ensure()
        return self.engine.begin()

    # ------------------------------------------------------------------ reorgs

    def _checkpoint_is_canonical(self, head: int) -> bool:
        cp = self.checkpoint
        if cp.block_number < cp.start_block:
            return True  # nothing indexed yet; the first batch checks its parent
        if head < cp.block_number:
            return False
        latest = self._latest
        if latest is not None and latest.number == cp.block_number:
            return latest.hash == cp.block_hash
        return self.client.get_header(cp.block_number).hash == cp.block_hash

    def _undo_reorg(self, head: int | None) -> None:
        """Find the newest stored block the node still has and delete everything above it, in one go."""
        cp = self.checkpoint
        blocks = self._t["blocks"]
        with self.engine.connect() as conn:
            stored = conn.execute(
                sa.select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.chain_id == self.chain_id)
                .order_by(blocks.c.number.desc())
                .limit(self.max_reorg_depth + 1)
            ).all()
        if head is None:
            head = self.client.block_number()
        candidates = [(n, h) for n, h in stored if n <= head]
        node_hashes: dict[int, str] = {}
        for part in chunks([n for n, _ in candidates], _HEADER_BATCH):
            node_hashes.update({hd.number: hd.hash for hd in self.client.get_headers(list(part))})
        ancestor: int | None = None
        for number, stored_hash in candidates:
            if node_hashes[number] == stored_hash:
                ancestor = number
                break
        if ancestor is None:
            reached_start = not stored or stored[-1][0] == cp.start_block
            if len(stored) <= self.max_reorg_depth and reached_start:
                raise ChainMismatchError(
                    f"none of the {len(stored)} indexed blocks is on the node's chain any more, including "
                    "the "
                    f"deployment block {cp.start_block}: the ledger deployment was reorganised away",
                    hint="deploy again and rebuild the mirror into an empty database",
                )
            raise ReorgTooDeepError(
                f"the chain reorganised deeper than max_reorg_depth={self.max_reorg_depth}: none of the "
                f"last {len(stored)} indexed blocks (up to {cp.block_number}, {cp.block_hash}) is on the "
                "node's chain; the indexer stopped and left the mirror as it was"
            )
        depth = cp.block_number - ancestor
        if depth > self.max_reorg_depth:
            raise ReorgTooDeepError(
                f"the chain reorganised {depth} blocks deep (common ancestor {ancestor}), deeper than "
                f"max_reorg_depth={self.max_reorg_depth}; the indexer stopped and left the mirror as it was"
            )
        ancestor_hash = dict(candidates)[ancestor]
        self.rollback_to(ancestor, ancestor_hash)
        log.warning("reorg: undid %d block(s) above %d (%s)", depth, ancestor, ancestor_hash)

    def rollback_to(self, number: int, block_hash: str) -> None:
        """Delete blocks, events and projections above block `number` and rebuild what they touched."""
        cp = self.checkpoint
        t = self._t
        events, blocks = t["events"], t["blocks"]
        with self._write() as conn:
            # Orphaned events are found through their blocks' hashes: the events key's prefix serves that.
            orphaned_blocks = sa.select(blocks.c.hash).where(
                blocks.c.chain_id == self.chain_id, blocks.c.number > number
            )
            orphaned = events.c.chain_id == self.chain_id, events.c.block_hash.in_(orphaned_blocks)
            loan_ids = [
                r[0]
                for r in conn.execute(
                    sa.select(events.c.loan_id).where(*orphaned, events.c.loan_id.is_not(None)).distinct()
                )
            ]
            participants = (
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(events)
                    .where(*orphaned, events.c.name.in_(sorted(PARTICIPANT_EVENTS)))
                ).scalar_one()
                > 0
            )
            conn.execute(sa.delete(events).where(*orphaned))
            conn.execute(
                sa.delete(blocks).where(blocks.c.chain_id == self.chain_id, blocks.c.number > number)
            )
            self.projector.rebuild(conn, loan_ids, participants=participants)
            if self.after_batch is not None:
                self.after_batch(conn, sorted(loan_ids))
            moved = conn.execute(
                sa.update(t["checkpoint"])
                .where(t["checkpoint"].c.id == 1, t["checkpoint"].c.block_number == cp.block_number)
                .values(block_number=number, block_hash=block_hash, updated_at=datetime.now(UTC))
            )
            if moved.rowcount != 1:
                raise IndexerError(
                    "the checkpoint moved during a reorg undo: another process wrote the mirror",
                    hint="run one indexer per database; restart this one",
                )
        self._checkpoint = StoredCheckpoint(number, block_hash, cp.start_block)

    def rebuild_projections(self) -> None:
        """Recompute every projection from the raw events (after an upgrade of the projection code)."""
        events = self._t["events"]
        with self._write() as conn:
            loan_ids = [
                r[0]
                for r in conn.execute(
                    sa.select(events.c.loan_id)
                    .where(events.c.loan_id.is_not(None), events.c.name.in_(sorted(LOAN_EVENTS)))
                    .distinct()
                )
            ]
            self.projector.rebuild(conn, loan_ids, participants=True)
