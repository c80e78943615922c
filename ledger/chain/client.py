"""The chain client: the one place that talks JSON-RPC to an EVM node.

Works with any EVM JSON-RPC endpoint (Hardhat, anvil, Geth, a Besu/QBFT consortium chain): it signs locally
(ledger/chain/signing.py: eth-account's bytes from libsecp256k1), hands out nonces so concurrent senders
never collide, waits for receipts, and turns a revert into a `ContractRevertError` carrying the decoded custom
error. It speaks raw JSON-RPC over one
keep-alive connection per thread (orjson both ways) rather than web3's provider and formatting layers, which
cost more than the round trip on a local node: `http.client` for a plain http:// node, a `requests` session
for anything else (TLS, credentials in the URL, a proxy from the environment).
"""

from __future__ import annotations

import http.client
import itertools
import select
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from ledger.chain.signing import sign_transaction
from ledger.config import mask_url
from ledger.errors import ChainError, ContractRevertError, FundflowError, ValidationError
from ledger.protocol.events import DecodedEvent, EventDecoder

__all__ = [
    "BlockHeader",
    "ChainClient",
    "ErrorDecoder",
    "RpcError",
    "SendJournal",
    "SignedTx",
    "TX_GAS_CAP",
    "TxResult",
    "journaled",
]

TX_GAS_CAP = 2**24
"""EIP-7825 (Osaka): no transaction may ask for more gas than 2^24 = 16,777,216. Hardhat 2.29 enforces it;
anvil can; a chain without it still has its block gas limit, and the lower of the two applies."""

_ERROR_STRING = "0x08c379a0"  # Error(string)
_PANIC = "0x4e487b71"  # Panic(uint256)
_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


class RpcError(ChainError):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(
            f"{method} failed: {message} (code {code})",
            hint="check the request against the node's JSON-RPC documentation",
        )
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    state_root: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rpc(cls, block: Mapping[str, Any]) -> BlockHeader:
        return cls(
            number=int(block["number"], 16),
            hash=block["hash"],
            parent_hash=block["parentHash"],
            timestamp=int(block["timestamp"], 16),
            state_root=block.get("stateRoot", ""),
            raw=block,
        )


@dataclass(frozen=True)
class TxResult:
    """A mined transaction: where it landed, what it cost and the ledger events it emitted."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    events: list[DecodedEvent]
    contract_address: str | None = None

    def event(self, name: str) -> DecodedEvent:
        """The single event called `name`; raises if there is not exactly one."""
        found = [e for e in self.events if e.name == name]
        if len(found) != 1:
            raise ValidationError(
                f"transaction {self.tx_hash} emitted {len(found)} {name} events, expected one",
                hint="use .events to see everything it emitted",
            )
        return found[0]


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction: its hash and the raw bytes (0x-hex) that can be broadcast again unchanged."""

    tx_hash: str
    raw: str


class SendJournal:
    """Signed transactions of one logical write, recorded before each is broadcast.

    `on_signed` is called with every transaction signed so far *before* the newest one leaves the process,
    so a caller can store them (the API keeps them in its idempotency row). A retry builds a journal with
    the `recorded` ones: `ChainClient.send` then looks each up, rebroadcasts the same raw bytes if the node
    lost it, and signs a new one only when the recorded one can provably never land (its nonce was used by
    another transaction).
    """

    def __init__(
        self,
        recorded: Sequence[SignedTx] = (),
        on_signed: Callable[[list[SignedTx]], None] | None = None,
    ) -> None:
        self.recorded = list(recorded)
        self.signed: list[SignedTx] = []
        self._on_signed = on_signed

    def next_recorded(self) -> SignedTx | None:
        i = len(self.signed)
        return self.recorded[i] if i < len(self.recorded) else None

    def keep(self, tx: SignedTx) -> None:
        """The recorded transaction stands (mined, pending or rebroadcast)."""
        self.signed.append(tx)

    def add(self, tx: SignedTx) -> None:
        """A newly signed transaction, about to be broadcast: stored first."""
        self.signed.append(tx)
        if self._on_signed is not None:
            self._on_signed(list(self.signed))


_JOURNAL: ContextVar[SendJournal | None] = ContextVar("fundflow_send_journal", default=None)


