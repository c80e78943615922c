"""The monitoring API: alerts with filters, pagination and per-participant visibility; acknowledge and
resolve; the classification suggestion and applying a class with a reason. Real app, chain, indexer (with
the monitor hooked in) and SQLite."""

from __future__ import annotations

import time
from typing import Any

import pytest
from api_support import Api

from ledger.monitoring.classification import reason_hash
from ledger.monitoring.monitor import Monitor

pytestmark = pytest.mark.slow


@pytest.fixture
def monitored(api: Api) -> Api:
    api.indexer.indexer.after_batch = Monitor().after_batch
    return api


def _wait_for_alerts(api: Api, n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        body = api.get("auditor", "/v1/alerts").json()
        if body["total"] >= n:
            return list(body["items"])
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


def test_alerts_are_listed_filtered_and_scoped_to_the_callers_bank(monitored: Api) -> None:
    api = monitored
    loan = api.open_loan(loan_number="LN-2026-0101", principal="10000.00")["loan_id"]
    other = api.open_loan("other_bank", loan_number="LN-2026-0102", principal="10000.00")["loan_id"]
    api.disburse("LN-2026-0101", "supplier", "1000.00", purpose=29)  # securities: prohibited
    api.disburse("LN-2026-0101", "supplier", "1000.00", purpose=9)  # not among 1, 3, 4
    r = api.post(
        "other_bank",
        f"/v1/loans/{other}/disbursements?wait=true",
        {"payee": api.address("supplier"), "amount": "500.00", "purpose": 30},
    )
    assert r.status_code == 201, r.text
    _wait_for_alerts(api, 3)
    mine = api.get("bank", "/v1/alerts").json()
    assert mine["total"] == 2 and {a["loan_id"] for a in mine["items"]} == {loan}
    assert api.get("other_bank", "/v1/alerts").json()["total"] == 1
    critical = api.get("bank", "/v1/alerts", params={"severity": "critical", "loan": "LN-2026-0101"}).json()
    assert [a["rule"] for a in critical["items"]] == ["prohibited_use"]
    assert critical["items"][0]["explanation"].startswith("The lender disbursed CNY 1,000.00 to ")
    page = api.get("auditor", "/v1/alerts", params={"limit": 1, "offset": 1}).json()
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (3, 1, 1, 1)
    assert api.get("supplier", "/v1/alerts").status_code == 403
    foreign = api.get("other_bank", f"/v1/alerts/{critical['items'][0]['id']}")
    assert foreign.status_code == 404


def test_acknowledge_and_resolve_through_the_api(monitored: Api) -> None:
    api = monitored
    api.open_loan(loan_number="LN-2026-0103", principal="10000.00")
    api.disburse("LN-2026-0103", "supplier", "1000.00", purpose=28)
    alert_id = _wait_for_alerts(api, 1)[0]["id"]
    assert api.post("auditor", f"/v1/alerts/{alert_id}/acknowledge", {}).status_code == 403
    assert api.post("other_bank", f"/v1/alerts/{alert_id}/acknowledge", {}).status_code == 404
    seen = api.post("bank", f"/v1/alerts/{alert_id}/acknowledge", {})
    assert seen.status_code == 200, seen.text
    assert seen.json()["state"] == "acknowledged"
    assert seen.json()["acknowledged_by"] == f"Bank A ({api.address('bank')})"
    assert api.post("bank2", f"/v1/alerts/{alert_id}/resolve", {"note": ""}).status_code == 422
    done = api.post("bank2", f"/v1/alerts/{alert_id}/resolve", {"note": "funds recalled from the broker"})
    assert done.status_code == 200, done.text
    assert (done.json()["state"], done.json()["resolved_by"]) == (
        "resolved",
        f"Bank A ({api.address('bank2')})",
    )
    listed = api.get("bank", "/v1/alerts", params={"state": "resolved"}).json()
    assert [a["id"] for a in listed["items"]] == [alert_id]


def test_classification_suggestion_and_applying_a_class_with_a_reason(monitored: Api) -> None:
    api = monitored
    loan = api.open_loan(loan_number="LN-2026-0104", principal="10000.00")["loan_id"]
    api.disburse("LN-2026-0104", "supplier", "1000.00", purpose=31)
    _wait_for_alerts(api, 1)
    s = api.get("bank", f"/v1/loans/{loan}/classification-suggestion")
    assert s.status_code == 200, s.text
    body = s.json()
    assert (body["risk_class"], body["label"], body["current_class"]) == (1, "关注 (special mention)", 0)
    assert body["reasons"][0].startswith("[bank policy] unresolved critical alert #")
    assert (body["floor_class"], body["criteria"][0]["kind"]) == (0, "policy")  # policy, not the rule
    assert api.get("supplier", f"/v1/loans/{loan}/classification-suggestion").status_code == 403
    refused = api.post("bank", f"/v1/loans/{loan}/classification", {"risk_class": "substandard"})
    assert refused.status_code == 422, refused.text
    assert "a written reason is required" in refused.json()["message"]
    reason = "Borrower diverted funds to repay another bank; management changed."
    r = api.post(
        "bank",
        f"/v1/loans/{loan}/classification",
        {"risk_class": "substandard", "reason": reason},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["risk_class"], r.json()["suggested_class"]) == ("proposed", 2, 1)
    r = api.post(
        "bank2", f"/v1/classification-proposals/{r.json()['id']}/approve?wait=true", {}, key="classify-0104"
    )
    assert r.status_code == 201, r.text
    assert (r.json()["risk_class"], r.json()["suggested_class"], r.json()["reason_hash"]) == (
        2,
        1,
        reason_hash(reason),
    )
    records = api.get("bank", f"/v1/loans/{loan}/classifications").json()
    assert [(c["risk_class"], c["reason_hash"]) for c in records] == [(2, reason_hash(reason))]
