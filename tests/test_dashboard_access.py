"""The dashboard and the API decide access the same way: every role of the cast walks the dashboard's pages
and the equivalent /v1 reads, and both show the same loans, lots, alerts, payments and documents, and
refuse the same things. Real app, chain, indexer (with the monitor) and SQLite; pages over TestClient."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from api_support import CAST, Api, dashboard_sign_in

from ledger.monitoring.monitor import Monitor

pytestmark = pytest.mark.slow

_LOT = r"0x[0-9a-f]{64}"


def _upload(api: Api, who: str, data: bytes) -> str:
    r = api.http.post("/v1/documents", content=data, headers=api.auth(who))
    assert r.status_code == 201, r.text
    return str(r.json()["hash"])


def _post(api: Api, who: str, path: str, body: dict[str, Any]) -> str:
    r = api.post(who, path + "?wait=true", body)
    assert r.status_code == 201, r.text
    return str(r.json()["lot_ids"][0])


@pytest.fixture
def world_of_two_loans(api: Api) -> dict[str, Any]:
    """Bank A's loan with a tree of payments (one outside the declared use, raising an alert) and evidence
    documents; Bank B's loan paid to a supplier who also takes part in Bank A's."""
    api.indexer.indexer.after_batch = Monitor().after_batch
    bank_doc = _upload(api, "bank", b"loan contract LN-2026-0201")
    supplier_doc = _upload(api, "supplier", b"delivery note 77")
    api.open_loan(loan_number="LN-2026-0201", principal="100000.00")
    to_supplier = _post(
        api,
        "bank",
        "/v1/loans/LN-2026-0201/disbursements",
        {"payee": api.address("supplier"), "amount": "40000.00", "purpose": 1, "evidence_hash": bank_doc},
    )
    to_borrower = api.disburse("LN-2026-0201", "borrower", "30000.00", purpose=4)
    pay = {"loan": "LN-2026-0201", "amount": "1000.00"}
    _post(
        api,
        "supplier",
        "/v1/payments",
        pay
        | {"from_lot": to_supplier, "payee": api.address("subsupplier"), "purpose": 1}
        | {"evidence_hash": supplier_doc},
    )
    _post(
        api,
        "supplier",
        "/v1/payments",
        pay | {"from_lot": to_supplier, "payee": api.address("supplier2"), "purpose": 29},
    )
    _post(
        api,
        "borrower",
        "/v1/payments",
        pay | {"from_lot": to_borrower, "payee": api.address("supplier2"), "purpose": 3},
    )
    api.open_loan("other_bank", loan_number="LN-2026-0202", principal="5000.00")
    _post(
        api,
        "other_bank",
        "/v1/loans/LN-2026-0202/disbursements",
        {"payee": api.address("supplier2"), "amount": "500.00", "purpose": 1},
    )
    deadline = time.monotonic() + 20
    while api.get("auditor", "/v1/alerts").json()["total"] < 1:
        assert time.monotonic() < deadline, "the monitor raised no alert"
        time.sleep(0.05)
    return {"loans": ["LN-2026-0201", "LN-2026-0202"], "documents": [bank_doc, supplier_doc]}


def _every_lot(api: Api, loan: str) -> list[str]:
    r = api.get("auditor", f"/v1/loans/{loan}/trail", params={"format": "flat"})
    return [lot["lot_id"] for lot in r.json()["lots"]]


def test_every_role_sees_and_is_refused_the_same_on_the_dashboard_and_the_api(
    api: Api, world_of_two_loans: dict[str, Any]
) -> None:
    loans, documents = world_of_two_loans["loans"], world_of_two_loans["documents"]
    every_lot = {loan: _every_lot(api, loan) for loan in loans}
    seen: dict[str, set[str]] = {}
    for who, _, _, _ in CAST:
        dashboard_sign_in(api, who)

        listed = api.http.get("/dashboard/loans")
        assert listed.status_code == 200, (who, listed.text)
        on_page = set(re.findall(r'href="/dashboard/loans/(LN-[0-9]{4}-[0-9]+)"', listed.text))
        items = api.get(who, "/v1/loans", params={"limit": 500}).json()["items"]
        in_api = {loan["loan_number"] for loan in items}
        assert on_page == in_api, who
        seen[who] = in_api

        for loan in loans:
            page = api.http.get(f"/dashboard/loans/{loan}")
            assert page.status_code == api.get(who, f"/v1/loans/{loan}").status_code, (who, loan)
            if page.status_code != 200:
                assert page.status_code == 404 and loan not in in_api, (who, loan)
                continue
            trail = api.get(who, f"/v1/loans/{loan}/trail", params={"format": "flat"}).json()
            rows = re.findall(rf'<tr class="[^"]*" data-lot-id="({_LOT})"', page.text)
            assert rows == [lot["lot_id"] for lot in trail["lots"]], (who, loan)

            verification = api.get(who, f"/v1/loans/{loan}/verification").status_code
            assert verification in (200, 403), (who, loan)
            assert ('id="verification"' in page.text) == (verification == 200), (who, loan)

            alerts = api.get(who, "/v1/alerts", params={"loan": loan, "limit": 500})
            assert alerts.status_code in (200, 403), (who, loan)
            assert ('id="loan-alerts"' in page.text) == (alerts.status_code == 200), (who, loan)
            if alerts.status_code == 200:
                unresolved = [a for a in alerts.json()["items"] if a["state"] != "resolved"]
                assert page.text.count('<p class="alert sev-') == len(unresolved), (who, loan)

            for lot_id in every_lot[loan]:
                detail = api.http.get(f"/dashboard/loans/{loan}", params={"lot": lot_id})
                assert detail.status_code == 200, (who, loan, lot_id)
                shown = 'id="lot-detail-title"' in detail.text
                assert shown == (api.get(who, f"/v1/lots/{lot_id}").status_code == 200), (who, lot_id)

        alerts_page = api.http.get("/dashboard/alerts", params={"state": "all"})
        alerts_api = api.get(who, "/v1/alerts", params={"limit": 500})
        assert alerts_page.status_code == alerts_api.status_code, who
        if alerts_api.status_code == 200:
            ids = [int(i) for i in re.findall(r'data-alert-id="(\d+)"', alerts_page.text)]
            assert ids == [a["id"] for a in alerts_api.json()["items"]], who

        received_page = api.http.get("/dashboard/received")
        received_api = api.get(who, "/v1/payments/received", params={"limit": 500})
        assert received_page.status_code == received_api.status_code == 200, who
        on_page = set(re.findall(rf'<tr data-lot-id="({_LOT})"', received_page.text))
        assert on_page == {lot["lot_id"] for lot in received_api.json()["items"]}, who

        for digest in documents:
            page_status = api.http.get(f"/dashboard/documents/{digest}").status_code
            assert page_status == api.get(who, f"/v1/documents/{digest}").status_code, (who, digest)

    # The walk covered every kind of answer: the whole tree, part of it, and nothing.
    assert seen["auditor"] == seen["supplier2"] == {"LN-2026-0201", "LN-2026-0202"}
    assert seen["bank"] == seen["supplier"] == {"LN-2026-0201"} and seen["outsider"] == set()


def test_only_the_servicing_lender_acknowledges_an_alert_on_the_dashboard_as_in_the_api(
    api: Api, world_of_two_loans: dict[str, Any]
) -> None:
    alert_id = api.get("auditor", "/v1/alerts").json()["items"][0]["id"]
    for who, _, _, _ in CAST:
        if who in ("bank", "bank2"):
            continue
        csrf = dashboard_sign_in(api, who)
        r = api.http.post(
            f"/dashboard/alerts/{alert_id}/acknowledge",
            data={"csrf": csrf, "back": "/dashboard/loans"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "error=" in r.headers["location"], (who, r.headers)
        assert api.post(who, f"/v1/alerts/{alert_id}/acknowledge", {}).status_code in (403, 404), who
    assert api.get("auditor", f"/v1/alerts/{alert_id}").json()["state"] == "open"

    csrf = dashboard_sign_in(api, "bank")
    r = api.http.post(
        f"/dashboard/alerts/{alert_id}/acknowledge",
        data={"csrf": csrf, "back": "/dashboard/alerts"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers
    alert = api.get("auditor", f"/v1/alerts/{alert_id}").json()
    assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", f"Bank A ({api.address('bank')})")


def test_enterprises_get_403_on_the_alerts_page_and_no_alert_panel_and_a_supplier_no_verification(
    api: Api, world_of_two_loans: dict[str, Any]
) -> None:
    """Issue 16, finding 4: the borrower and a supplier are enterprises; alerts are the banks' view."""
    for who in ("borrower", "supplier"):
        dashboard_sign_in(api, who)
        page = api.http.get("/dashboard/alerts")
        assert page.status_code == 403, who
        assert "Only lenders or auditors can see monitoring alerts" in page.text, who
        loan = api.http.get("/dashboard/loans/LN-2026-0201")
        assert loan.status_code == 200, who
        assert 'id="loan-alerts"' not in loan.text and '<p class="alert sev-' not in loan.text, who
        assert 'href="/dashboard/alerts"' not in loan.text, who  # neither the panel's link nor the menu's
    # the whole trail's verification is the lender's, the borrower's and auditors'; not a supplier's
    assert 'id="verification"' not in api.http.get("/dashboard/loans/LN-2026-0201").text
    assert api.get("supplier", "/v1/loans/LN-2026-0201/verification").status_code == 403
    dashboard_sign_in(api, "borrower")
    assert 'id="verification"' in api.http.get("/dashboard/loans/LN-2026-0201").text


def test_an_auditor_cannot_resolve_an_alert_on_the_dashboard_as_in_the_api(
    api: Api, world_of_two_loans: dict[str, Any]
) -> None:
    """Issue 16, finding 4: an auditor resolved an alert from the dashboard that the API refuses it."""
    alert_id = api.get("auditor", "/v1/alerts").json()["items"][0]["id"]
    csrf = dashboard_sign_in(api, "auditor")
    r = api.http.post(
        f"/dashboard/alerts/{alert_id}/resolve",
        data={"csrf": csrf, "back": "/dashboard/alerts", "note": "looks fine to me"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    refusal = "Only lenders can acknowledge or resolve alerts; Auditor LLP is registered as auditor."
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == [refusal]
    api_answer = api.post("auditor", f"/v1/alerts/{alert_id}/resolve", {"note": "looks fine to me"})
    assert (api_answer.status_code, api_answer.json()["message"]) == (403, refusal)
    assert api.get("auditor", f"/v1/alerts/{alert_id}").json()["state"] == "open"
    page = api.http.get("/dashboard/alerts")
    assert page.status_code == 200 and f"/dashboard/alerts/{alert_id}/resolve" not in page.text
