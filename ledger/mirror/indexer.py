"""The indexer: mirrors every ledger event into SQL and keeps the mirror equal to the canonical chain.

Rules (from Shovel, Ponder and Chainlink's log poller):
- A batch's block headers, raw events, projections and the checkpoint commit in one transaction, and each
  batch starts right after the committed checkpoint, so a replay after a crash writes nothing twice (the
  natural keys would refuse it anyway).
- Every processed header is kept. A batch whose first parent hash differs from the checkpoint, or a
  checkpoint that is no longer on the node's chain, is a reorg: walk back to the newest stored block the
  node still has, delete everything above it and undo the projections' changes from the images kept for
  the newest blocks (`Projector.undo`: the cost of the orphaned blocks, not of the loans), in one
  transaction. Deeper than `max_reorg_depth` stops with `ReorgTooDeepError`.
- `eth_getLogs` ranges double on success and halve when the node refuses; every log must carry the hash of
  the header fetched for its height, else the chain moved under us and the batch is retried.
- Each loan's hash chain is recomputed; a break raises `MirrorIntegrityError` and the indexer stops.
- One indexer per database (`IndexerLock`); the checkpoint pins chain id, genesis, contract and ABI.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
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

from ledger.chain.client import BlockHeader, ChainClient, RpcError
from ledger.chain.deploy import Deployment
from ledger.errors import ChainError, ChainMismatchError, IndexerError, ReorgTooDeepError
from ledger.mirror.bulk import insert_rows, insert_values
from ledger.mirror.decoding import (
    EVENT_COLUMNS,
    ChainMoved,
    DecodedRange,
    DecodeWorker,
    DecodeWorkerGone,
    RangeDecoder,
    backfill_gc,
    decode_answer,
)
from ledger.mirror.projections import LOAN_EVENTS, PARTICIPANT_EVENTS, Projector, chunks
from ledger.mirror.read import event_from_row
from ledger.protocol.events import DecodedEvent
from ledger.protocol.hashchain import VOUCHER_EVENTS
from ledger.store.db import IndexerLock

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
_EVENT_ROW = (
    "name",
    "args",
    "address",
    "block_number",
    "block_hash",
    "transaction_hash",
    "log_index",
    "transaction_index",
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
    """One range as the node returned it: the header of every block, and the logs, still to decode or
    already decoded by the worker process."""

    lo: int
    hi: int
    headers: list[BlockHeader]
    logs: list[dict[str, Any]] | None = None
    decoded: DecodedRange | None = None

    @property
    def count(self) -> int:
        return len(self.decoded.event_rows) if self.decoded is not None else len(self.logs or ())


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
        decode_worker_min_logs: int = 2_000,
        on_progress: Callable[[BatchProgress], None] | None = None,
        after_batch: Callable[[sa.Connection, list[str], list[DecodedEvent]], object] | None = None,
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
        # A range holding this many logs starts the decoding worker process for the rest of the backfill
        # (`ledger.mirror.decoding`); 0 never starts it. Following the tip always decodes in-process.
        self.decode_worker_min_logs = decode_worker_min_logs
        self.on_progress = on_progress
        # Called inside each batch's (and each reorg undo's) transaction with the loan ids it touched and the
        # loans' events it applied (or removed), so derived state such as monitoring alerts commits or rolls
        # back with the rows it rests on, and costs what changed.
        self.after_batch = after_batch
        # One decoder and hash chain serve both the decoding of ranges and the projections' rebuilds.
        # The voucher contract beside the ledger (issue 22), when deployed: its logs come in the same
        # eth_getLogs (an address list), so batches, reorg undo and crash safety cover it unchanged.
        self._vouchers = (
            (deployment.vouchers_address, deployment.vouchers_abi)
            if deployment.vouchers_address and deployment.vouchers_abi
            else None
        )
        self._address: str | list[str] = (
            deployment.addresses if self._vouchers is not None else deployment.address
        )
        self.range_decoder = RangeDecoder(deployment.abi, deployment.chain_id, self._vouchers)
        self.projector = Projector(
            self.range_decoder.hash_chain, self.range_decoder.decoder, self.range_decoder.voucher_chain
        )
        self._worker: DecodeWorker | None = None
        self.lock = IndexerLock(engine)
        self.chain_id = deployment.chain_id
        self._checkpoint: StoredCheckpoint | None = None
        self._t = _tables()
        self._pool: ThreadPoolExecutor | None = None
        self._ahead: deque[tuple[int, int, Future[_Fetched]]] = deque()  # (lo, hi asked, fetch), in order
        self._latest: BlockHeader | None = None
        self._target: tuple[int, int] | None = None  # the last (head, target) asked for

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
        self._stop_worker()
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
        if self._ahead and self._target is not None and cp.block_number < self._target[1]:
            # Mid-backfill, towards a head seen moments ago: asking again would wait behind the node's
            # answer to a prefetched range (it serves one request at a time). Each range's first header is
            # still checked against the checkpoint, so a reorg is noticed all the same.
            head, target = self._target
        else:
            head, target = self._target = self.target()
        if target <= cp.block_number:
            if self._checkpoint_is_canonical(head):
                self._stop_worker()  # caught up: following the tip decodes in-process
                return -1
            self._discard_prefetch()
            self._undo_reorg(head)
            return 0
        lo = cp.block_number + 1
        try:
            fetched = self._take_prefetch(lo) or self._fetch(lo, min(target, cp.block_number + self.range))
            self._adapt_range(fetched)
            if fetched.hi < target:
                self._start_worker(fetched)
                self._prefetch(fetched.hi, target)
            done = self._index_range(cp, fetched, target)
        except ChainMoved as exc:
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
        count = fetched.count
        grown = min(self.max_range, self.range * 2)
        if count == 0:
            self.range = grown
        else:
            blocks = fetched.hi - fetched.lo + 1
            self.range = max(1, min(grown, blocks * self.max_logs_per_batch // count))

    def _start_worker(self, fetched: _Fetched) -> None:
        """Start the decoding worker once a backfill shows ranges dense enough to be worth it: the next
        range, sized by `_adapt_range`, is expected to hold `decode_worker_min_logs` logs at the density
        just seen. (Expected, not seen: the first range of a backfill is small, and waiting for a dense one
        to be decoded in-process before starting the worker cost a tenth of a 100,000-event backfill.)"""
        threshold = self.decode_worker_min_logs
        expected = fetched.count * self.range / (fetched.hi - fetched.lo + 1)
        if self._worker is None and threshold and max(fetched.count, expected) >= threshold:
            self.start_decode_worker()

    def start_decode_worker(self, *, wait: bool = False) -> None:
        """Start the decoding worker process (`ledger.mirror.decoding`) now. It starts in the background
        (~0.1 s); a range fetched before it is ready is decoded in-process. `wait` blocks until it is ready
        (at most 30 s)."""
        if self._worker is None:
            self._worker = DecodeWorker(self.deployment.abi, self.deployment.chain_id, self._vouchers)
            backfill_gc(True)  # until the worker stops: the backfill is over then
        if wait and not self._worker.wait_ready(timeout=30):
            raise IndexerError("the decoding worker process did not start within 30 s")

    def _stop_worker(self) -> None:
        """Stop the decoding worker (the indexer's own thread: it also drops the ranges fetched for it)."""
        if self._worker is not None:
            self._discard_prefetch()
            self._close_worker()

    def _drop_worker(self, why: str) -> None:
        """The worker died (noticed by a fetching thread, which leaves the queue of ranges alone)."""
        log.warning("indexer: %s; decoding in-process", why)
        self._close_worker()

    def _close_worker(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.close()
            backfill_gc(False)

    def _prefetch(self, after: int, target: int) -> None:
        """Keep the ranges after block `after` (up to `target`) being fetched ahead: one, or three while the
        decoding worker runs. Two fetching threads: the node serves one range while the worker decodes the
        one before, and the third is asked of the node the moment a thread is free, so the node never
        waits for the indexer to take a range (measured: 5% faster than two ahead)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="indexer-prefetch")
        depth = 3 if self._worker is not None else 1
        lo = self._ahead[-1][1] + 1 if self._ahead else after + 1
        while len(self._ahead) < depth and lo <= target:
            hi = min(target, lo + self.range - 1)
            self._ahead.append((lo, hi, self._pool.submit(self._fetch, lo, hi)))
            lo = hi + 1

    def _take_prefetch(self, lo: int) -> _Fetched | None:
        if not self._ahead or self._ahead[0][0] != lo:
            self._discard_prefetch()
            return None
        fetched = self._ahead.popleft()[2].result()
        if self._ahead and self._ahead[0][0] != fetched.hi + 1:  # the node made that range shorter
            self._discard_prefetch()
        return fetched

    def _discard_prefetch(self) -> None:
        self._ahead.clear()  # running fetches finish on their own; their results are simply not used

    # ------------------------------------------------------------------ one batch

    def _shrink(self, exc: ChainError, lo: int, hi: int) -> int:
        """After eth_getLogs failed for [lo, hi]: the new, halved upper end if the node refused the range as
        too big (or timed out), else re-raise."""
        text = str(exc).lower()
        refused = isinstance(exc, RpcError) and any(word in text for word in _REFUSALS)
        if not (refused or "timeout" in text) or hi == lo:
            raise exc
        self.range = max(1, (hi - lo + 1) // 2)
        log.info("node refused eth_getLogs range; shrinking to %d blocks", self.range)
        return lo + self.range - 1

    def _fetch_logs(self, lo: int, hi: int) -> tuple[int, list[dict[str, Any]]]:
        """Logs of [lo, hi'], hi' <= hi, shrinking the range while the node refuses it."""
        while True:
            try:
                return hi, self.client.get_logs(self._address, lo, hi)
            except ChainError as exc:
                hi = self._shrink(exc, lo, hi)

    def _logs_of_block(self, header: BlockHeader) -> list[dict[str, Any]]:
        """The ledger's logs in exactly the block `header` names; `ChainMoved` if the node lost it."""
        try:
            return self.client.get_logs(self._address, header.number, header.number, block_hash=header.hash)
        except RpcError:
            if self.client.get_header_by_hash(header.hash) is None:
                raise ChainMoved(
                    f"block {header.number} ({header.hash}) is not on the node any more"
                ) from None
            raise

    def _fetch_decoded(self, worker: DecodeWorker, lo: int, hi: int) -> _Fetched:
        """`_fetch` through the decoding worker: the node's answer goes to it unparsed, the rows come back."""
        headers = self._headers(lo, hi)
        while True:
            try:
                answer = self.client.get_logs_answer(self._address, lo, hi)
                hashes = [h.hash for h in headers[: hi - lo + 1]]
                if worker.ready():
                    decoded = worker.decode(lo, hi, hashes, answer)
                else:  # still starting (it takes about 0.1 s): this range is decoded here
                    decoded = decode_answer(self.range_decoder, lo, hi, hashes, answer)
            except ChainError as exc:
                hi = self._shrink(exc, lo, hi)
                continue
            return _Fetched(lo, hi, headers[: hi - lo + 1], decoded=decoded)

    def _headers(self, lo: int, hi: int) -> list[BlockHeader]:
        headers: list[BlockHeader] = []
        for part in chunks(list(range(lo, hi + 1)), _HEADER_BATCH):
            headers.extend(self.client.get_headers(list(part)))
        return headers

    def _fetch(self, lo: int, hi: int) -> _Fetched:
        """Logs and headers of [lo, hi'] (hi' <= hi). A range's headers are always asked before its logs,
        in a separate request: a JSON-RPC batch is not atomic (Hardhat answers its calls concurrently), and
        logs read from a block that was replaced before its header was read get committed under the new
        header; when the old block had no ledger logs nothing can notice, and the new block's events are
        lost for good (issue 24). Headers first, a replaced block shows in the logs (they name another
        block hash, `ChainMoved`) or in the next parent-hash check (the stale header is undone as a reorg).
        Following the tip, the one block's logs are asked by its hash (EIP-234), so they are exactly that
        header's logs or an error. (Headers first also keeps them out of the queue behind the other fetching
        thread's eth_getLogs.)"""
        if hi == lo:
            raw_header = self.client.rpc("eth_getBlockByNumber", [hex(lo), False])
            if raw_header is None:
                raise ChainMoved(f"block {lo} is not on the node any more")
            header = BlockHeader.from_rpc(raw_header)
            return _Fetched(lo, hi, [header], logs=self._logs_of_block(header))
        worker = self._worker
        if worker is not None and not worker.alive():
            self._drop_worker("the decoding worker process exited")
        elif worker is not None:
            try:
                return self._fetch_decoded(worker, lo, hi)
            except DecodeWorkerGone as exc:
                self._drop_worker(str(exc))
        headers = self._headers(lo, hi)
        hi, logs = self._fetch_logs(lo, hi)
        return _Fetched(lo, hi, headers[: hi - lo + 1], logs=logs)

    def _index_range(self, cp: StoredCheckpoint, fetched: _Fetched, target: int) -> int:
        lo, hi, headers = fetched.lo, fetched.hi, fetched.headers
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
                raise ChainMoved(f"block {header.number} does not follow block {previous.number}")
        decoded = fetched.decoded
        if decoded is None:
            decoded = self.range_decoder.decode(lo, hi, [h.hash for h in headers], fetched.logs or [])
        events, event_rows = decoded.events, decoded.event_rows
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
            insert_values(conn, t["events"], EVENT_COLUMNS, event_rows)
            # Images of what the newest blocks change in place, for a reorg undo (`Projector.undo`); older
            # ones can no longer be undone (`max_reorg_depth`), so they go.
            keep = hi - self.max_reorg_depth
            journal = range(max(lo, keep + 1), hi + 1)
            self.projector.apply(conn, events, decoded.checked_after, journal=journal)
            images = t["undo_images"]
            conn.execute(sa.delete(images).where(images.c.block_number <= keep))
            if self.after_batch is not None:
                # the loans' events and the voucher contract's (the monitor's voucher rules read those)
                mine = [e for e in events if "loanId" in e.args or "voucherId" in e.args]
                self.after_batch(conn, sorted({e.args["loanId"] for e in mine if "loanId" in e.args}), mine)
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
        """Delete blocks, events and projections above block `number` and undo what they changed."""
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
            vouchers = (
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(events)
                    .where(*orphaned, events.c.name.in_(sorted(VOUCHER_EVENTS)))
                ).scalar_one()
                > 0
            )
            removed: list[DecodedEvent] = []
            if self.after_batch is not None:  # the loans' orphaned events, for what the monitor re-checks
                removed = [
                    event_from_row(row, self.projector.codec)
                    for row in conn.execute(
                        sa.select(*(events.c[c] for c in _EVENT_ROW))
                        .where(
                            *orphaned, sa.or_(events.c.loan_id.is_not(None), events.c.voucher_id.is_not(None))
                        )
                        .order_by(events.c.block_number, events.c.log_index)
                    )
                ]
            conn.execute(sa.delete(events).where(*orphaned))
            conn.execute(
                sa.delete(blocks).where(blocks.c.chain_id == self.chain_id, blocks.c.number > number)
            )
            # What the orphaned blocks changed, put back from their images; replaying the touched loans'
            # whole history only when the images do not reach back (indexed before migration 0010).
            if not self.projector.undo(conn, number, cp.block_number, loan_ids):
                log.warning(
                    "reorg: no undo images back to block %d; rebuilding the touched loans", number + 1
                )
                self.projector.rebuild(conn, loan_ids, participants=participants, vouchers=vouchers)
                images = t["undo_images"]
                conn.execute(sa.delete(images).where(images.c.block_number > number))
            if self.after_batch is not None:
                self.after_batch(conn, sorted(loan_ids), removed)
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
            self.projector.rebuild(conn, loan_ids, participants=True, vouchers=True)
            conn.execute(
                sa.delete(self._t["undo_images"])
            )  # images of the old code's rows: not to be restored
