"""The audit routes through HTTP: verification, proof bundle, report, export, and attest-after-verify, against
the real app, chain node and indexer."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api
from eth_utils import keccak

from api.errors import error_response
from ledger.audit.bundle import verify_bundle
from ledger.errors import AttestationRefusedError, BundleError, VerificationError

pytestmark = pytest.mark.slow

LOAN = "LN-2026-0001"
BASE = f"/v1/loans/{LOAN}"
ROUTES = ("verification", "bundle", "report", "export?format=csv")


@pytest.fixture
def funded(api: Api) -> dict[str, str]:
    """LN-2026-0001: 5,000.00 to the supplier, who pays 10.00 on to the sub-supplier; 1,000.00 to the
    borrower."""
    loan_id = api.open_loan(loan_number=LOAN, principal="10000.00")["loan_id"]
    supplier_lot = api.disburse(LOAN, "supplier", "5000.00")
    api.disburse(LOAN, "borrower", "1000.00", purpose=4)
    r = api.pay("supplier", LOAN, supplier_lot, "subsupplier", amount=1000)
    assert r.status_code == 201, r.text
    return {"loan_id": loan_id, "supplier_lot": supplier_lot, "child_lot": r.json()["lot_ids"][0]}


def _tamper_paid_amount(api: Api, loan_id: str, amount: int) -> Any:
    """Edit the mirrored Paid event's amount, as someone with database access could."""
    events = sa.table(
        "events",
        sa.column("loan_id"),
        sa.column("name"),
        sa.column("block_hash"),
        sa.column("block_number"),
        sa.column("log_index"),
        sa.column("args", sa.JSON),
    )
    with api.services.engine.begin() as conn:
        row = conn.execute(
            sa.select(events).where(events.c.loan_id == loan_id, events.c.name == "Paid")
        ).one()
        args = row.args if isinstance(row.args, dict) else json.loads(row.args)
        conn.execute(
            sa.update(events)
            .where(events.c.block_hash == row.block_hash, events.c.log_index == row.log_index)
            .values(args=args | {"amount": str(amount)})
        )
    return row


# ------------------------------------------------------------------------------------------ verification


@pytest.mark.parametrize("who", ["auditor", "bank"])
def test_verification_of_an_honest_trail_is_ok_for_the_auditor_and_the_lender(
    api: Api, funded: dict[str, str], who: str
) -> None:
    r = api.get(who, f"{BASE}/verification")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["problems"] == []
    assert body["loan_id"] == funded["loan_id"]
    assert [e["name"] for e in body["events"]] == ["LoanOpened", "Disbursed", "Disbursed", "Paid"]
    assert all(e["ok"] for e in body["events"]) and all(lot["ok"] for lot in body["lots"])
    assert {lot["lot_id"] for lot in body["lots"]} >= {funded["supplier_lot"], funded["child_lot"]}
    assert len(body["lots"]) == 3
    assert body["head_on_chain"] == body["head_recomputed"] == api.world.ledger.head_of(funded["loan_id"])
    block = api.services.client.get_block(body["block"]["number"])
    assert body["block"]["hash"] == block["hash"]
    assert body["trail_grew_since"] is False
    by_id = api.get(who, f"/v1/loans/{funded['loan_id']}/verification").json()
    assert by_id["head_on_chain"] == body["head_on_chain"]


def test_tampered_mirror_row_gives_200_with_ok_false_naming_the_row(api: Api, funded: dict[str, str]) -> None:
    row = _tamper_paid_amount(api, funded["loan_id"], 1001)
    r = api.get("auditor", f"{BASE}/verification")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False
    (bad,) = [e for e in body["events"] if not e["ok"]]
    assert (bad["name"], bad["block_number"], bad["log_index"]) == ("Paid", row.block_number, row.log_index)
    assert "field amount: mirror 1001, chain 1000" in bad["problems"]
    where = (
        f"event Paid at block {row.block_number} log {row.log_index}: field amount: mirror 1001, chain 1000"
    )
    assert where in body["problems"]
    assert body["head_recomputed"] != body["head_on_chain"]
    assert body["summary"].startswith(f"FAILED at block {body['block']['number']}: 3/4 events")


