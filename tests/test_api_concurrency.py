"""Idempotency under concurrency, 100+ concurrent writes from several participants, and the chain node
stopped mid-run (SIGSTOP/SIGCONT of a private node, so the same chain comes back)."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api, BackgroundIndexer, build_services
from conftest import make_world
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.localchain import LocalChain

pytestmark = pytest.mark.slow


def _count(api: Api, sql: str) -> int:
    with api.services.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_the_same_post_ten_times_concurrently_records_once(api: Api) -> None:
    loan = api.open_loan()["loan_id"]
    key = str(uuid.uuid4())
    body = {"payee": api.address("supplier"), "amount": "7.77", "purpose": 1}

    def send(_: int) -> Any:
        return api.post("bank", f"/v1/loans/{loan}/disbursements?wait=true", body, key=key)

    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(send, range(10)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["tx_hash"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 9
    assert _count(api, "select count(*) from lots") == 1
    assert api.get("bank", f"/v1/loans/{loan}").json()["disbursed"] == 777


def test_reusing_a_key_with_another_body_is_409_and_the_original_still_replays(api: Api) -> None:
    loan = api.open_loan()["loan_id"]
    path = f"/v1/loans/{loan}/repayments"
    assert (
        api.post(
            "bank",
            f"/v1/loans/{loan}/disbursements",
            {"payee": api.address("supplier"), "amount": "0.50", "purpose": 1},
        ).status_code
        == 201
    )
    first = api.post("bank", path, {"amount": "0.05"}, key="k-1")
    assert first.status_code == 201
    r = api.post("bank", path, {"amount": "0.06"}, key="k-1")
    assert r.status_code == 409 and r.json()["error"] == "Conflict"
    assert "already used for a different request" in r.json()["message"]
    again = api.post("bank", path, {"amount": "0.05"}, key="k-1")
    assert again.json()["tx_hash"] == first.json()["tx_hash"]
    # keys are per caller: another officer of the bank may use the same string
    assert api.post("bank2", path, {"amount": "0.05"}, key="k-1").json()["tx_hash"] != first.json()["tx_hash"]


def test_a_refused_write_replays_its_refusal(api: Api) -> None:
    loan = api.open_loan(principal=10)["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "0.11", "purpose": 1}
    first = api.post("bank", f"/v1/loans/{loan}/disbursements", body, key="too-much")
    assert first.status_code == 409 and first.json()["error"] == "LedgerPrincipalExceeded"
    again = api.post("bank", f"/v1/loans/{loan}/disbursements", body, key="too-much")
    assert again.status_code == 409 and again.json() == first.json()


def test_over_a_hundred_concurrent_writes_from_several_participants_all_land(api: Api) -> None:
    loan = api.open_loan(principal="100000.00")["loan_id"]
    lots = {who: api.disburse(loan, who, "1000.00") for who in ("supplier", "supplier2", "borrower")}

    def write(i: int) -> Any:
        kind = i % 4
        if kind == 3:
            return api.post(
                "bank",
                f"/v1/loans/{loan}/disbursements",
                {"payee": api.address("subsupplier"), "amount": "0.01", "purpose": 1},
                key=f"d{i}",
            )
        who = ("supplier", "supplier2", "borrower")[kind]
        return api.post(
            who,
            "/v1/payments",
            {
                "loan": loan,
                "from_lot": lots[who],
                "payee": api.address("subsupplier"),
                "amount": "0.01",
                "purpose": 1,
            },
            key=f"p{i}",
        )

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(write, range(120)))
    assert [r.status_code for r in answers] == [201] * 120, [r.text for r in answers if r.status_code != 201][
        :3
    ]
    assert len({r.json()["tx_hash"] for r in answers}) == 120
    api.post("bank", f"/v1/loans/{loan}/repayments?wait=true", {"amount": "0.01"})
    assert _count(api, "select count(*) from lots") == 3 + 120
    for who in ("supplier", "supplier2", "borrower"):
        assert api.get(who, f"/v1/lots/{lots[who]}").json()["remaining"] == 100000 - 30


# ------------------------------------------------------------------------------------------ node stopped


@pytest.fixture
def paused_api(compiled: CompiledContract, tmp_path: Path) -> Iterator[tuple[Api, LocalChain]]:
    with LocalChain() as node:
        client = ChainClient(node.url, request_timeout=1.5, tx_timeout=20)
        world = make_world(client, compiled)
        services, tokens, accounts = build_services(world, client, tmp_path)
        indexer = BackgroundIndexer(
            services.engine, ChainClient(node.url, request_timeout=1.5), world.deployment
        )
        indexer.start()
        try:
            with TestClient(create_app(services=services)) as http:
                yield Api(http, services, world, tokens, accounts, indexer), node
        finally:
            _signal(node, signal.SIGCONT)
            indexer.stop()
            services.engine.dispose()


def _signal(node: LocalChain, sig: signal.Signals) -> None:
    process = node._process  # noqa: SLF001 - the test freezes the very process it started
    assert process is not None
    os.killpg(process.pid, sig)


def test_chain_stopped_writes_503_reads_work_and_a_retry_records_once(
    paused_api: tuple[Api, LocalChain],
) -> None:
    api, node = paused_api
    loan = api.open_loan()["loan_id"]
    body = {"payee": api.address("supplier"), "amount": "0.42", "purpose": 1}
    _signal(node, signal.SIGSTOP)
    try:
        r = api.post("bank", f"/v1/loans/{loan}/disbursements", body, key="while-down")
        assert r.status_code == 503, r.text
        assert r.headers["Retry-After"] == "5" and r.json()["error"] == "ChainUnavailable"
        assert "Nothing was recorded" in r.json()["hint"]
        # reads come from the mirror
        assert api.get("bank", f"/v1/loans/{loan}").json()["disbursed"] == 0
        assert api.http.get("/v1/health").json()["chain"]["reachable"] is False
    finally:
        _signal(node, signal.SIGCONT)
    first = api.post("bank", f"/v1/loans/{loan}/disbursements?wait=true", body, key="while-down")
    assert first.status_code == 201, first.text
    again = api.post("bank", f"/v1/loans/{loan}/disbursements?wait=true", body, key="while-down")
    assert again.json()["tx_hash"] == first.json()["tx_hash"]
    assert api.get("bank", f"/v1/loans/{loan}").json()["disbursed"] == 42
    assert _count(api, "select count(*) from lots") == 1


def test_concurrent_writes_never_hold_two_pooled_connections_at_once(api: Api) -> None:
    """With as many writes in flight as the pool has connections, every write still lands: a write gives the
    request's connection back before it sends, so it never waits for a second one while holding the first
    (which, with a hundred writes and a pool of 15, timed out in QueuePool)."""
    import dataclasses

    from ledger.store.db import create_db_engine

    loan = api.open_loan()["loan_id"]
    small = create_db_engine(str(api.services.engine.url), pool_size=2, max_overflow=0, pool_timeout=5)
    services = dataclasses.replace(api.services, engine=small, owns_engine=False)
    body = {"payee": api.address("supplier"), "amount": "0.01", "purpose": 1}
    try:
        with TestClient(create_app(services=services)) as http:

            def send(_: int) -> Any:
                return http.post(
                    f"/v1/loans/{loan}/disbursements",
                    json=body,
                    headers=api.auth("bank") | {"Idempotency-Key": str(uuid.uuid4())},
                )

            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(send, range(12)))
    finally:
        small.dispose()
    assert [r.status_code for r in answers] == [201] * 12, [r.text[:200] for r in answers]
