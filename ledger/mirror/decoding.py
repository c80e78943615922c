"""A fetched range of ledger logs into the indexer's rows: in-process, or in a decoding worker process.

`RangeDecoder.decode` checks every log against the header fetched for its block, decodes it, builds its row
for the raw `events` table, and checks the hash chain of every event whose previous head is in the same range
(the first event of each loan in a range is checked by the projections, against the head the database
holds). The indexer runs it in-process while it follows the tip.

During a backfill the indexer's own process is the bottleneck (Python runs one thread at a time), while the
node leaves the second CPU half idle. `DecodeWorker` moves the JSON parsing, decoding, row building and hash
checks to a child process: the indexer hands it the undecoded eth_getLogs answer (bytes, which cost next to
nothing to pass) and gets back rows ready to write, while it writes the previous range. What comes back is
plain tuples in marshal's format, cheaper to load than the logs would have been to parse.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from ledger.errors import ChainError, FundflowError, IndexerError
from ledger.protocol.codes import VoucherEventKind
from ledger.protocol.eventjson import ArgsCodec, json_text
from ledger.protocol.events import DecodedEvent, EventDecoder
from ledger.protocol.hashchain import (
    CHAINED_EVENTS,
    VOUCHER_CHAINED_EVENTS,
    VOUCHER_EVENTS,
    ZERO_HEAD,
    HashChain,
    event_head,
)

__all__ = ["ChainMoved", "DecodeWorker", "DecodedRange", "RangeDecoder", "backfill_gc", "decode_answer"]


class ChainMoved(Exception):
    """The node's chain changed while a range was being fetched (a log names another block than the header
    fetched for its height, or the headers do not follow each other); fetch again."""


@dataclass(frozen=True)
class DecodedRange:
    """The rows of one range: `events` (the ledger's, in chain order) for the projections, `event_rows`
    (every log, driver-ready, in `EVENT_COLUMNS` order) for the raw table, and per event the previous head
    its own head was already checked against (None: the projections check it)."""

    events: list[DecodedEvent]
    event_rows: list[tuple[Any, ...]]
    checked_after: list[str | None]


EVENT_COLUMNS = (
    "chain_id",
    "block_hash",
    "log_index",
    "block_number",
    "transaction_hash",
    "transaction_index",
    "address",
    "name",
    "loan_id",
    "voucher_id",
    "args",
    "topics",
    "data",
)


class RangeDecoder:
    """Decodes the logs of the ledger (its ABI) on one chain, and those of the voucher contract beside it
    when `vouchers` = (its address, its ABI) is given. One decoder knows both contracts' events (their names
    differ); a voucher event is taken only from the voucher contract's address and a ledger event only from
    elsewhere (the indexer asks the node for the two addresses' logs), anything else is "Unknown"."""

    def __init__(
        self,
        abi: Sequence[Mapping[str, Any]],
        chain_id: int,
        vouchers: tuple[str, Sequence[Mapping[str, Any]]] | None = None,
    ) -> None:
        voucher_abi = list(vouchers[1]) if vouchers else []
        self.decoder = EventDecoder([*abi, *voucher_abi])
        self.hash_chain = HashChain(abi)
        self.voucher_chain = HashChain(voucher_abi, kinds=VoucherEventKind) if vouchers else None
        self.vouchers_address = vouchers[0].lower() if vouchers else None
        self.codec = ArgsCodec(self.decoder)
        self.chain_id = chain_id

    def chain_of(self, name: str) -> tuple[HashChain, str, str] | None:
        """For a chained event: (its hash chain, the id argument it extends, the event that starts it)."""
        if name in CHAINED_EVENTS:
            return self.hash_chain, "loanId", "LoanOpened"
        if name in VOUCHER_CHAINED_EVENTS and self.voucher_chain is not None:
            return self.voucher_chain, "voucherId", "VoucherIssued"
        return None

    def decode(
        self, lo: int, hi: int, block_hashes: Sequence[str], logs: Sequence[Mapping[str, Any]]
    ) -> DecodedRange:
        """`logs` of blocks lo..hi, whose headers' hashes are `block_hashes` (in order). Raises ChainMoved
        if a log belongs to another block than its header."""
        events: list[DecodedEvent] = []
        rows: list[tuple[Any, ...]] = []
        checked: list[str | None] = []
        heads: dict[str, str] = {}  # loan or voucher id -> the last head stated in this range
        codec, chain_id, decode = self.codec, self.chain_id, self.decoder.decode
        vouchers_address = self.vouchers_address
        for raw in logs:
            number = int(raw["blockNumber"], 16)
            if raw.get("removed") or not lo <= number <= hi or raw["blockHash"] != block_hashes[number - lo]:
                raise ChainMoved(f"log in block {number} belongs to another block than its header")
            decoded = decode(raw)
            if decoded is not None and (decoded.name in VOUCHER_EVENTS) != (
                vouchers_address is not None and raw["address"].lower() == vouchers_address
            ):
                decoded = None  # an event of one contract claimed by the other's address
            if decoded is None:
                name, args, loan_id, voucher_id = "Unknown", {}, None, None
                tx_index = int(raw.get("transactionIndex", "0x0"), 16)
            else:
                name, args = decoded.name, codec.to_json(decoded.name, decoded.args)
                loan_id = decoded.args.get("loanId")
                voucher_id = decoded.args.get("voucherId")
                tx_index = decoded.transaction_index
                events.append(decoded)
                after: str | None = None
                chain = self.chain_of(name)
                if chain is not None:
                    hash_chain, id_field, first = chain
                    key = str(decoded.args[id_field])  # every chained event names its loan or voucher
                    previous = ZERO_HEAD if name == first else heads.get(key)
                    stated = str(event_head(name, decoded.args)).lower()
                    if (
                        previous is not None
                        and hash_chain.step_log(previous, name, raw["topics"], raw["data"]) == stated
                    ):
                        after = previous
                    heads[key] = stated
                checked.append(after)
            rows.append(
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
                    voucher_id,
                    json_text(args),
                    json_text(raw["topics"]),
                    raw["data"],
                )
            )
        return DecodedRange(events, rows, checked)


