"""Idempotency across a node failure: the node fails after a transaction was broadcast but before its
receipt arrived; a retry with the same Idempotency-Key must record it exactly once.

The chain client of these tests carries its requests over a `FlakyTransport` (the real HTTP transport to the
session node) that plays the failing network: it forwards the first eth_sendRawTransaction and then drops the
answer (the node has it, the API never learns), or swallows the request without forwarding it (the node never
had it)."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api
from transport_support import FlakyTransport

from ledger.chain.client import ChainClient
from ledger.chain.localchain import LocalChain

pytestmark = pytest.mark.slow


@pytest.fixture
def network(chain: LocalChain) -> FlakyTransport:
    return FlakyTransport(chain.url, timeout=5.0)


@pytest.fixture
def client(chain: LocalChain, network: FlakyTransport) -> ChainClient:
    """Overrides conftest's: the world, the API's writes and the test's reads go over `network` (the
    indexer reads the node directly)."""
    return ChainClient(chain.url, transport=network, tx_timeout=20.0)


@pytest.fixture
def flaky(api: Api, network: FlakyTransport) -> tuple[Api, FlakyTransport]:
    return api, network


def _disbursed(api: Api, loan: str) -> int:
    return int(api.world.ledger.get_loan(loan).disbursed)


def _idem_row(api: Api, key: str) -> Any:
    import sqlalchemy as sa

    from ledger.store.offchain import IdempotencyRecord

    table = IdempotencyRecord.__table__  # type: ignore[attr-defined]
    with api.services.engine.connect() as conn:
        return conn.execute(sa.select(table.c.state, table.c.txs).where(table.c.key == key)).first()


def test_answer_lost_after_broadcast_retry_finds_the_mined_transaction_and_records_once(
    flaky: tuple[Api, FlakyTransport],
) -> None:
    api, network = flaky
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "0.42", "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    network.fail_next_send = "drop"

    lost = api.post("bank", path, body, key="lost-answer")

    assert lost.status_code == 503, lost.text
    assert lost.headers["Retry-After"] == "5"
    assert lost.json()["error"] == "ChainUnavailable"
    assert "same Idempotency-Key" in lost.json()["hint"]
    assert _disbursed(api, loan) == 42  # the node did record it
    state, txs = _idem_row(api, "lost-answer")
    assert state == "unconfirmed" and len(txs) == 1
    sends_before_retry = network.sends_forwarded

    retry = api.post("bank", path, body, key="lost-answer")

    assert retry.status_code == 201, retry.text
    assert retry.json()["tx_hash"] == txs[0]["tx_hash"]
    assert retry.json()["mirrored"] is True and len(retry.json()["lot_ids"]) == 1
    assert network.sends_forwarded == sends_before_retry  # looked up, not sent again
    assert _disbursed(api, loan) == 42
    again = api.post("bank", path, body, key="lost-answer")
    assert again.headers["Idempotent-Replayed"] == "true" and again.json() == retry.json()
    assert api.get("bank", f"/v1/loans/{loan}").json()["disbursed"] == 42  # the mirror agrees
    assert len(api.get("bank", f"/v1/loans/{loan}/trail").json()["lots"]) == 1


def test_send_lost_before_the_node_retry_rebroadcasts_the_same_signed_transaction(
    flaky: tuple[Api, FlakyTransport],
) -> None:
    api, network = flaky
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "0.07", "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    network.fail_next_send = "swallow"

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
    flaky: tuple[Api, FlakyTransport],
) -> None:
    api, network = flaky
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "0.05", "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    network.fail_next_send = "swallow"
    assert api.post("bank", path, body, key="nonce-reused").status_code == 503
    _, txs = _idem_row(api, "nonce-reused")
    # Another write of the same account takes the nonce the lost transaction was signed with.
    other = api.post("bank", path, {**body, "amount": "0.01"}, key="other")
    assert other.status_code == 201, other.text

    retry = api.post("bank", path, body, key="nonce-reused")

    assert retry.status_code == 201, retry.text
    assert retry.json()["tx_hash"] != txs[0]["tx_hash"]  # the old one can never be mined
    assert _disbursed(api, loan) == 6
    assert api.post("bank", path, body, key="nonce-reused").json()["tx_hash"] == retry.json()["tx_hash"]
