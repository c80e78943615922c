"""Transports for tests: the real HTTP transport to the real node, wrapped to watch or to fail on purpose.

A test hands one to `ChainClient(url, transport=...)` instead of patching the client: everything else (the
client, the node, the API on top) runs for real.
"""

from __future__ import annotations

import http.client
import threading

import orjson

from ledger.chain.transport import Transport, http_transport, unreachable
from ledger.config import mask_url

__all__ = ["FlakyTransport", "RecordingTransport"]


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