# ---------------------------------------------------------------------------------------------- the collector

# CPython's cyclic garbage collector runs after every 700 new container objects and walks the young ones. A
# backfill makes about 30 containers per event (rows, argument dicts, events), none of them in a cycle, so
# that walking is nearly all waste: building the DecodedEvents of a 5,000-log range took 6.6 us per event
# with the default thresholds and 1.0 us without the collector. Reference counting frees all of it anyway;
# the relaxed thresholds below still collect cycles, a hundred times less often.
_BACKFILL_GC_THRESHOLD = (100_000, 50, 100)
_gc_lock = threading.Lock()
_gc_holders = 0
_gc_saved: tuple[int, int, int] | None = None


def backfill_gc(on: bool) -> None:
    """Relax (on) or restore (off) this process's collector thresholds for a backfill. Counted, so that
    indexers sharing a process (tests, `fundflow up`) restore them only when the last one is done."""
    global _gc_holders, _gc_saved
    with _gc_lock:
        if on:
            if _gc_holders == 0:
                _gc_saved = gc.get_threshold()
                gc.set_threshold(*_BACKFILL_GC_THRESHOLD)
            _gc_holders += 1
        elif _gc_holders > 0:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)


# ---------------------------------------------------------------------------------------------- the worker


def _serve(read_fd: int, write_fd: int) -> None:
    """The worker process (`python -m ledger.mirror.decoding READ_FD WRITE_FD`): gets the ABI and chain id,
    then decodes each (lo, hi, block hashes, eth_getLogs answer) it is sent, until the indexer closes the
    pipe or dies (the pipe closes with it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the indexer's to handle; EOF ends this process
    gc.freeze()  # the imported modules: never garbage, never walked again
    backfill_gc(True)  # this process only ever backfills
    inbox = Connection(read_fd, writable=False)
    outbox = Connection(write_fd, readable=False)
    try:
        abi, chain_id, vouchers = inbox.recv()
        decoder = RangeDecoder(abi, chain_id, vouchers)
        outbox.send_bytes(_pack(("ready",)))
        while True:
            lo, hi, hashes, body = inbox.recv()
            outbox.send_bytes(_pack(_answer(decoder, lo, hi, hashes, body)))
    except (EOFError, OSError):
        return


def _answer(decoder: RangeDecoder, lo: int, hi: int, hashes: list[str], body: bytes) -> tuple[Any, ...]:
    try:
        answer = orjson.loads(body)
        if "error" in answer:
            error = answer["error"] or {}
            return ("rpc_error", int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))
        decoded = decoder.decode(lo, hi, hashes, answer["result"] or [])
    except ChainMoved as exc:
        return ("moved", str(exc))
    except orjson.JSONDecodeError:
        return ("error", "ChainError", "the node answered eth_getLogs with something that is not JSON", None)
    except FundflowError as exc:
        return ("error", type(exc).__name__, exc.message, exc.hint)
    except Exception as exc:  # anything else is a bug in decoding: surface it with its type, never hang
        return ("error", type(exc).__name__, str(exc), None)
    events = [
        (e.name, e.args, e.address, e.block_number, e.block_hash, e.transaction_hash, e.log_index)
        + ((e.transaction_index, e.removed, e.raw_topics, e.raw_data) if after is None else ())
        for e, after in zip(decoded.events, decoded.checked_after, strict=True)
    ]
    return ("ok", events, decoded.event_rows, decoded.checked_after)


def _pack(reply: tuple[Any, ...]) -> bytes:
    """A reply to the indexer: marshal when it can carry it (plain tuples, lists, dicts, strings and numbers,
    which is every answer: dumping and loading one costs 2.7 us per event, against 5.3 with pickle), else
    pickle (an error's odd `data`). The pipe is private to the two processes, so marshal is safe here."""
    try:
        return b"m" + marshal.dumps(reply)
    except ValueError:
        return b"p" + pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)


