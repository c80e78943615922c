"""Webhook delivery against real local HTTP receivers (http.server in a thread): signed JSON, a delivery id
to deduplicate on, retries with exponential backoff, at least once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import World, h
from monitor_support import Watch, sqlite_url, watching

from ledger.chain.localchain import LocalChain
from ledger.monitoring.alerts import WebhookDelivery
from ledger.monitoring.webhooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookWorker,
    sign,
    verify_signature,
)
from ledger.protocol.purposes import Purpose
from ledger.store.db import create_db_engine

SECRET = "test-webhook-secret"


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A local HTTP endpoint that answers 500 to its first `fail_first` requests, then 204."""

    fail_first: int = 0
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/fundflow"


@contextmanager
def serve(fail_first: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(fail_first)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                receiver.requests.append(Received(dict(self.headers.items()), body, time.monotonic()))
                failing = len(receiver.requests) <= receiver.fail_first
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _deliveries(watch: Watch) -> list[Any]:
    table = WebhookDelivery.__table__  # type: ignore[attr-defined]
    with watch.engine.connect() as conn:
        return list(conn.execute(sa.select(table).order_by(table.c.created_at)).all())


def _worker(watch: Watch, **kwargs: Any) -> WebhookWorker:
    options: dict[str, Any] = {"backoff_base": 0.2, "jitter": 0.0, "poll_interval": 0.02, "timeout": 2.0}
    options.update(kwargs)
    return WebhookWorker(watch.engine, SECRET, **options)


def _raise_alert(watch: Watch, label: str) -> str:
    loan = watch.open_loan(label)
    watch.disburse(loan, watch.world.cast.supplier, 100_000_00, Purpose.SECURITIES)
    watch.sync()
    return loan


def _wait(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve() as r:
        yield r


def test_new_alert_is_posted_signed_with_a_delivery_id(
    world: World, tmp_path: Path, receiver: Receiver
) -> None:
    with watching(world, sqlite_url(tmp_path), webhook_urls=[receiver.url]) as watch:
        loan = _raise_alert(watch, "webhook")
        alert = watch.only(loan, "prohibited_use")
        worker = _worker(watch).start()
        try:
            _wait(lambda: _deliveries(watch)[0].state == "delivered")
        finally:
            worker.stop()
        assert len(receiver.requests) == 1
        got = receiver.requests[0]
        body = json.loads(got.body)
        row = _deliveries(watch)[0]
        assert got.headers[DELIVERY_HEADER] == body["delivery_id"] == row.delivery_id
        assert got.headers["X-Fundflow-Event"] == body["event"] == "alert.raised"
        assert got.headers[SIGNATURE_HEADER] == sign(SECRET, got.headers[TIMESTAMP_HEADER], got.body)
        assert verify_signature(
            SECRET, got.headers[TIMESTAMP_HEADER], got.body, got.headers[SIGNATURE_HEADER]
        )
        assert not verify_signature(
            "another secret", got.headers[TIMESTAMP_HEADER], got.body, got.headers[SIGNATURE_HEADER]
        )
        assert (body["alert"]["id"], body["alert"]["rule"], body["alert"]["explanation"]) == (
            alert.id,
            "prohibited_use",
            alert.explanation,
        )
        assert (row.attempts, row.last_status) == (1, 204)
        # re-evaluating the same cause queues nothing new
        watch.evaluate(loan)
        assert len(_deliveries(watch)) == 1


def test_a_receiver_failing_twice_gets_the_same_delivery_three_times_with_backoff(
    world: World, tmp_path: Path
) -> None:
    with (
        serve(fail_first=2) as flaky,
        watching(world, sqlite_url(tmp_path), webhook_urls=[flaky.url]) as watch,
    ):
        _raise_alert(watch, "flaky")
        worker = _worker(watch).start()
        try:
            _wait(lambda: _deliveries(watch)[0].state == "delivered")
        finally:
            worker.stop()
        ids = {r.headers[DELIVERY_HEADER] for r in flaky.requests}
        assert len(flaky.requests) == 3 and len(ids) == 1
        gaps = [b.at - a.at for a, b in zip(flaky.requests, flaky.requests[1:], strict=False)]
        assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # base, then doubled
        row = _deliveries(watch)[0]
        assert (row.state, row.attempts, row.last_status, row.last_error) == ("delivered", 3, 204, None)


def test_delivery_is_marked_failed_after_max_attempts_and_unreachable_urls_count_as_failures(
    world: World, tmp_path: Path
) -> None:
    with serve(fail_first=100) as broken:
        dead = "http://127.0.0.1:9/unreachable"  # discard port: connection refused
        with watching(world, sqlite_url(tmp_path), webhook_urls=[broken.url, dead]) as watch:
            _raise_alert(watch, "broken")
            worker = _worker(watch, backoff_base=0.01, max_attempts=3)
            deadline = time.monotonic() + 15
            while any(r.state == "pending" for r in _deliveries(watch)):
                assert time.monotonic() < deadline
                worker.deliver_due()
                time.sleep(0.02)
            rows = {r.url: r for r in _deliveries(watch)}
            assert (rows[broken.url].state, rows[broken.url].attempts, rows[broken.url].last_status) == (
                "failed",
                3,
                500,
            )
            assert (rows[dead].state, rows[dead].attempts, rows[dead].last_status) == ("failed", 3, None)
            assert rows[dead].last_error.startswith("ConnectError")
            assert len(broken.requests) == 3


def test_backoff_doubles_up_to_the_cap() -> None:
    worker = WebhookWorker(
        sa.create_engine("sqlite://"), SECRET, backoff_base=2.0, backoff_max=60.0, jitter=0
    )
    assert [worker.backoff(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    worker.client.close()


def test_fundflow_index_runs_the_rules_and_delivers_webhooks(
    world: World, chain: LocalChain, tmp_path: Path, receiver: Receiver
) -> None:
    """The production path: `fundflow index --once` raises alerts after its batches and POSTs them."""
    loan = h("loan:cli")
    c = world.cast
    world.ledger.open_loan(
        c.bank,
        loan_id=loan,
        borrower=c.borrower.address,
        borrower_ref=h("ref:cli"),
        principal=1_000_000_00,
        currency="CNY",
        allowed_purposes=(Purpose.RAW_MATERIALS,),
        maturity=int(time.time()) + 365 * 86400,
        terms_hash=h("terms:cli"),
    )
    world.ledger.disburse(c.bank, loan_id=loan, payee=c.supplier.address, amount=5_000_00, purpose=30)
    world.deployment.save(tmp_path / "deployment.json")
    db_url = sqlite_url(tmp_path)
    env = {
        **os.environ,
        "FUNDFLOW_DATABASE_URL": db_url,
        "FUNDFLOW_RPC_URL": chain.url,
        "FUNDFLOW_DEPLOYMENT_FILE": str(tmp_path / "deployment.json"),
        "FUNDFLOW_DATA_DIR": str(tmp_path),
        "FUNDFLOW_ENV": "test",
        "FUNDFLOW_WEBHOOK_URLS": json.dumps([receiver.url]),
        "FUNDFLOW_WEBHOOK_SECRET": SECRET,
    }
    done = subprocess.run(
        [sys.executable, "-m", "fundflow.cli.index", "index", "--once"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    engine = create_db_engine(db_url)
    try:
        with engine.connect() as conn:
            rules = [
                r.rule
                for r in conn.execute(sa.text("SELECT rule FROM alerts WHERE loan_id = :l"), {"l": loan})
            ]
        assert rules == ["prohibited_use"]
        # the worker may stop before delivering in a short --once run; what it left pending goes next time
        pending = WebhookWorker(engine, SECRET, backoff_base=0.01, jitter=0)
        while pending.deliver_due():
            pass
        pending.stop()
    finally:
        engine.dispose()
    assert [json.loads(r.body)["alert"]["rule"] for r in receiver.requests] == ["prohibited_use"]
