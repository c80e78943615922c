"""Issue 20: a payee disputes or confirms with its own words and an evidence file, through the API and the
dashboard. The words and the file stay off chain as documents; the one hash that commits to them goes on
chain; whoever sees the lot can read them back."""

from __future__ import annotations

import re

import pytest
from api_support import Api, dashboard_sign_in
from eth_utils import keccak

from ledger.protocol.canonical import canonical_json

pytestmark = pytest.mark.slow
LOAN = "LN-2026-0001"
ZERO = "0x" + "00" * 32


def _keccak(data: bytes) -> str:
    return "0x" + keccak(data).hex()


@pytest.fixture
def lot(api: Api) -> str:
    api.open_loan(loan_number=LOAN, principal="10000.00")
    return api.disburse(LOAN, "supplier", "5000.00")


def test_a_dispute_in_words_puts_their_hash_on_chain_and_the_bank_reads_them(api: Api, lot: str) -> None:
    reason = "Invoice INV-7731 was for CNY 4,000.00, not 5,000.00. 发票金额不符。"
    r = api.post("supplier", f"/v1/lots/{lot}/dispute?wait=true", {"reason": reason})
    assert r.status_code == 201, r.text
    digest = _keccak(reason.encode("utf-8"))
    assert r.json()["events"][0]["args"]["reasonHash"] == digest
    assert api.get("bank", f"/v1/lots/{lot}").json()["confirmation_hash"] == digest
    text = api.get("bank", f"/v1/documents/{digest}")  # the lender sees the lot: it reads the words
    assert text.status_code == 200 and text.content.decode("utf-8") == reason


def test_a_dispute_with_an_evidence_file_commits_to_both_in_one_statement(api: Api, lot: str) -> None:
    upload = api.http.post("/v1/documents", content=b"%PDF-1.4 delivery note", headers=api.auth("supplier"))
    assert upload.status_code == 201, upload.text
    evidence = upload.json()["hash"]
    body = {"reason": "Short delivery: 80 of 100 units.", "evidence_hash": evidence}
    r = api.post("supplier", f"/v1/lots/{lot}/dispute?wait=true", body)
    assert r.status_code == 201, r.text
    statement = canonical_json({"kind": "dispute", "text": body["reason"], "evidence_hash": evidence})
    assert r.json()["events"][0]["args"]["reasonHash"] == _keccak(statement)
    assert api.get("bank", f"/v1/documents/{_keccak(statement)}").content == statement
    assert api.get("bank", f"/v1/documents/{evidence}").content == b"%PDF-1.4 delivery note"


def test_a_confirmation_note_becomes_its_evidence_hash(api: Api, lot: str) -> None:
    note = "Goods received in full, delivery note DN-2026-0042."
    r = api.post("supplier", f"/v1/lots/{lot}/confirm?wait=true", {"note": note})
    assert r.status_code == 201, r.text
    assert api.get("bank", f"/v1/lots/{lot}").json()["confirmation_hash"] == _keccak(note.encode())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({}, "give the reason as text"),
        ({"reason": "x", "reason_hash": "0x" + "11" * 32}, "not both"),
        ({"reason_hash": "0x" + "11" * 32, "evidence_hash": "0x" + "22" * 32}, "evidence_hash goes with"),
        ({"reason": ""}, "at least 1 character"),
    ],
)
def test_a_dispute_needs_exactly_one_form_of_reason(
    api: Api, lot: str, body: dict[str, str], problem: str
) -> None:
    r = api.post("supplier", f"/v1/lots/{lot}/dispute", body)
    assert r.status_code == 422 and problem in r.json()["message"], r.text
    assert api.get("bank", f"/v1/lots/{lot}?wait=true").json()["confirmation"] == "unconfirmed"


def test_the_dashboard_disputes_with_words_and_an_uploaded_file(api: Api, lot: str) -> None:
    csrf = dashboard_sign_in(api, "supplier")
    page = api.http.get("/dashboard/received").text
    assert 'enctype="multipart/form-data"' in page and 'type="file" name="evidence"' in page
    r = api.http.post(
        f"/dashboard/lots/{lot}/dispute",
        data={
            "csrf": csrf,
            "idem": "dash-dispute-1",
            "back": "/dashboard/received",
            "reason": "Wrong amount.",
        },
        files={"evidence": ("invoice.pdf", b"%PDF-1.4 invoice 7731", "application/pdf")},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers.get("location")
    evidence = _keccak(b"%PDF-1.4 invoice 7731")
    statement = canonical_json({"kind": "dispute", "text": "Wrong amount.", "evidence_hash": evidence})
    lot_now = api.get("bank", f"/v1/lots/{lot}?wait=true").json()
    assert (lot_now["confirmation"], lot_now["confirmation_hash"]) == ("disputed", _keccak(statement))
    assert api.get("bank", f"/v1/documents/{evidence}").content == b"%PDF-1.4 invoice 7731"
    detail = api.get("bank", f"/v1/documents/{_keccak(statement)}")
    assert detail.status_code == 200 and b"Wrong amount." in detail.content

    csrf = dashboard_sign_in(api, "bank")
    page = api.http.get(f"/dashboard/loans/{LOAN}?lot={lot}").text
    assert re.search(rf'href="/dashboard/documents/{_keccak(statement)}"', page)