def _unpack(message: bytes) -> Any:
    return marshal.loads(message[1:]) if message[:1] == b"m" else pickle.loads(message[1:])


class DecodeWorkerGone(IndexerError):
    """The decoding worker process exited; the indexer decodes in-process from then on."""


class DecodeWorker:
    """A child process running `RangeDecoder`, started with `python -m ledger.mirror.decoding` (not through
    multiprocessing, which would re-run the caller's main module in the child) and spoken to over two pipes.
    Starts in the background: `ready()` says when it can take work, and until then the indexer decodes
    in-process. One request at a time (a lock serialises callers). It exits when the pipes close: on
    `close()`, or when the indexer's process ends, however it ends."""

    def __init__(
        self,
        abi: list[dict[str, Any]],
        chain_id: int,
        vouchers: tuple[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        to_child, from_parent = os.pipe()
        from_child, to_parent = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "ledger.mirror.decoding", str(to_child), str(to_parent)],
                pass_fds=(to_child, to_parent),
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            os.close(to_child)
            os.close(to_parent)
        self._outbox = Connection(from_parent, readable=False)
        self._inbox = Connection(from_child, writable=False)
        self._ready = False
        self._lock = threading.Lock()
        self.decoded_ranges = 0
        self._outbox.send((abi, chain_id, vouchers))

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process.poll() is None

    def ready(self) -> bool:
        if not self._ready and self._process.poll() is None:
            with self._lock:
                try:
                    if not self._ready and self._inbox.poll():
                        self._ready = _unpack(self._inbox.recv_bytes()) == ("ready",)
                except (EOFError, OSError):
                    return False
        return self._ready and self._process.poll() is None

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the worker to be ready (False: it is not, or it exited)."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() >= deadline or not self.alive():
                return False
            time.sleep(0.005)
        return True

    def decode(self, lo: int, hi: int, hashes: list[str], body: bytes) -> DecodedRange:
        """Decode an eth_getLogs answer. An error answer from the node raises ChainError (RpcError-like,
        with its message) so the caller's range-shrinking sees it as it would in-process."""
        with self._lock:
            try:
                self._outbox.send((lo, hi, hashes, body))
                reply = _unpack(self._inbox.recv_bytes())
                if reply == ("ready",):  # asked before ready() saw it: the answer comes next
                    self._ready = True
                    reply = _unpack(self._inbox.recv_bytes())
            except (EOFError, OSError) as exc:
                self._ready = False
                raise DecodeWorkerGone(
                    f"the decoding worker process exited ({type(exc).__name__})",
                    hint="the indexer carries on decoding in-process",
                ) from exc
        decoded = _decoded(reply, lo, hi)
        self.decoded_ranges += 1
        return decoded

    def close(self) -> None:
        with self._lock:
            self._outbox.close()
            self._inbox.close()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)


def decode_answer(decoder: RangeDecoder, lo: int, hi: int, hashes: list[str], body: bytes) -> DecodedRange:
    """In-process, what the worker makes of an eth_getLogs answer: the decoded range, or the same error."""
    return _decoded(_answer(decoder, lo, hi, hashes, body), lo, hi)


def _decoded(reply: tuple[Any, ...], lo: int, hi: int) -> DecodedRange:
    """The range an `_answer` reply carries, or the error it reports raised as the chain client would."""
    kind = reply[0]
    if kind == "ok":
        _, events, rows, checked = reply
        return DecodedRange([DecodedEvent(*e) for e in events], rows, checked)
    if kind == "moved":
        raise ChainMoved(reply[1])
    if kind == "rpc_error":
        from ledger.chain.client import RpcError

        raise RpcError("eth_getLogs", reply[1], reply[2], reply[3])
    _, name, message, hint = reply
    if name == "ChainError":
        raise ChainError(message, hint=hint)
    raise IndexerError(f"decoding blocks {lo}-{hi} failed: {name}: {message}", hint=hint)


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
