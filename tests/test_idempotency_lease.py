"""A replica killed mid-write leaves its Idempotency-Key pending, with no process left to finish it. A retry
with the same key takes the key over once its lease (FUNDFLOW_IDEMPOTENCY_LEASE) ran out and resumes the
write from its journaled transactions, so the payment is recorded once; before the lease runs out a retry
is told the request is still being processed. (The end-to-end version, a replica SIGKILLed behind HAProxy,
is in tests/test_cluster.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api

from api import writes
from ledger.store.offchain import IdempotencyRecord

pytestmark = pytest.mark.slow

idem = IdempotencyRecord.__table__  # type: ignore[attr-defined]


def _as_if_the_sender_died(api: Api, key: str, claimed_seconds_ago: float) -> Any:
    """Turn a finished write back into what a SIGKILLed sender leaves: pending, its transaction journaled
    (and mined), no answer stored."""
    with api.services.engine.begin() as conn:
        conn.execute(
            sa.update(idem)
            .where(idem.c.key == key)
            .values(
                state="pending",
                response_status=None,
                response_body=None,
                created_at=datetime.now(UTC) - timedelta(seconds=claimed_seconds_ago),
            )
        )
        return conn.execute(sa.select(idem.c.txs).where(idem.c.key == key)).scalar_one()


def _lease(api: Api, seconds: float) -> None:
    api.services.settings = api.services.settings.model_copy(update={"idempotency_lease": seconds})


def test_a_retry_takes_over_a_dead_senders_key_after_the_lease_and_records_once(api: Api) -> None:
    _lease(api, 2.0)
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "420.00", "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    first = api.post("bank", path, body, key="died-mid-write")
    assert first.status_code == 201, first.text
    txs = _as_if_the_sender_died(api, "died-mid-write", claimed_seconds_ago=3.0)
    assert len(txs) == 1

    retry = api.post("bank", path, body, key="died-mid-write")

    assert retry.status_code == 201, retry.text
    assert retry.json()["tx_hash"] == txs[0]["tx_hash"] == first.json()["tx_hash"]
    assert int(api.world.ledger.get_loan(loan).disbursed) == 42000  # fen: recorded once
    with api.services.engine.connect() as conn:
        assert conn.execute(sa.select(idem.c.state).where(idem.c.key == "died-mid-write")).scalar() == "done"


def test_a_retry_within_the_lease_is_told_the_write_is_still_in_progress(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lease(api, 60.0)
    monkeypatch.setattr(writes, "PENDING_WAIT_SECONDS", 0.5)
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "420.00", "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    assert api.post("bank", path, body, key="maybe-alive").status_code == 201
    _as_if_the_sender_died(api, "maybe-alive", claimed_seconds_ago=1.0)

    retry = api.post("bank", path, body, key="maybe-alive")

    assert retry.status_code == 409, retry.text
    assert "still being processed" in retry.json()["message"]
    assert int(api.world.ledger.get_loan(loan).disbursed) == 42000


def test_a_sender_stalled_past_its_lease_sends_nothing_once_a_retry_took_its_key(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other half of the lease: a sender that was only stalled (not dead) when a retry took its key over
    must not broadcast. Its next journal record finds the claim gone and stops before the broadcast."""
    from ledger.chain.journal import SendJournal

    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "420.00", "purpose": 1}
    path = f"/v1/loans/{loan}/disbursements?wait=true"
    taken_at = datetime.now(UTC) + timedelta(seconds=5)
    original = SendJournal.add

    def retry_takes_the_key_first(journal: SendJournal, tx: Any) -> None:
        with api.services.engine.begin() as conn:  # what _TAKE_OVER_STALE does for a retry
            conn.execute(sa.update(idem).where(idem.c.key == "stalled").values(created_at=taken_at))
        original(journal, tx)

    monkeypatch.setattr(SendJournal, "add", retry_takes_the_key_first)
    answer = api.post("bank", path, body, key="stalled")

    assert answer.status_code == 409, answer.text
    assert "taken over by a retry" in answer.json()["message"]
    assert int(api.world.ledger.get_loan(loan).disbursed) == 0  # nothing was broadcast
    with api.services.engine.connect() as conn:
        row = conn.execute(sa.select(idem.c.state, idem.c.txs).where(idem.c.key == "stalled")).one()
    assert row.state == "pending" and row.txs is None  # the retry's row, untouched by the stalled sender