@contextmanager
def journaled(journal: SendJournal | None) -> Iterator[SendJournal | None]:
    """Every `ChainClient.send` in this context (same thread or task) goes through `journal`."""
    token = _JOURNAL.set(journal)
    try:
        yield journal
    finally:
        _JOURNAL.reset(token)


class ErrorDecoder:
    """Maps revert data to the custom error's name and named arguments, using the contract ABI."""

    def __init__(self, abi: Iterable[Mapping[str, Any]] = ()) -> None:
        self._errors: dict[str, tuple[str, list[str], list[str]]] = {}
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [str(i["type"]) for i in entry["inputs"]]
            names = [str(i["name"]) for i in entry["inputs"]]
            selector = "0x" + keccak(text=f"{entry['name']}({','.join(types)})")[:4].hex()
            self._errors[selector] = (str(entry["name"]), names, types)

    def decode(self, data: str | None, *, fallback: str = "") -> ContractRevertError:
        if not data or data == "0x":
            return ContractRevertError(
                "Reverted",
                {},
                message=f"transaction reverted without a reason{': ' + fallback if fallback else ''}",
            )
        data = data.lower()
        selector, body = data[:10], bytes.fromhex(data[10:])
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], body)
            return ContractRevertError(
                "Error", {"reason": reason}, selector=selector, message=f"reverted: {reason}"
            )
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], body)
            what = _PANIC_REASONS.get(code, "panic")
            return ContractRevertError(
                "Panic", {"code": code}, selector=selector, message=f"panic 0x{code:02x}: {what}"
            )
        known = self._errors.get(selector)
        if known is None:
            return ContractRevertError(
                "Unknown", {"data": data}, selector=selector, message=f"unknown revert data {data}"
            )
        name, names, types = known
        values = abi_decode(types, body)
        args = {n: _plain(t, v) for n, t, v in zip(names, types, values, strict=True)}
        return ContractRevertError(name, args, selector=selector)


def _plain(abi_type: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if abi_type == "address":
        return to_checksum_address(value)
    return value


def _revert_data(error: Mapping[str, Any]) -> str | None:
    """Nodes put revert data in different places: Hardhat nests it, anvil/Geth/Besu give a hex string."""
    data = error.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, Mapping):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return inner
    return None


def _looks_like_revert(error: Mapping[str, Any]) -> bool:
    message = str(error.get("message", "")).lower()
    return (
        _revert_data(error) is not None
        or "revert" in message
        or "execution reverted" in message
        or error.get("code") == 3
    )


class _KeepAlive:
    """One kept-alive HTTP/1.1 connection per thread to a plain http:// node, with `http.client` alone:
    `requests` and urllib3 spend more per call than a local node takes to answer. As urllib3 does, a
    connection the node closed while idle (Node.js servers drop them after 5 s) is noticed before reuse and
    replaced; nothing is ever sent twice. Connections of threads that ended are closed when the next one
    opens, and all of them when the client goes away."""

    def __init__(self, host: str, port: int, path: str, timeout: float) -> None:
        self._host, self._port, self._path, self._timeout = host, port, path, timeout
        self._conns: dict[threading.Thread, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._conns, self._lock)

    def post(self, body: bytes) -> tuple[int, str, bytes]:
        """(status, reason, body); OSError or http.client.HTTPException when the node cannot be reached."""
        thread = threading.current_thread()
        conn = self._conns.get(thread)
        if conn is not None and _dropped(conn):
            self._drop(thread, conn)
            conn = None
        if conn is None:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            with self._lock:
                for other in [t for t in self._conns if not t.is_alive()]:
                    self._conns.pop(other).close()
                self._conns[thread] = conn
        try:
            conn.request("POST", self._path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            if response.chunked and response.fp is not None:
                data = _read_chunked(response.fp)
                response.close()  # the body is consumed; the connection stays open for the next call
            else:
                data = response.read()
        except BaseException:
            self._drop(thread, conn)
            raise
        if response.will_close:
            self._drop(thread, conn)
        return response.status, response.reason, data

    def _drop(self, thread: threading.Thread, conn: http.client.HTTPConnection) -> None:
        conn.close()
        with self._lock:
            self._conns.pop(thread, None)


def _read_chunked(fp: Any) -> bytes:
    """A chunked body, read in large slices. Node.js sends one chunk per write (about 500 bytes, one per log
    in an eth_getLogs answer); http.client decodes chunks one readline at a time, which cost more CPU than
    parsing the JSON. Raises http.client.IncompleteRead if the stream ends early."""
    buf = bytearray()
    parts: list[bytes] = []
    pos = 0

    def more() -> None:
        data = fp.read1(1 << 20)
        if not data:
            raise http.client.IncompleteRead(b"".join(parts))
        buf.extend(data)

    while True:
        eol = buf.find(b"\r\n", pos)
        while eol < 0:
            more()
            eol = buf.find(b"\r\n", pos)
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise http.client.HTTPException(f"bad chunk size line {bytes(buf[pos:eol])[:40]!r}") from exc
        start = eol + 2
        if size == 0:
            # Trailers (none from Node.js), then the empty line that ends the body.
            while True:
                eol = buf.find(b"\r\n", start)
                while eol < 0:
                    more()
                    eol = buf.find(b"\r\n", start)
                if eol == start:
                    return b"".join(parts)
                start = eol + 2
        end = start + size
        while len(buf) < end + 2:
            more()
        parts.append(bytes(buf[start:end]))
        pos = end + 2
        if pos > 1 << 20:  # drop what was consumed, so the buffer holds at most one read's worth more
            del buf[:pos]
            pos = 0


def _close_all(conns: dict[threading.Thread, http.client.HTTPConnection], lock: threading.Lock) -> None:
    with lock:
        for conn in conns.values():
            conn.close()
        conns.clear()


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """True if an idle kept-alive connection was closed by the other side (readable means EOF here)."""
    if conn.sock is None:
        return True
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(0))


