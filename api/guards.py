"""Request guards in front of every route: a budget of failed authentications per client address (429 +
Retry-After), request body size (413) and JSON nesting depth (422) checked before any parser runs, security
headers on API responses, CORS closed unless origins are configured, and a log line for every refusal that
names the caller by token fingerprint, never by token.

The per-participant rate limit is not decided here: a credential as sent proves nothing, so keying a bucket
on it lets a caller skip the limit with a fresh bogus token per request. The guard only makes the limiter
reachable (`admit_participant`), and the API's authentication (api/deps.py) and the dashboard's sessions
(api/sessions.py) call it once they know who is asking.

A pure ASGI middleware (no BaseHTTPMiddleware) so uploads still stream to the documents route.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ledger.config import Settings
from ledger.errors import FundflowError
from ledger.store.offchain import hash_token, token_fingerprint

__all__ = [
    "API_SECURITY_HEADERS",
    "PYTHON_RECURSION_LIMIT",
    "RateLimitedError",
    "RateLimits",
    "RequestGuards",
    "TokenBuckets",
    "admit_participant",
    "install_guards",
    "json_depth_exceeds",
    "restore_recursion_limit",
]

log = logging.getLogger("api.refusals")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_UPLOAD_PATH = "/v1/documents"
_EVIDENCE_FORM = re.compile(r"/dashboard/lots/0x[0-9a-fA-F]{64}/(confirm|dispute)")
_FORM_OVERHEAD = 64 * 1024


class TokenBuckets:
    """One token bucket per key: `burst` requests at once, refilled at `per_minute` / 60 per second.

    The table holds at most `max_keys` buckets: past that, buckets that have refilled (they remember
    nothing a new bucket would not) are dropped, then the least recently used, down to three quarters of the
    bound, so a flood of new keys costs amortised O(1) per request and memory stays bounded."""

    def __init__(self, per_minute: int, burst: int | None = None, *, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        level, last = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, level + (now - last) * self.rate)

    def take(self, key: str) -> float:
        """0 if the request may go ahead (and it is counted), else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            level = self._level(key, now)
            wait = 0.0 if level >= 1.0 else (1.0 - level) / self.rate
            self._buckets[key] = (level - 1.0 if wait == 0.0 else level, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return wait

    def wait(self, key: str) -> float:
        """The seconds until `key` may go ahead (0 if now), without counting anything."""
        now = time.monotonic()
        with self._lock:
            if key not in self._buckets:
                return 0.0
            level = self._level(key, now)
            return 0.0 if level >= 1.0 else (1.0 - level) / self.rate

    def _prune(self, now: float) -> None:
        rate, capacity = self.rate, self.capacity
        full = [k for k, (level, last) in self._buckets.items() if level + (now - last) * rate >= capacity]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys * 3 // 4:
            self._buckets.popitem(last=False)


class RateLimitedError(FundflowError):
    """A caller has used up its budget; `retry_after` says when it may try again (whole seconds)."""

    def __init__(self, message: str, *, retry_after: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or f"Retry after {retry_after} s.")
        self.retry_after = retry_after


class RateLimits:
    """The two budgets of one app: requests per verified participant, failed authentications per address."""

    def __init__(self, settings: Settings) -> None:
        self.per_minute = settings.effective_rate_limit
        self.failures_per_minute = settings.effective_auth_failure_limit
        size = settings.rate_limit_table_size
        burst = settings.rate_limit_burst
        self.participants = TokenBuckets(self.per_minute, burst, max_keys=size) if self.per_minute else None
        self.failures = (
            TokenBuckets(self.failures_per_minute, max_keys=size) if self.failures_per_minute else None
        )

    def admit(self, participant: str) -> None:
        """Count one request of a verified participant, or raise RateLimitedError."""
        if self.participants is None:
            return
        wait = self.participants.take(participant)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise RateLimitedError(
                f"Too many requests: the limit is {self.per_minute} per minute per participant.",
                retry_after=retry,
                hint=f"Retry after {retry} s; spread requests out or use the batch endpoints.",
            )

    def failure_wait(self, address: str) -> float:
        return self.failures.wait(address) if self.failures is not None else 0.0

    def failed(self, address: str) -> None:
        if self.failures is not None:
            self.failures.take(address)


_LIMITS: ContextVar[RateLimits | None] = ContextVar("fundflow_rate_limits", default=None)


def admit_participant(participant: str) -> None:
    """Count one request of an authenticated participant against the limit of the app serving the request
    (set by its guard); raises RateLimitedError past the limit. Outside a guarded request it does nothing."""
    limits = _LIMITS.get()
    if limits is not None:
        limits.admit(participant)


# ------------------------------------------------------------------------------------------- body depth

PYTHON_RECURSION_LIMIT = 1000
"""`sys.getrecursionlimit()` of a fresh CPython interpreter."""


def restore_recursion_limit() -> None:
    """Put Python's recursion limit back to what CPython ships with.

    `py_ecc` (imported by eth-account/web3) raises it to 100,000 at import. The C parsers of JSON and
    friends check that limit, not the C stack, so with it a body of 200,000 nested `[` overflows the C stack
    and kills the whole process (API and indexer) with a segmentation fault instead of raising
    RecursionError. Called by the app factory and the CLI entry, after importing py_ecc so its import
    cannot undo it."""
    import py_ecc  # noqa: F401  (its import sets the limit; make sure that has happened)

    sys.setrecursionlimit(PYTHON_RECURSION_LIMIT)


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether `body`, read as JSON, nests arrays and objects deeper than `limit`. A flat scan (no recursion,
    linear time) so it is safe on any input; brackets inside strings do not count. Malformed JSON is left
    to the parser, which then fails on a shallow input."""
    if body.count(b"[") + body.count(b"{") <= limit:  # the usual body: nothing to scan
        return False
    brackets = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body))
    depth = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        else:
            depth = max(0, depth - 1)
    return False


_FLAT_BODIES = ("application/x-www-form-urlencoded", "multipart/form-data")
"""Bodies parsed without recursion (form fields): no depth to bound."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client") or ("?", 0)
    return str(client[0])


