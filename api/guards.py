"""Request guards in front of every route: per-token rate limit (429 + Retry-After), request body size
(413), security headers on API responses, CORS closed unless origins are configured, and a log line for
every refusal that names the caller by token fingerprint, never by token.

A pure ASGI middleware (no BaseHTTPMiddleware) so uploads still stream to the documents route.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI

from ledger.config import Settings
from ledger.store.offchain import hash_token, token_fingerprint

__all__ = ["API_SECURITY_HEADERS", "RequestGuards", "TokenBuckets", "install_guards"]

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


class TokenBuckets:
    """One token bucket per caller: `burst` requests at once, refilled at `per_minute` / 60 per second."""

    def __init__(self, per_minute: int, burst: int | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst or per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            level, last = self._buckets.get(key, (self.capacity, now))
            level = min(self.capacity, level + (now - last) * self.rate)
            if level >= 1.0:
                self._buckets[key] = (level - 1.0, now)
                return 0.0
            self._buckets[key] = (level, now)
            return (1.0 - level) / self.rate


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _caller_key(scope: Scope) -> tuple[str, str]:
    """(bucket key, what to log): the token's fingerprint, or the client address without a token."""
    auth = _header(scope, b"authorization") or ""
    if auth.lower().startswith("bearer ") and auth[7:].strip():
        fp = token_fingerprint(hash_token(auth[7:].strip()))
        return "t:" + fp, f"token {fp}"
    cookie = _header(scope, b"cookie")
    if cookie:
        digest = hashlib.sha256(cookie.encode()).hexdigest()[:12]
        return "c:" + digest, f"session {digest}"
    client = scope.get("client") or ("?", 0)
    return "a:" + str(client[0]), f"address {client[0]}"


async def _json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in {**API_SECURITY_HEADERS, **headers}.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestGuards:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        limit = settings.effective_rate_limit
        self.buckets = TokenBuckets(limit, settings.rate_limit_burst) if limit > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        key, who = _caller_key(scope)
        is_api = path.startswith("/v1")

        if self.buckets is not None and method != "OPTIONS":
            wait = self.buckets.take(key)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                log.warning("refused %s %s -> 429 rate limited (%s)", method, path, who)
                await _json(
                    send,
                    429,
                    {
                        "error": "RateLimited",
                        "message": f"Too many requests: the limit is {self.settings.effective_rate_limit} "
                        "per minute per API token.",
                        "hint": f"Retry after {retry} s; spread requests out or use the batch endpoints.",
                    },
                    {"Retry-After": str(retry)},
                )
                return

        limit = self.settings.document_max_bytes if path == _UPLOAD_PATH else self.settings.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await self._too_large(send, method, path, who, limit)
            return

        if path != _UPLOAD_PATH and method in ("POST", "PUT", "PATCH"):
            # Read the (small) body here, so a stream without Content-Length is cut off at the limit with
            # a 413 rather than failing inside the route's parser. Uploads stream: their route counts.
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

        await self.app(scope, receive, guarded_send)
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
    app.add_middleware(RequestGuards, settings=settings)  # type: ignore[arg-type]
