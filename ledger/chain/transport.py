"""Transports: how a JSON-RPC request's bytes reach one node and its answer's bytes come back.

A `Transport` is the narrowest seam under the chain client, as httpx's `BaseTransport` and web3.py's providers
are: `post(body) -> answer`, and `close()`. It knows nothing of JSON-RPC; `ChainClient(url, transport=...)`
takes one, so a test hands in a transport that wraps the real one and injects a fault (a lost answer, a
refusal) instead of patching the client.

The rules every transport keeps:
- `post` sends the body once, never twice (a JSON-RPC send is not idempotent), and returns the whole answer
  body or raises. It is safe to call from many threads at once.
- Every failure to get an answer (cannot connect, connection lost, an answer cut off, an HTTP error status) is
  a `ChainError` naming the node by its masked URL (no key or password), with a hint.
- `close` releases connections; a transport nobody closes releases them when it is collected.

`http_transport(url)` picks the default: `KeepAliveTransport` (one kept-alive `http.client` connection per
thread, with its own chunked-body reader) for a plain http:// node, which is what a local or consortium node
is and where `requests`/urllib3 cost more per call than the node takes to answer; `RequestsTransport` for
anything else (TLS, credentials in the URL, a proxy from the environment).
"""

from __future__ import annotations

import http.client
import select
import threading
import weakref
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from ledger.config import mask_url
from ledger.errors import ChainError

__all__ = ["KeepAliveTransport", "RequestsTransport", "Transport", "http_transport", "unreachable"]


class Transport(Protocol):
    """Carries one request body to the node and its answer back (see the module's rules)."""

    def post(self, body: bytes) -> bytes:
        """The node's answer to `body`; ChainError if there is none."""
        ...

    def close(self) -> None:
        """Release the transport's connections."""
        ...


def unreachable(display_url: str, exc: BaseException) -> ChainError:
    """The error for a node that cannot be reached or dropped the connection (`exc` names how)."""
    return ChainError(
        f"cannot reach the chain node at {display_url} ({type(exc).__name__})",
        hint="the node's URL is FUNDFLOW_RPC_URL, else http://FUNDFLOW_CHAIN_HOST:FUNDFLOW_CHAIN_PORT "
        "(127.0.0.1:8545 by default): set FUNDFLOW_RPC_URL (or FUNDFLOW_CHAIN_PORT) to where your node "
        "listens, or start one there with `fundflow chain`",
    )


def http_transport(rpc_url: str, *, timeout: float = 10.0) -> Transport:
    """The default transport for `rpc_url`: kept-alive `http.client` connections for a plain http:// node,
    `requests` for TLS, credentials in the URL or a proxy from the environment."""
    proxies = requests.utils.get_environ_proxies(rpc_url)
    url = urlsplit(rpc_url)
    if url.scheme != "http" or url.username or url.password or proxies or not url.hostname:
        return RequestsTransport(rpc_url, timeout=timeout, proxies=proxies)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return KeepAliveTransport(
        url.hostname, url.port or 80, path, timeout=timeout, display_url=mask_url(rpc_url)
    )


class RequestsTransport:
    """A `requests` session: TLS verification, basic auth from the URL, proxies. Proxies from the environment
    are resolved once here (requests would otherwise re-read the environment on every call, which costs more
    than a local node's answer); one kept-alive connection per concurrent caller, up to 64."""

    def __init__(
        self, rpc_url: str, *, timeout: float = 10.0, proxies: Mapping[str, str] | None = None
    ) -> None:
        self._url = rpc_url
        self._display_url = mask_url(rpc_url)
        self._timeout = timeout
        self._session = requests.Session()
        self._session.trust_env = False
        self._session.proxies.update(
            requests.utils.get_environ_proxies(rpc_url) if proxies is None else proxies
        )
        self._session.headers.update({"Content-Type": "application/json"})
        # One kept-alive connection per concurrent caller (the API runs writes on up to 40 threads).
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=64)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, body: bytes) -> bytes:
        try:
            response = self._session.post(self._url, data=body, timeout=self._timeout)
            response.raise_for_status()
            return bytes(response.content)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise unreachable(self._display_url, exc) from exc
        except requests.RequestException as exc:
            raise ChainError(
                f"request to {self._display_url} failed: {str(exc).replace(self._url, self._display_url)}",
                hint="check the node",
            ) from exc

    def close(self) -> None:
        self._session.close()


class KeepAliveTransport:
    """One kept-alive HTTP/1.1 connection per thread to a plain http:// node, with `http.client` alone:
    `requests` and urllib3 spend more per call than a local node takes to answer. As urllib3 does, a
    connection the node closed while idle (Node.js servers drop them after 5 s) is noticed before reuse and
    replaced; nothing is ever sent twice. Connections of threads that ended are closed when the next one
    opens, and all of them on `close` or when the transport goes away."""

    def __init__(
        self, host: str, port: int, path: str = "/", *, timeout: float = 10.0, display_url: str | None = None
    ) -> None:
        self._host, self._port, self._path, self._timeout = host, port, path, timeout
        self._display_url = display_url or f"http://{host}:{port}"
        self._conns: dict[threading.Thread, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._conns, self._lock)

    def post(self, body: bytes) -> bytes:
        try:
            status, reason, answer = self._post(body)
        except (OSError, http.client.HTTPException) as exc:
            raise unreachable(self._display_url, exc) from exc
        if status >= 400:
            raise ChainError(
                f"request to {self._display_url} failed: {status} {reason}", hint="check the node"
            )
        return answer

    def close(self) -> None:
        _close_all(self._conns, self._lock)

    def _post(self, body: bytes) -> tuple[int, str, bytes]:
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