def _keep_alive_for(rpc_url: str, proxies: Mapping[str, str], timeout: float) -> _KeepAlive | None:
    url = urlsplit(rpc_url)
    if url.scheme != "http" or url.username or url.password or proxies or not url.hostname:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return _KeepAlive(url.hostname, url.port or 80, path, timeout)


class _Nonces:
    """Hands out nonces per sender. Reserving under a lock means concurrent threads never get the same nonce;
    a send that fails resyncs from the node's pending count."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, address: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(address, threading.Lock())

    def take(self, address: str, fetch: Any) -> int:
        if address not in self._next:
            self._next[address] = int(fetch(address))
        nonce = self._next[address]
        self._next[address] = nonce + 1
        return nonce

    def forget(self, address: str) -> None:
        self._next.pop(address, None)


class ChainClient:
    """A connection to one EVM JSON-RPC endpoint."""

    def __init__(
        self,
        rpc_url: str,
        *,
        request_timeout: float = 10.0,
        tx_timeout: float = 60.0,
        fee_cache_seconds: float = 2.0,
    ) -> None:
        self.rpc_url = rpc_url
        self.display_url = mask_url(rpc_url)  # what messages and logs show: no key or password
        self.tx_timeout = tx_timeout
        self._timeout = request_timeout
        self._session = requests.Session()
        # Proxies from the environment are resolved once here: requests would otherwise re-read the
        # environment on every call, which costs more than a local node's answer.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(rpc_url))
        self._session.headers.update({"Content-Type": "application/json"})
        # One kept-alive connection per concurrent caller (the API runs writes on up to 40 threads).
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._keep_alive = _keep_alive_for(rpc_url, self._session.proxies, request_timeout)
        self._ids = itertools.count(1)
        self._nonces = _Nonces()
        self._chain_id: int | None = None
        self._fee_cache_seconds = fee_cache_seconds
        self._fees: tuple[float, dict[str, int]] | None = None
        self._max_tx_gas: int | None = None

    # ------------------------------------------------------------------ raw JSON-RPC

    def _post(self, payload: Any) -> Any:
        """POST one JSON-RPC payload and parse the answer; any failure is a ChainError naming the node."""
        answer = self._post_bytes(payload)
        try:
            return orjson.loads(answer)
        except orjson.JSONDecodeError as exc:
            raise ChainError(
                f"{self.display_url} answered something that is not JSON", hint="check the URL"
            ) from exc

    def _post_bytes(self, payload: Any) -> bytes:
        """POST one JSON-RPC payload; the answer's body, unparsed."""
        body = orjson.dumps(payload)
        try:
            if self._keep_alive is not None:
                status, reason, answer = self._keep_alive.post(body)
                if status >= 400:
                    raise ChainError(
                        f"request to {self.display_url} failed: {status} {reason}", hint="check the node"
                    )
                return answer
            response = self._session.post(self.rpc_url, data=body, timeout=self._timeout)
            response.raise_for_status()
            return bytes(response.content)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise self._unreachable(exc) from exc
        except requests.RequestException as exc:  # before OSError: requests' errors are OSErrors too
            raise ChainError(
                f"request to {self.display_url} failed: {str(exc).replace(self.rpc_url, self.display_url)}",
                hint="check the node",
            ) from exc
        except (OSError, http.client.HTTPException) as exc:  # the keep-alive connection's failures
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> ChainError:
        return ChainError(
            f"cannot reach the chain node at {self.display_url} ({type(exc).__name__})",
            hint="start it with `fundflow chain`, or point FUNDFLOW_RPC_URL at a running node",
        )

    def _request(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "method": method, "params": list(params), "id": next(self._ids)}

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One JSON-RPC call. Connection problems raise ChainError; an error answer raises RpcError."""
        response = self._post(self._request(method, params))
        if "error" in response:
            err = response["error"]
            raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return response.get("result")

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Many calls in one HTTP round trip; results in call order."""
        if not calls:
            return []
        first = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        responses = self._post(
            [
                {"jsonrpc": "2.0", "method": m, "params": list(p), "id": first + i}
                for i, (m, p) in enumerate(calls)
            ]
        )
        if isinstance(responses, Mapping):  # some nodes answer a whole batch with one error object
            whole: Any = responses.get("error") or {}
            raise RpcError("batch", int(whole.get("code", 0)), str(whole.get("message", "batch refused")))
        ordered: list[Any] = sorted(responses, key=lambda r: int(r["id"]))
        out = []
        for (method, _), response in zip(calls, ordered, strict=True):
            if "error" in response:
                err = response["error"]
                raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
            out.append(response.get("result"))
        return out

    # ------------------------------------------------------------------ reads

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc("eth_chainId"), 16)
        return self._chain_id

    @property
    def max_tx_gas(self) -> int:
        """The most gas one transaction may ask for here: the lower of the EIP-7825 cap and the block gas
        limit (read once; consortium chains set it in genesis)."""
        if self._max_tx_gas is None:
            latest = self.rpc("eth_getBlockByNumber", ["latest", False])
            self._max_tx_gas = min(TX_GAS_CAP, int(latest["gasLimit"], 16))
        return self._max_tx_gas

    def is_reachable(self) -> bool:
        try:
            self.rpc("eth_chainId")
        except ChainError:
            return False
        return True

    def block_number(self) -> int:
        return int(self.rpc("eth_blockNumber"), 16)

    def get_header(self, block: int | str = "latest") -> BlockHeader:
        tag = hex(block) if isinstance(block, int) else block
        raw = self.rpc("eth_getBlockByNumber", [tag, False])
        if raw is None:
            raise ChainError(
                f"block {block} does not exist on {self.display_url}", hint="the chain is shorter"
            )
        return BlockHeader.from_rpc(raw)

    def get_header_by_hash(self, block_hash: str) -> BlockHeader | None:
        raw = self.rpc("eth_getBlockByHash", [block_hash, False])
        return BlockHeader.from_rpc(raw) if raw else None

    def get_block(self, block: int | str = "latest") -> dict[str, Any]:
        """The block exactly as the node returned it (every header field verbatim, transaction hashes only):
        what a proof bundle needs to re-hash the header."""
        tag = hex(block) if isinstance(block, int) else block
        raw = self.rpc("eth_getBlockByNumber", [tag, False])
        if raw is None:
            raise ChainError(
                f"block {block} does not exist on {self.display_url}", hint="the chain is shorter"
            )
        return dict(raw)

    def get_proof(self, address: str, slots: Sequence[str], block: int | str = "latest") -> dict[str, Any]:
        """eth_getProof (EIP-1186): the account proof of `address` and storage proofs of `slots` (32-byte
        0x-hex keys) against the state root of `block`."""
        tag = hex(block) if isinstance(block, int) else block
        return dict(self.rpc("eth_getProof", [address, list(slots), tag]))

    def get_headers(self, numbers: Sequence[int]) -> list[BlockHeader]:
        """Headers for many blocks in one round trip."""
        raws = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        out = []
        for n, raw in zip(numbers, raws, strict=True):
            if raw is None:
                raise ChainError(
                    f"block {n} does not exist on {self.display_url}", hint="the chain is shorter"
                )
            out.append(BlockHeader.from_rpc(raw))
        return out

    def get_logs(
        self,
        address: str | Sequence[str],
        from_block: int,
        to_block: int,
        topics: Sequence[Any] | None = None,
        block_hash: str | None = None,
    ) -> list[dict[str, Any]]:
        """Raw logs (hex strings). With `block_hash`, the logs of exactly that block (reorg-safe)."""
        query: dict[str, Any] = {"address": address}
        if block_hash is not None:
            query["blockHash"] = block_hash
        else:
            query["fromBlock"] = hex(from_block)
            query["toBlock"] = hex(to_block)
        if topics:
            query["topics"] = list(topics)
        return list(self.rpc("eth_getLogs", [query]))

    def get_logs_answer(self, address: str, from_block: int, to_block: int) -> bytes:
        """The node's eth_getLogs answer for [from_block, to_block] as it came, unparsed (the indexer's
        decoding worker parses it): `{"result": [...]}` or `{"error": {...}}`."""
        query = {"address": address, "fromBlock": hex(from_block), "toBlock": hex(to_block)}
        return self._post_bytes(self._request("eth_getLogs", [query]))

    def get_balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", [address, "latest"]), 16)

    def get_code(self, address: str, block: int | str = "latest") -> str:
        tag = hex(block) if isinstance(block, int) else block
        return str(self.rpc("eth_getCode", [address, tag]))

    def call(
        self,
        to: str,
        data: str,
        *,
        block: int | str = "latest",
        sender: str | None = None,
        errors: ErrorDecoder | None = None,
    ) -> bytes:
        """eth_call; a revert raises ContractRevertError decoded with `errors`."""
        tag = hex(block) if isinstance(block, int) else block
        tx: dict[str, Any] = {"to": to, "data": data}
        if sender:
            tx["from"] = sender
        try:
            result = self.rpc("eth_call", [tx, tag])
        except RpcError as exc:
            raise self._as_revert(exc, errors) from exc
        return bytes.fromhex(str(result)[2:])

    # ------------------------------------------------------------------ writes

    def send(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        *,
        gas: int | None = None,
        value: int = 0,
        errors: ErrorDecoder | None = None,
    ) -> str:
        """Estimate, sign and send one transaction; returns its hash without waiting.

        Without `gas`, a transaction that would revert is refused here, with the decoded error, before it
        costs anything. With `gas` (a computed bound, see `LedgerContract.pay_batch`) nothing is estimated:
        a revert is mined as a failed transaction (it uses its nonce) and surfaces decoded all the same,
        answered on the send by Hardhat, or by `result_of` on anvil, Geth and Besu. Inside `journaled(...)`,
        each signed transaction is recorded before it is broadcast, and a recorded one is resumed (looked
        up, rebroadcast unchanged if lost) instead of signing a new one.
        """
        journal = _JOURNAL.get()
        recorded = journal.next_recorded() if journal is not None else None
        if journal is not None and recorded is not None and self._resume(recorded, errors):
            journal.keep(recorded)
            return recorded.tx_hash
        gas = self._gas_for(account, to, data, gas, value, errors)
        fees = self._fee_fields()
        with self._nonces.lock(account.address):
            signed = self._sign_next(account, to, data, gas, value, fees)
            if journal is not None:
                try:
                    journal.add(signed)
                except BaseException:
                    self._nonces.forget(account.address)  # the nonce was taken but never used
                    raise
            try:
                tx_hash = self.rpc("eth_sendRawTransaction", [signed.raw])
            except ChainError as exc:
                # The nonce may or may not have been consumed; ask the node next time.
                self._nonces.forget(account.address)
                if isinstance(exc, RpcError):
                    # With `gas` given nothing was estimated: Hardhat executes (and mines) the transaction
                    # and answers the send itself with the revert data.
                    revert = self._as_revert(exc, errors)
                    if revert is not exc:
                        raise revert from exc
                raise
        return str(tx_hash)

    def sign(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        *,
        gas: int | None = None,
        value: int = 0,
        errors: ErrorDecoder | None = None,
    ) -> SignedTx:
        """Estimate and sign without sending: store the result, then `broadcast` it (as often as needed).
        The nonce is reserved; a signed transaction that is never broadcast leaves a gap until
        `forget_nonce`."""
        gas = self._gas_for(account, to, data, gas, value, errors)
        fees = self._fee_fields()
        with self._nonces.lock(account.address):
            return self._sign_next(account, to, data, gas, value, fees)

    def _gas_for(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        gas: int | None,
        value: int,
        errors: ErrorDecoder | None,
    ) -> int:
        """`gas` if given; else the node's estimate plus a margin. A transaction that would revert is
        refused here, with its decoded error, before anything is signed."""
        if gas is not None:
            return gas
        tx: dict[str, Any] = {"from": account.address, "data": data, "value": hex(value)}
        if to is not None:
            tx["to"] = to
        try:
            estimate = int(self.rpc("eth_estimateGas", [tx]), 16)
        except RpcError as exc:
            raise self._as_revert(exc, errors) from exc
        return estimate + estimate // 5 + 10_000

    def _sign_next(
        self, account: LocalAccount, to: str | None, data: str, gas: int, value: int, fees: dict[str, int]
    ) -> SignedTx:
        """Sign with the account's next nonce; the caller holds the account's nonce lock."""
        fields: dict[str, Any] = {
            "data": data,
            "value": value,
            "gas": gas,
            "nonce": self._nonces.take(account.address, self._pending_nonce),
            "chainId": self.chain_id,
            **fees,
        }
        if to is not None:
            fields["to"] = to
        tx_hash, raw = sign_transaction(account.key, fields)
        return SignedTx("0x" + tx_hash.hex(), "0x" + raw.hex())

    def forget_nonce(self, address: str) -> None:
        """Ask the node for `address`'s next nonce next time (after a send whose fate is unknown)."""
        self._nonces.forget(address)

    def broadcast(self, signed: SignedTx, errors: ErrorDecoder | None = None) -> str:
        """Send already signed bytes; a node that already has them is fine (same hash, same transaction)."""
        try:
            self.rpc("eth_sendRawTransaction", [signed.raw])
        except RpcError as exc:
            message = exc.rpc_message.lower()
            if "already known" in message or "known transaction" in message:
                return signed.tx_hash
            revert = self._as_revert(exc, errors)
            if revert is not exc:
                raise revert from exc
            raise
        return signed.tx_hash

    def transaction_known(self, tx_hash: str) -> bool:
        """True if the node has the transaction, mined or pending."""
        if self.rpc("eth_getTransactionReceipt", [tx_hash]) is not None:
            return True
        return self.rpc("eth_getTransactionByHash", [tx_hash]) is not None

    def _resume(self, recorded: SignedTx, errors: ErrorDecoder | None) -> bool:
        """Make sure a recorded transaction reaches the chain; False if it never can (sign a new one)."""
        if self.transaction_known(recorded.tx_hash):
            return True
        try:
            self.broadcast(recorded, errors)
        except RpcError as exc:
            if "nonce" in exc.rpc_message.lower() and not self.transaction_known(recorded.tx_hash):
                # Its nonce went to another transaction, so this one can never be mined.
                return False
            raise
        return True

    def wait_for_receipt(self, tx_hash: str, timeout: float | None = None) -> dict[str, Any]:
        """Poll from 1 ms, each wait a quarter longer (up to 0.25 s), so a receipt is seen at most about a
        quarter of the time it took late. anvil answers the send before it mines (within a millisecond or
        two on a young chain, 30-40 ms on a long one): a first wait of 5 ms doubling each time doubled the
        time of a single write there."""
        deadline = time.monotonic() + (self.tx_timeout if timeout is None else timeout)
        delay = 0.001
        while True:
            receipt = self.rpc("eth_getTransactionReceipt", [tx_hash])
            if receipt is not None and receipt.get("blockNumber") is not None:
                return dict(receipt)
            if time.monotonic() > deadline:
                raise ChainError(
                    f"transaction {tx_hash} was not mined within {timeout or self.tx_timeout:.0f} s",
                    hint="check that the node is mining (or raise FUNDFLOW_TX_TIMEOUT); the transaction may "
                    "still land, so look it up before sending it again",
                )
            time.sleep(delay)
            delay = min(delay * 1.25, 0.25)

    def transact(
        self,
        account: LocalAccount,
        to: str | None,
        data: str,
        *,
        gas: int | None = None,
        value: int = 0,
        errors: ErrorDecoder | None = None,
        events: EventDecoder | None = None,
    ) -> TxResult:
        """Send, wait, and check: a transaction mined as failed raises its decoded revert."""
        tx_hash = self.send(account, to, data, gas=gas, value=value, errors=errors)
        return self.result_of(tx_hash, account=account, to=to, data=data, errors=errors, events=events)

    def result_of(
        self,
        tx_hash: str,
        *,
        account: LocalAccount | None = None,
        to: str | None = None,
        data: str | None = None,
        errors: ErrorDecoder | None = None,
        events: EventDecoder | None = None,
    ) -> TxResult:
        receipt = self.wait_for_receipt(tx_hash)
        block_number = int(receipt["blockNumber"], 16)
        if int(receipt.get("status", "0x1"), 16) != 1:
            # Mined but failed (state changed between estimate and inclusion): replay it on the state the
            # block left, which holds whatever got in first, to learn why.
            if account is not None and data is not None and to is not None:
                try:
                    self.call(to, data, block=block_number, sender=account.address, errors=errors)
                except ContractRevertError as exc:
                    raise exc from None
            gas_used = int(receipt["gasUsed"], 16)
            sent = self.rpc("eth_getTransactionByHash", [tx_hash]) or {}
            if sent.get("gas") is not None and gas_used >= int(sent["gas"], 16):
                raise ContractRevertError(
                    "OutOfGas",
                    {"gasLimit": gas_used},
                    message=f"transaction {tx_hash} ran out of gas in block {block_number} "
                    f"(limit {gas_used:,}); nothing it did was recorded",
                    hint="the gas limit given for it was too low; if Fundflow computed it, report this",
                )
            raise ContractRevertError(
                "Reverted", {}, message=f"transaction {tx_hash} failed in block {block_number}"
            )
        decoded = events.decode_all(receipt.get("logs", [])) if events is not None else []
        address = receipt.get("contractAddress")
        return TxResult(
            tx_hash=str(receipt["transactionHash"]),
            block_number=block_number,
            block_hash=str(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"], 16),
            events=decoded,
            contract_address=to_checksum_address(address) if address else None,
        )

    # ------------------------------------------------------------------ helpers

    def _pending_nonce(self, address: str) -> int:
        return int(self.rpc("eth_getTransactionCount", [address, "pending"]), 16)

    def _fee_fields(self) -> dict[str, int]:
        """EIP-1559 fees where the chain has a base fee, legacy gas price otherwise; zero on free-gas chains
        (common on consortium networks). Cached briefly: asking per transaction halves throughput."""
        now = time.monotonic()
        if self._fees is not None and now - self._fees[0] < self._fee_cache_seconds:
            return self._fees[1]
        latest = self.rpc("eth_getBlockByNumber", ["latest", False])
        base_fee = latest.get("baseFeePerGas")
        fees: dict[str, int]
        if base_fee is None:
            fees = {"gasPrice": int(self.rpc("eth_gasPrice"), 16)}
        else:
            base = int(base_fee, 16)
            tip = 0
            if base > 0:  # a zero base fee means a free-gas chain: nothing to tip
                try:
                    tip = int(self.rpc("eth_maxPriorityFeePerGas"), 16)
                except RpcError:
                    tip = 1_000_000_000
            fees = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
        self._fees = (now, fees)
        return fees

    def _as_revert(self, exc: RpcError, errors: ErrorDecoder | None) -> FundflowError:
        error = {"code": exc.code, "message": exc.rpc_message, "data": exc.data}
        if not _looks_like_revert(error):
            return exc
        return (errors or ErrorDecoder()).decode(_revert_data(error), fallback=exc.rpc_message)
