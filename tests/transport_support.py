"""Transports for tests: the real HTTP transport to the real node, wrapped to watch or to fail on purpose.

A test hands one to `ChainClient(url, transport=...)` instead of patching the client: everything else (the
client, the node, the API on top) runs for real.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from typing import Any

import orjson

from ledger.chain.transport import Transport, http_transport, unreachable
from ledger.config import mask_url

__all__ = [
    "FlakyTransport",
    "RacingTransport",
    "RecordingTransport",
    "RefusingTransport",
    "RewritingTransport",
]


class RecordingTransport:
    """Records the JSON-RPC method of every request (each call of a batch) it carries to the node."""

    def __init__(self, rpc_url: str) -> None:
        self.inner: Transport = http_transport(rpc_url)
        self.methods: list[str] = []

    def post(self, body: bytes) -> bytes:
        request = orjson.loads(body)
        self.methods.extend(r["method"] for r in (request if isinstance(request, list) else [request]))
        return self.inner.post(body)

    def close(self) -> None:
        self.inner.close()


class FlakyTransport:
    """Forwards to the node; `fail_next_send` is "drop" (forward it, then lose the answer: the node has the
    transaction, the caller never learns) or "swallow" (lose it before it reaches the node) for the next
    eth_sendRawTransaction, which then fails as a connection the node dropped does; then it behaves again."""

    def __init__(self, rpc_url: str, *, timeout: float = 5.0) -> None:
        self.inner: Transport = http_transport(rpc_url, timeout=timeout)
        self.display_url = mask_url(rpc_url)
        self.fail_next_send: str | None = None
        self.sends_forwarded = 0
        self._lock = threading.Lock()

    def post(self, body: bytes) -> bytes:
        is_send = b"eth_sendRawTransaction" in body
        with self._lock:
            mode = self.fail_next_send if is_send else None
            if mode is not None:
                self.fail_next_send = None
        if mode == "swallow":
            raise unreachable(self.display_url, http.client.RemoteDisconnected("swallowed"))
        answer = self.inner.post(body)
        if is_send:
            with self._lock:
                self.sends_forwarded += 1
        if mode == "drop":
            raise unreachable(self.display_url, http.client.RemoteDisconnected("answer dropped"))
        return answer

    def close(self) -> None:
        self.inner.close()


def _single_get_logs(body: bytes) -> dict[str, Any] | None:
    """The request if `body` is one eth_getLogs over a block range (not a batch, not by block hash)."""
    request = orjson.loads(body)
    if (
        isinstance(request, dict)
        and request["method"] == "eth_getLogs"
        and "fromBlock" in request["params"][0]
    ):
        return dict(request)
    return None


class RefusingTransport:
    """Forwards to the node, except an eth_getLogs over more than `limit` blocks, which it answers with the
    error Infura and Alchemy send. `ranges` lists the ranges it let through, `refused` counts the others."""

    def __init__(self, rpc_url: str, limit: int) -> None:
        self.inner: Transport = http_transport(rpc_url)
        self.limit = limit
        self.refused = 0
        self.ranges: list[tuple[int, int]] = []

    def post(self, body: bytes) -> bytes:
        request = _single_get_logs(body)
        if request is not None:
            query = request["params"][0]
            lo, hi = int(query["fromBlock"], 16), int(query["toBlock"], 16)
            if hi - lo + 1 > self.limit:
                self.refused += 1
                error = {"code": -32005, "message": "query returned more than 10000 results"}
                return orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error})
            self.ranges.append((lo, hi))
        return self.inner.post(body)

    def close(self) -> None:
        self.inner.close()


class RewritingTransport:
    """Forwards to the node and hands the logs of every eth_getLogs over a block range to `rewrite` before
    the client sees them (a node, or a network, that changes what it answers)."""

    def __init__(self, rpc_url: str, rewrite: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
        self.inner: Transport = http_transport(rpc_url)
        self.rewrite = rewrite

    def post(self, body: bytes) -> bytes:
        answer = self.inner.post(body)
        if _single_get_logs(body) is None:
            return answer
        parsed = orjson.loads(answer)
        if "result" in parsed:
            parsed["result"] = self.rewrite(parsed["result"])
        return orjson.dumps(parsed)

    def close(self) -> None:
        self.inner.close()


class RacingTransport:
    """Forwards every JSON-RPC call on its own, in order, numbering them from 0, and runs `race()` (a reorg
    made through another client) just before call number `at`: the answers before and after it come from
    different chains, deterministically. A batch's calls go one by one too, in the batch's order or, with
    `reverse_batches`, last first: a node answers a batch's calls concurrently, in no promised order, so
    either may see the chain first. `methods` lists every call forwarded; `fired` tells whether the race ran.
    """

    def __init__(
        self,
        rpc_url: str,
        *,
        at: int | None = None,
        race: Callable[[], None] | None = None,
        reverse_batches: bool = False,
    ) -> None:
        self.inner: Transport = http_transport(rpc_url)
        self.at = at
        self.race = race
        self.reverse_batches = reverse_batches
        self.methods: list[str] = []
        self.fired = False
        self._lock = threading.Lock()

    def post(self, body: bytes) -> bytes:
        request = orjson.loads(body)
        calls = request if isinstance(request, list) else [request]
        order = list(range(len(calls)))
        if self.reverse_batches:
            order.reverse()
        answers: list[Any] = [None] * len(calls)
        for i in order:
            with self._lock:
                position = len(self.methods)
                self.methods.append(calls[i]["method"])
                fire = position == self.at and self.race is not None and not self.fired
                self.fired = self.fired or fire
            if fire:
                assert self.race is not None
                self.race()
            answers[i] = orjson.loads(self.inner.post(orjson.dumps(calls[i])))
        return orjson.dumps(answers if isinstance(request, list) else answers[0])

    def close(self) -> None:
        self.inner.close()
