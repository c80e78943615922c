"""Idempotency across a node failure: the node fails after a transaction was broadcast but before its
receipt arrived; a retry with the same Idempotency-Key must record it exactly once.

A small HTTP proxy in front of the session node plays the failing network: it forwards the first
eth_sendRawTransaction and then drops the answer (the node has it, the API never learns), or swallows the
request without forwarding it (the node never had it)."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import pytest
from api_support import Api

from ledger.chain.client import ChainClient
from ledger.chain.contract import LedgerContract

pytestmark = pytest.mark.slow


class FlakyProxy:
    """Forwards JSON-RPC to `upstream`; `fail_next_send` is "drop" (forward, lose the answer) or "swallow"
    (never forward) for the next eth_sendRawTransaction, then behaves again."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.fail_next_send: str | None = None
        self.sends_forwarded = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                is_send = b"eth_sendRawTransaction" in body
                mode = proxy.fail_next_send if is_send else None
                if mode is not None:
                    proxy.fail_next_send = None
                if mode == "swallow":
                    self.close_connection = True
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
                conn.request("POST", "/", body, {"Content-Type": "application/json"})
                answer = conn.getresponse().read()
                conn.close()
                if is_send:
                    proxy.sends_forwarded += 1
                if mode == "drop":
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(api: Api, client: ChainClient) -> Iterator[tuple[Api, FlakyProxy]]:
    """The API's writes go through the proxy; the indexer and the test read the node directly."""
    with FlakyProxy(client.rpc_url) as proxy:
        proxied = ChainClient(proxy.url, request_timeout=5.0, tx_timeout=20.0)
        original = api.services.ledger
        api.services.ledger = LedgerContract(proxied, api.world.deployment.address, api.world.deployment.abi)
        try:
            yield api, proxy
        finally:
            api.services.ledger = original


def _disbursed(api: Api, loan: str) -> int:
    return int(api.world.ledger.get_loan(loan).disbursed)


def _idem_row(api: Api, key: str) -> Any:
    import sqlalchemy as sa

    from ledger.store.offchain import IdempotencyRecord

    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    with api.services.engine.connect() as conn:
        return conn.execute(sa.select(table.c.state, table.c.txs).where(table.c.key == key)).first()


def test_answer_lost_after_broadcast_retry_finds_the_mined_transaction_and_records_once(
    flaky: tuple[Api, FlakyProxy],
) -> None:
    api, proxy = flaky
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": 42, "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    proxy.fail_next_send = "drop"

    lost = api.post("bank", path, body, key="lost-answer")

    assert lost.status_code == 503, lost.text
    assert lost.headers["Retry-After"] == "5"
    assert lost.json()["error"] == "ChainUnavailable"
    assert "same Idempotency-Key" in lost.json()["hint"]
    assert _disbursed(api, loan) == 42  # the node did record it
    state, txs = _idem_row(api, "lost-answer")
    assert state == "unconfirmed" and len(txs) == 1
    sends_before_retry = proxy.sends_forwarded

    retry = api.post("bank", path, body, key="lost-answer")

    assert retry.status_code == 201, retry.text
    assert retry.json()["tx_hash"] == txs[0]["tx_hash"]
    assert retry.json()["mirrored"] is True and len(retry.json()["lot_ids"]) == 1
    assert proxy.sends_forwarded == sends_before_retry  # looked up, not sent again
    assert _disbursed(api, loan) == 42
    again = api.post("bank", path, body, key="lost-answer")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == retry.json()
    assert api.get("bank", f"/v1/loans/{loan}").json()["disbursed"] == 42  # the mirror agrees
    assert len(api.get("bank", f"/v1/loans/{loan}/trail").json()["lots"]) == 1


def test_send_lost_before_the_node_retry_rebroadcasts_the_same_signed_transaction(
    flaky: tuple[Api, FlakyProxy],
) -> None:
    api, proxy = flaky
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": 7, "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    proxy.fail_next_send = "swallow"

    lost = api.post("bank", path, body, key="never-arrived")

    assert lost.status_code == 503, lost.text
    assert _disbursed(api, loan) == 0
    _, txs = _idem_row(api, "never-arrived")

    retry = api.post("bank", path, body, key="never-arrived")

    assert retry.status_code == 201, retry.text
    assert retry.json()["tx_hash"] == txs[0]["tx_hash"]  # the stored bytes, not a new transaction
    assert _disbursed(api, loan) == 7
    assert _idem_row(api, "never-arrived")[0] == "done"


def test_lost_send_whose_nonce_was_reused_is_signed_anew_and_still_records_once(
    flaky: tuple[Api, FlakyProxy],
) -> None:
    api, proxy = flaky
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": 5, "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    proxy.fail_next_send = "swallow"
    assert api.post("bank", path, body, key="nonce-reused").status_code == 503
    _, txs = _idem_row(api, "nonce-reused")
    # Another write of the same account takes the nonce the lost transaction was signed with.
    other = api.post("bank", path, {**body, "amount": 1}, key="other")
    assert other.status_code == 201, other.text

    retry = api.post("bank", path, body, key="nonce-reused")

    assert retry.status_code == 201, retry.text
    assert retry.json()["tx_hash"] != txs[0]["tx_hash"]  # the old one can never be mined
    assert _disbursed(api, loan) == 6
    assert api.post("bank", path, body, key="nonce-reused").json()["tx_hash"] == retry.json()["tx_hash"]