def _who(scope: Scope) -> str:
    """The caller as a log line names it: the presented token's fingerprint (never the token), else the
    client address. Only for logs: nothing is decided on a credential that has not been checked."""
    auth = _header(scope, b"authorization") or ""
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        return f"token {token_fingerprint(hash_token(auth[7:].strip()))}"
    return f"address {_client_address(scope)}"


async def _json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in {**API_SECURITY_HEADERS, **headers}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestGuards:
    def __init__(self, app: ASGIApp, settings: Settings, limits: RateLimits | None = None) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits or RateLimits(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        address = _client_address(scope)
        who = _who(scope)
        is_api = path.startswith("/v1")

        if method != "OPTIONS":
            wait = self.limits.failure_wait(address)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                log.warning("refused %s %s -> 429 too many failed authentications (%s)", method, path, who)
                await _json(
                    send,
                    429,
                    {
                        "error": "TooManyFailedAuthentications",
                        "message": "Too many requests with an unknown, expired or revoked token from this "
                        f"address: the limit is {self.limits.failures_per_minute} per minute.",
                        "hint": f"Retry after {retry} s with a valid token (`fundflow tokens create NAME`).",
                    },
                    {"Retry-After": str(retry)},
                )
                return

        limit = self.settings.max_body_bytes
        if path == _UPLOAD_PATH:
            limit = self.settings.document_max_bytes
        elif _EVIDENCE_FORM.fullmatch(path):  # a payee's form with an evidence file (and a few fields)
            limit = self.settings.document_max_bytes + _FORM_OVERHEAD
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await self._too_large(send, method, path, who, limit)
            return

        if path != _UPLOAD_PATH and method in ("POST", "PUT", "PATCH", "DELETE"):
            # Read the (small) body here, so a stream without Content-Length is cut off at the limit with
            # a 413 rather than failing inside the route's parser, and so its depth is known before any
            # parser recurses into it. Uploads stream: their route counts.
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    await self._too_large(send, method, path, who, limit)
                    return
                chunks.append(chunk)
                more = bool(message.get("more_body", False))
            body = b"".join(chunks)
            content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
            depth = self.settings.max_body_depth
            if content_type not in _FLAT_BODIES and json_depth_exceeds(body, depth):
                log.warning("refused %s %s -> 422 body nested too deep (%s)", method, path, who)
                await _json(
                    send,
                    422,
                    {
                        "error": "BodyTooDeep",
                        "message": f"The request body nests arrays and objects deeper than {depth} levels.",
                        "hint": "Send a flatter JSON body; no Fundflow request needs more than a few levels.",
                    },
                    {},
                )
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            receive = replay

        started = False
        status = 0

        async def guarded_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                if is_api:
                    headers = list(message.get("headers", []))
                    present = {k.lower() for k, _ in headers}
                    for name, value in API_SECURITY_HEADERS.items():
                        if name.lower().encode() not in present:
                            headers.append((name.lower().encode(), value.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        reset = _LIMITS.set(self.limits)
        try:
            await self.app(scope, receive, guarded_send)
        finally:
            _LIMITS.reset(reset)
        if status == 401:
            self.limits.failed(address)
        if status in (401, 403, 413, 429):
            log.warning("refused %s %s -> %d (%s)", method, path, status, who)

    async def _too_large(self, send: Send, method: str, path: str, who: str, limit: int) -> None:
        log.warning("refused %s %s -> 413 body too large (%s)", method, path, who)
        what = "document" if path == _UPLOAD_PATH else "request body"
        await _json(
            send,
            413,
            {
                "error": "PayloadTooLarge",
                "message": f"The {what} is larger than the limit of {limit:,} bytes.",
                "hint": "Send less: split batches, or upload large evidence as a document."
                if what != "document"
                else "Compress or split the document.",
            },
            {},
        )


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimitedError)
    return JSONResponse(
        {"error": "RateLimited", "message": exc.message, "hint": exc.hint},
        status_code=429,
        headers={"Retry-After": str(exc.retry_after)},
    )


def install_guards(app: FastAPI, settings: Settings) -> None:
    """Guards outermost; CORS inside them only when FUNDFLOW_CORS_ORIGINS names origins."""
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Fundflow-Wait", "X-Filename"],
            expose_headers=["Retry-After", "Idempotent-Replayed"],
        )
    limits = RateLimits(settings)
    app.state.rate_limits = limits
    app.add_exception_handler(RateLimitedError, _rate_limited)
    app.add_middleware(RequestGuards, settings=settings, limits=limits)  # type: ignore[arg-type]
