"""The load of `scripts/bench_cluster.py`, for locust in headless mode (never a web UI, 127.0.0.1 only).

A realistic mix of what banks, enterprises and auditors do all day, each a request kind of its own in the
figures: single payments (the most), batches of two, confirmations of received payments, trails, lists
(loans, payments received) and, rarely, the verification of a whole loan against the chain. Each simulated
user is an enterprise paying out of its own lot to the next enterprise of the ring. The set-up (tokens,
loan, lots) comes from the JSON file named by FUNDFLOW_LOAD_SETUP; amounts are yuan strings.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
from pathlib import Path
from typing import Any

from locust import HttpUser, between, task

SETUP: dict[str, Any] = json.loads(Path(os.environ["FUNDFLOW_LOAD_SETUP"]).read_text(encoding="utf-8"))
_NEXT = itertools.count()


class Enterprise(HttpUser):
    wait_time = between(0.05, 0.15)  # think time: a person or a batch job, not a tight loop

    def on_start(self) -> None:
        payers = SETUP["payers"]
        me = payers[next(_NEXT) % len(payers)]
        self.me = me
        self.payee = SETUP["addresses"][me["pays"]]
        self.auth = {"Authorization": f"Bearer {me['token']}"}
        self.auditor = {"Authorization": f"Bearer {SETUP['auditor_token']}"}
        self.loan = SETUP["loan"]

    def _key(self) -> dict[str, str]:
        return self.auth | {"Idempotency-Key": secrets.token_hex(8)}

    def _payment(self) -> dict[str, Any]:
        return {"from_lot": self.me["lot"], "payee": self.payee, "amount": "1.00", "purpose": 1}

    @task(6)
    def payment(self) -> None:
        self.client.post(
            "/v1/payments", json={"loan": self.loan} | self._payment(), headers=self._key(), name="payment"
        )

    @task(1)
    def batch(self) -> None:
        body = {"loan": self.loan, "payments": [self._payment(), self._payment()]}
        self.client.post("/v1/payments/batch", json=body, headers=self._key(), name="batch of 2")

    @task(2)
    def confirmation(self) -> None:
        r = self.client.get(
            "/v1/payments/received?confirmation=unconfirmed&limit=5", headers=self.auth, name="list received"
        )
        items = r.json().get("items", []) if r.status_code == 200 else []
        if items:
            lot = items[0]["lot_id"]
            with self.client.post(
                f"/v1/lots/{lot}/confirm",
                json={"loan": self.loan},
                headers=self._key(),
                name="confirmation",
                catch_response=True,
            ) as answer:
                if answer.status_code == 409:  # another user of the same firm confirmed it first
                    answer.success()

    @task(3)
    def trail(self) -> None:
        self.client.get(f"/v1/loans/{self.loan}/trail", headers=self.auth, name="trail")

    @task(3)
    def list_loans(self) -> None:
        self.client.get("/v1/loans?limit=20", headers=self.auth, name="list loans")

    @task(1)
    def verification(self) -> None:
        self.client.get(f"/v1/loans/{self.loan}/verification", headers=self.auditor, name="verification")