# ------------------------------------------------------------------------------------------ visibility


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("who", ["outsider", "other_bank"])
def test_audit_routes_answer_404_to_whoever_cannot_see_the_loan(
    api: Api, funded: dict[str, str], route: str, who: str
) -> None:
    r = api.get(who, f"{BASE}/{route}")
    assert r.status_code == 404, r.text
    name = {"outsider": "Outsider Ltd", "other_bank": "Bank B"}[who]
    assert r.json() == {
        "error": "NotFound",
        "message": f"No loan {LOAN} is visible to {name}.",
        "hint": "It does not exist, is not mirrored yet, or belongs to another organisation.",
    }


@pytest.mark.parametrize(
    ("route", "what"),
    [
        ("verification", "verification"),
        ("bundle", "proof bundle"),
        ("report", "audit report"),
        ("export?format=csv", "export"),
    ],
)
def test_audit_routes_answer_403_to_a_lot_holder_who_sees_only_part_of_the_trail(
    api: Api, funded: dict[str, str], route: str, what: str
) -> None:
    assert api.get("subsupplier", f"{BASE}/trail").json()["partial"] is True
    r = api.get("subsupplier", f"{BASE}/{route}")
    assert r.status_code == 403, r.text
    assert r.json() == {
        "error": "PermissionDenied",
        "message": f"The {what} covers the whole trail of loan {LOAN}; Sub Supplier sees only the lots it "
        "holds or paid out of.",
        "hint": "Ask the loan's lender, its borrower or an auditor; "
        "GET /v1/loans/{loan}/trail shows your part.",
    }


# ------------------------------------------------------------------------------------------ bundle


@pytest.mark.parametrize("who", ["auditor", "bank"])
def test_bundle_download_verifies_offline_against_the_nodes_block_hash(
    api: Api, funded: dict[str, str], who: str
) -> None:
    r = api.get(who, f"{BASE}/bundle")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    at = int(r.json()["header"]["number"], 16)
    assert (
        r.headers["content-disposition"] == f'attachment; filename="fundflow-bundle-{LOAN}-block-{at}.json"'
    )
    trusted = api.services.client.get_block(at)["hash"]
    proved = verify_bundle(r.content, trusted_block_hash=trusted)
    assert proved.anchored and proved.loan_id == funded["loan_id"]
    assert proved.head == api.world.ledger.head_of(funded["loan_id"])
    assert [e.name for e in proved.events] == ["LoanOpened", "Disbursed", "Disbursed", "Paid"]


def test_bundle_before_the_loan_was_opened_is_refused_with_422(api: Api, funded: dict[str, str]) -> None:
    opened = api.get("bank", BASE).json()["block_number"]
    r = api.get("auditor", f"{BASE}/bundle?block={opened - 1}")
    assert r.status_code == 422, r.text
    assert r.json() == {
        "error": "Validation",
        "message": f"Loan {LOAN} was opened in block {opened}; there is nothing to prove at block "
        f"{opened - 1}.",
        "hint": f"Pass a block at or after {opened}, or leave it out for the latest.",
    }


# ------------------------------------------------------------------------------------------ report, export


@pytest.mark.parametrize("who", ["auditor", "bank"])
def test_report_is_printable_html_whose_hash_header_matches_its_bytes(
    api: Api, funded: dict[str, str], who: str
) -> None:
    r = api.get(who, f"{BASE}/report")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-report-hash"] == "0x" + keccak(r.content).hex()
    page = r.text
    assert page.startswith("<!DOCTYPE html>") and f"loan {LOAN}" in page
    assert '<span class="verdict ok">VERIFIED</span>' in page and "<script" not in page


