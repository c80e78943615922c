"""Webhook delivery: POST each new alert to the configured URLs, signed, retried, at least once.

The monitor writes one `webhook_deliveries` row per new alert and URL in the transaction that raises the
alert (a transactional outbox), so an alert is never lost between the database and the network. A worker
thread claims due rows with a short lease (so two workers, or a crash mid-request, at worst send twice),
POSTs them and marks them delivered on any 2xx; anything else is retried with exponential backoff until
`max_attempts`, after which the row is marked failed and logged.

What a receiver gets:

    POST <url>
    Content-Type: application/json
    X-Fundflow-Event: alert.raised
    X-Fundflow-Delivery: <uuid>          the same on every retry: deduplicate on it
    X-Fundflow-Timestamp: <unix seconds>
    X-Fundflow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" under the shared secret>

    {"delivery_id": ..., "event": "alert.raised", "created_at": ..., "alert": {...}}

Receivers check the signature with `verify_signature` (or the same three lines in their language) and
reject timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.config import Settings
from ledger.errors import ConfigError
from ledger.monitoring.alerts import WebhookDelivery

__all__ = ["SIGNATURE_HEADER", "WebhookWorker", "sign", "verify_signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Fundflow-Signature"
DELIVERY_HEADER = "X-Fundflow-Delivery"
TIMESTAMP_HEADER = "X-Fundflow-Timestamp"
EVENT_HEADER = "X-Fundflow-Event"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """`sha256=<hex>` over `<timestamp>.<body>`."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300.0
) -> bool:
    """True when `signature` is ours for this body and the timestamp is recent (receivers' side)."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _table() -> sa.Table:
    return WebhookDelivery.__table__  # type: ignore[attr-defined,no-any-return]


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite drops the zone


class WebhookWorker:
    """Delivers due webhook rows; `start()` runs it in a daemon thread, `stop()` ends it."""

    def __init__(
        self,
        engine: Engine,
        secret: str,
        *,
        client: httpx.Client | None = None,
        timeout: float = 5.0,
        backoff_base: float = 2.0,
        backoff_max: float = 3600.0,
        jitter: float = 0.1,
        max_attempts: int = 25,
        lease: float = 60.0,
        poll_interval: float = 1.0,
        batch_size: int = 50,
    ) -> None:
        if not secret:
            raise ConfigError("webhook deliveries need a signing secret", hint="set FUNDFLOW_WEBHOOK_SECRET")
        self.engine = engine
        self.secret = secret
        self._owns_client = client is None
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.max_attempts = max_attempts
        self.lease = lease
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings, **kwargs: Any) -> WebhookWorker:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        return cls(engine, secret, max_attempts=settings.webhook_max_attempts, **kwargs)

    # ------------------------------------------------------------------ one pass

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt `attempts + 1`: base * 2^(attempts-1), capped, with a little jitter."""
        delay: float = min(self.backoff_max, self.backoff_base * 2 ** max(0, attempts - 1))
        return delay * (1 + random.uniform(0, self.jitter)) if self.jitter else delay

    def _claim(self) -> list[Any]:
        """Due pending rows, leased to this worker by pushing their next attempt `lease` seconds ahead."""
        t = _table()
        now = _now()
        with self.engine.begin() as conn:
            query = (
                sa.select(t)
                .where(t.c.state == "pending", t.c.next_attempt_at <= now)
                .order_by(t.c.next_attempt_at, t.c.created_at)
                .limit(self.batch_size)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = list(conn.execute(query).all())
            if rows:
                conn.execute(
                    sa.update(t)
                    .where(t.c.delivery_id.in_([r.delivery_id for r in rows]))
                    .values(next_attempt_at=now + timedelta(seconds=self.lease))
                )
        return rows

    def deliver_due(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        rows = self._claim()
        for row in rows:
            self._attempt(row)
        return len(rows)

    def _attempt(self, row: Any) -> None:
        body = json.dumps(
            {
                "delivery_id": row.delivery_id,
                "event": row.event,
                "created_at": _aware(row.created_at).isoformat(),
                "alert": row.payload,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        stamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fundflow-webhooks/1",
            EVENT_HEADER: row.event,
            DELIVERY_HEADER: row.delivery_id,
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self.secret, stamp, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = self.client.post(row.url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = row.attempts + 1
        now = _now()
        values: dict[str, Any] = {"attempts": attempts, "last_status": status, "last_error": error}
        if error is None:
            values.update(state="delivered", delivered_at=now)
        elif attempts >= self.max_attempts:
            values.update(state="failed")
            log.error(
                "webhook %s to %s failed for good after %d attempts: %s",
                row.delivery_id,
                row.url,
                attempts,
                error,
            )
        else:
            values.update(next_attempt_at=now + timedelta(seconds=self.backoff(attempts)))
            log.warning("webhook %s to %s failed (attempt %d): %s", row.delivery_id, row.url, attempts, error)
        t = _table()
        with self.engine.begin() as conn:
            conn.execute(sa.update(t).where(t.c.delivery_id == row.delivery_id).values(**values))

    # ------------------------------------------------------------------ thread

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop = stop or self._stop
        while not stop.is_set():
            try:
                busy = self.deliver_due()
            except Exception:  # the database hiccuped: keep the worker alive, the rows stay pending
                log.exception("webhook worker pass failed")
                busy = 0
            if not busy:
                stop.wait(self.poll_interval)

    def start(self) -> WebhookWorker:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="fundflow-webhooks", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._owns_client:
            self.client.close()

    def wait_idle(self, timeout: float, predicate: Callable[[], bool]) -> bool:
        """Poll `predicate` until true or `timeout` (for tests and graceful shutdowns)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()