@pytest.mark.parametrize("who", ["auditor", "bank"])
def test_csv_export_has_one_row_per_event_each_verified(api: Api, funded: dict[str, str], who: str) -> None:
    r = api.get(who, f"{BASE}/export?format=csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    block = api.get(who, f"{BASE}/verification").json()["block"]["number"]
    assert (
        r.headers["content-disposition"] == f'attachment; filename="fundflow-trail-{LOAN}-block-{block}.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["event"] for row in rows] == ["LoanOpened", "Disbursed", "Disbursed", "Paid"]
    assert [row["verified"] for row in rows] == ["true"] * 4
    paid = rows[3]
    assert (paid["lot_id"], paid["amount"], paid["payee"]) == (
        funded["child_lot"],
        "1000",
        api.address("subsupplier"),
    )


def test_json_export_carries_the_verification_trail_and_attestations(
    api: Api, funded: dict[str, str]
) -> None:
    r = api.get("auditor", f"{BASE}/export?format=json")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"].endswith('.json"')
    body = r.json()
    assert body["ok"] is True and len(body["trail"]) == 4 and body["attestations"] == []


def test_export_in_an_unknown_format_is_422_naming_the_field(api: Api, funded: dict[str, str]) -> None:
    r = api.get("auditor", f"{BASE}/export?format=ods")
    assert r.status_code == 422, r.text
    assert r.json() == {
        "error": "Validation",
        "message": "The request is invalid: format: Input should be 'csv', 'json' or 'xlsx'",
        "hint": "Correct the fields listed.",
        "fields": [{"field": "format", "problem": "Input should be 'csv', 'json' or 'xlsx'"}],
    }


def test_openapi_documents_the_audit_routes_with_examples(api: Api) -> None:
    paths = api.http.get("/openapi.json").json()["paths"]
    for route in ("verification", "bundle", "report", "export"):
        op = paths[f"/v1/loans/{{loan}}/{route}"]["get"]
        assert op["summary"] and op["tags"] == ["audit"]
        assert any("example" in c for c in op["responses"]["200"]["content"].values()), route


# ------------------------------------------------------------------------------------------ attestation


def test_attestation_through_the_api_refuses_a_trail_that_fails_verification(
    api: Api, funded: dict[str, str]
) -> None:
    _tamper_paid_amount(api, funded["loan_id"], 1001)
    head_before = api.world.ledger.head_of(funded["loan_id"])
    block = api.get("auditor", f"{BASE}/verification").json()["block"]["number"]
    r = api.post("auditor", f"{BASE}/attestations", {"report_hash": "0x" + "44" * 32})
    assert r.status_code == 409, r.text
    assert r.json() == {
        "error": "AttestationRefused",
        "message": f"loan {funded['loan_id']} failed verification at block {block}; an auditor does not "
        "attest a trail that does not verify",
        "hint": "see `fundflow verify` (or GET /v1/loans/{loan}/verification) for what differs; rebuild the "
        "mirror if it was tampered with",
    }
    assert api.services.client.block_number() == block  # nothing was sent
    assert api.world.ledger.head_of(funded["loan_id"]) == head_before
    assert api.get("auditor", f"{BASE}/attestations").json() == []


def test_attestation_through_the_api_attests_the_verified_head_and_report(
    api: Api, funded: dict[str, str]
) -> None:
    report = api.get("auditor", f"{BASE}/report")
    digest = report.headers["x-report-hash"]
    r = api.post("auditor", f"{BASE}/attestations?wait=true", {"report_hash": digest})
    assert r.status_code == 201, r.text
    assert r.json()["mirrored"] is True
    head = api.world.ledger.head_of(funded["loan_id"])
    (attestation,) = api.get("bank", f"{BASE}/attestations").json()
    assert (attestation["head"], attestation["report_hash"]) == (head, digest)
    exported = api.get("auditor", f"{BASE}/export?format=json").json()
    assert exported["ok"] is True
    assert [(a["head"], a["report_hash"], a["current"]) for a in exported["attestations"]] == [
        (head, digest, True)
    ]


# ------------------------------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("exc", "status", "name"),
    [
        (
            VerificationError("block 9 does not exist on the node", hint="the node is behind"),
            503,
            "Verification",
        ),
        (BundleError("accountProof.proof[2]: hash mismatch", hint="retry"), 502, "Bundle"),
        (AttestationRefusedError("loan 0x01 failed verification", hint="verify"), 409, "AttestationRefused"),
    ],
)
def test_verification_errors_map_to_their_status(exc: Exception, status: int, name: str) -> None:
    r = error_response(exc)
    assert r.status_code == status
    assert json.loads(bytes(r.body)) == {"error": name, "message": str(exc.args[0]), "hint": exc.hint}  # type: ignore[attr-defined]
    assert ("retry-after" in r.headers) == (status == 503)
