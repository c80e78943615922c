"""Issue 16, findings 2, 3 and 8, each reproduced as it was found.

2. A document is read by the organisations that uploaded it and by who sees a record its uploader attached it
   to; another party's event naming the same (public) hash grants nothing: not a second bank's 1-fen
   disbursement on its own loan, not a supplier's dispute naming it as its reason. Refused reads are 404,
   the answer for a hash with no document, so a refusal does not confirm the document is kept.
3. Loan ids are salted (lender organisation, number, random salt written before the send): the id the old
   scheme (keccak("fundflow-loan:" + number)) gives can be squatted on chain without effect; numbers are per
   lender; terms are stored only for a loan that opened.
8. Uploaded documents are attachments with `nosniff` and a sandboxing CSP, on the API and the dashboard.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api, dashboard_sign_in
from eth_utils import keccak
from transport_support import FlakyTransport

from ledger.chain.client import ChainClient
from ledger.chain.localchain import LocalChain
from ledger.store.offchain import LoanMetadata, LoanOpening

pytestmark = pytest.mark.slow

ZERO = "0x" + "00" * 32
SANDBOX = "sandbox; default-src 'none'"


@pytest.fixture
def network(chain: LocalChain) -> FlakyTransport:
    return FlakyTransport(chain.url, timeout=5.0)


@pytest.fixture
def client(chain: LocalChain, network: FlakyTransport) -> ChainClient:
    """Overrides conftest's: the API's writes go over `network`, which fails only when a test says so."""
    return ChainClient(chain.url, transport=network, tx_timeout=20.0)


def _error(r: Any, status: int, name: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == name, body
    return dict(body)


def _upload(api: Api, who: str, data: bytes, **headers: str) -> str:
    r = api.http.post("/v1/documents", content=data, headers=api.auth(who) | headers)
    assert r.status_code == 201, r.text
    return str(r.json()["hash"])


def _write(api: Api, who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(who, path + "?wait=true", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _readers(api: Api, digest: str, cast: list[str]) -> dict[str, int]:
    return {who: api.get(who, f"/v1/documents/{digest}").status_code for who in cast}


CAST = ["bank", "bank2", "other_bank", "borrower", "supplier", "supplier2", "subsupplier", "auditor"]


# ------------------------------------------------------------------------------------------ finding 2


def test_a_second_banks_one_fen_disbursement_naming_an_invoice_hash_does_not_open_the_invoice(
    api: Api,
) -> None:
    invoice = b"%PDF-1.7 Bank A invoice 2026-0042: 120 t of steel, Supplier One"
    digest = _upload(api, "bank", invoice, **{"Content-Type": "application/pdf"})
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    lot = _write(
        api,
        "bank",
        "/v1/loans/LN-2026-0001/disbursements",
        {"payee": api.address("supplier"), "amount": "5000.00", "purpose": 1, "evidence_hash": digest},
    )["lot_ids"][0]
    # The attack: Bank B names the public hash in a 1-fen disbursement on its own loan, to its own supplier.
    api.open_loan("other_bank", loan_number="LN-2026-0009", principal="100.00")
    _write(
        api,
        "other_bank",
        "/v1/loans/LN-2026-0009/disbursements",
        {"payee": api.address("supplier2"), "amount": "0.01", "purpose": 1, "evidence_hash": digest},
    )
    events = [r["event"] for r in api.get("bank", f"/v1/documents/{digest}/verify").json()["recorded"]]
    assert events == ["Disbursed", "Disbursed"]  # both events name the hash on chain

    for who in ("other_bank", "supplier2"):
        body = _error(api.get(who, f"/v1/documents/{digest}"), 404, "NotFound")
        assert (
            body["message"]
            == f"No document {digest} is visible to {'Bank B' if who == 'other_bank' else 'Supplier Two'}."
        )
        _error(api.get(who, f"/v1/documents/{digest}/verify"), 404, "NotFound")
    # Who sees the disbursement Bank A attached it to still reads it: its bank, the payee, the borrower
    # (whole trail), the auditor.
    assert _readers(api, digest, CAST) == {
        "bank": 200,
        "bank2": 200,
        "other_bank": 404,
        "borrower": 200,
        "supplier": 200,
        "supplier2": 404,
        "subsupplier": 404,
        "auditor": 200,
    }
    assert api.get("supplier", f"/v1/documents/{digest}").content == invoice
    assert api.get("supplier", f"/v1/lots/{lot}").json()["evidence_hash"] == digest


def test_a_suppliers_dispute_naming_another_loans_document_does_not_open_it(api: Api) -> None:
    # Bank B's confidential credit memo, attached to its disbursement to Supplier Two.
    memo = b"Bank B credit memo: Supplier Two's limit and collateral"
    digest = _upload(api, "other_bank", memo)
    api.open_loan("other_bank", loan_number="LN-2026-0009", principal="100.00")
    _write(
        api,
        "other_bank",
        "/v1/loans/LN-2026-0009/disbursements",
        {"payee": api.address("supplier2"), "amount": "10.00", "purpose": 1, "evidence_hash": digest},
    )
    # The attack: Supplier One disputes a payment it received on Bank A's loan, naming the memo's hash.
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    lot = api.disburse("LN-2026-0001", "supplier", "5000.00")
    _write(api, "supplier", f"/v1/lots/{lot}/dispute", {"reason_hash": digest})
    assert api.get("supplier", f"/v1/lots/{lot}").json()["confirmation"] == "disputed"

    body = _error(api.get("supplier", f"/v1/documents/{digest}"), 404, "NotFound")
    assert body["message"] == f"No document {digest} is visible to Supplier One."
    # Nor does the dispute open it to those who see Supplier One's lot (Bank A); the borrower reads it as
    # the borrower of Bank B's loan (it sees that loan's whole trail), not through the dispute.
    assert _readers(api, digest, CAST) == {
        "bank": 404,
        "bank2": 404,
        "other_bank": 200,
        "borrower": 200,
        "supplier": 404,
        "supplier2": 200,
        "subsupplier": 404,
        "auditor": 200,
    }


def test_a_document_is_read_by_each_organisation_that_uploaded_it_and_through_its_own_attachments(
    api: Api,
) -> None:
    """The same bytes from two organisations: each reads them back; Supplier One's attachment opens them to
    whom sees its payment, not to whom sees only Bank B's upload."""
    note = b"delivery note 77"
    assert _upload(api, "supplier", note) == _upload(api, "other_bank", note)
    digest = "0x" + keccak(note).hex()
    assert _readers(api, digest, ["supplier", "other_bank", "subsupplier", "bank"]) == {
        "supplier": 200,
        "other_bank": 200,
        "subsupplier": 404,
        "bank": 404,
    }
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    lot = api.disburse("LN-2026-0001", "supplier", "5000.00")
    _write(
        api,
        "supplier",
        "/v1/payments",
        {
            "loan": "LN-2026-0001",
            "from_lot": lot,
            "payee": api.address("subsupplier"),
            "amount": "7.00",
            "purpose": 1,
            "evidence_hash": digest,
        },
    )
    assert _readers(api, digest, ["subsupplier", "bank", "supplier2"]) == {
        "subsupplier": 200,
        "bank": 200,
        "supplier2": 404,
    }


# ------------------------------------------------------------------------------------------ finding 8


def test_an_uploaded_html_page_is_served_as_a_sandboxed_attachment_on_the_api_and_the_dashboard(
    api: Api,
) -> None:
    page = b'<html><head><meta http-equiv="refresh" content="0;url=https://attacker.example/"></head></html>'
    digest = _upload(api, "supplier", page, **{"Content-Type": "text/html", "X-Filename": 'inv"oice.html'})
    unnamed = _upload(api, "supplier", page + b" ", **{"Content-Type": "text/html"})
    served = [api.get("supplier", f"/v1/documents/{digest}"), api.get("supplier", f"/v1/documents/{unnamed}")]
    dashboard_sign_in(api, "supplier")
    served += [
        api.http.get(f"/dashboard/documents/{digest}"),
        api.http.get(f"/dashboard/documents/{unnamed}"),
    ]
    for r, name in zip(served, ["inv_oice.html", unnamed] * 2, strict=True):
        assert r.status_code == 200, r.text
        assert r.content.startswith(b"<html>")
        assert r.headers["content-disposition"].startswith(f'attachment; filename="{name}"')
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"] == SANDBOX
    assert served[0].headers["content-disposition"] == (
        "attachment; filename=\"inv_oice.html\"; filename*=UTF-8''inv%22oice.html"
    )


# ------------------------------------------------------------------------------------------ finding 3


def _old_scheme_id(number: str) -> str:
    return "0x" + keccak(text=f"fundflow-loan:{number}").hex()


def _rows(api: Api, table: Any) -> list[Any]:
    with api.services.engine.connect() as conn:
        return list(conn.execute(sa.select(table)))


def test_a_squatter_opening_the_predictable_id_on_chain_neither_blocks_the_loan_nor_reads_its_terms(
    api: Api,
) -> None:
    squatted = _old_scheme_id("LN-2026-0001")
    year = time.gmtime().tm_year
    # Bank B opens, directly on chain, the ids the old scheme would give Bank A's next loans.
    for number in sorted({"LN-2026-0001", f"LN-{year}-0001", f"LN-{year}-0002"}):
        api.services.ledger.open_loan(
            api.accounts["other_bank"],
            loan_id=_old_scheme_id(number),
            borrower=api.address("borrower"),
            borrower_ref="0x" + "ab" * 32,
            principal=100,
            currency="CNY",
            allowed_purposes=[1],
            maturity=int(time.time()) + 86400,
            terms_hash="0x" + "cd" * 32,
        )
    terms = {
        "repayment_schedule": [{"due": "2027-06-30", "amount": "10000.00"}],
        "approval_threshold": "7.00",
    }
    opened = api.open_loan(loan_number="LN-2026-0001", principal="10000.00", terms=terms)
    auto = api.open_loan(principal="10000.00", terms=terms)

    next_number = f"LN-{year}-0002" if year == 2026 else f"LN-{year}-0001"
    assert opened["loan_number"] == "LN-2026-0001" and auto["loan_number"] == next_number
    assert opened["loan_id"] != squatted and auto["loan_id"] != _old_scheme_id(next_number)
    assert api.get("bank", "/v1/loans/LN-2026-0001/terms").json()["terms"]["approval_threshold"] == 700
    # The squatter's loan has no terms row, and the victim's number does not lead the squatter anywhere.
    assert api.get("other_bank", f"/v1/loans/{squatted}/terms").json()["terms"] is None
    _error(api.get("other_bank", "/v1/loans/LN-2026-0001/terms"), 404, "NotFound")
    _error(api.get("other_bank", f"/v1/loans/{opened['loan_id']}/terms"), 404, "NotFound")
    assert {r.loan_id for r in _rows(api, LoanMetadata.__table__)} == {opened["loan_id"], auto["loan_id"]}
    assert _rows(api, LoanOpening.__table__) == []


def test_a_refused_opening_leaves_no_terms_and_frees_its_number(api: Api) -> None:
    body = {
        "loan_number": "LN-2026-0003",
        "borrower": api.address("borrower"),
        "principal": "10.00",
        "allowed_purposes": [1],
        "maturity": int(time.time()) - 86400,  # the contract refuses a maturity in the past
        "terms": {"repayment_schedule": [{"due": "2027-06-30", "amount": "10.00"}]},
    }
    refused = api.post("bank", "/v1/loans", body)
    assert refused.status_code in (409, 422), refused.text
    assert refused.json()["error"].startswith("Ledger")
    assert _rows(api, LoanMetadata.__table__) == [] and _rows(api, LoanOpening.__table__) == []
    assert api.open_loan(loan_number="LN-2026-0003")["loan_number"] == "LN-2026-0003"


def test_two_banks_each_have_loan_number_one_and_each_resolves_to_its_own(api: Api) -> None:
    mine = api.open_loan(loan_number="LN-2026-0001", principal="100.00")
    theirs = api.open_loan("other_bank", loan_number="LN-2026-0001", principal="200.00")
    assert mine["loan_id"] != theirs["loan_id"]
    assert api.get("bank", "/v1/loans/LN-2026-0001").json()["loan_id"] == mine["loan_id"]
    assert api.get("bank2", "/v1/loans/LN-2026-0001").json()["loan_id"] == mine["loan_id"]
    assert api.get("other_bank", "/v1/loans/LN-2026-0001").json()["loan_id"] == theirs["loan_id"]
    # Writes by number go to the caller's own loan.
    done = _write(
        api,
        "other_bank",
        "/v1/loans/LN-2026-0001/disbursements",
        {"payee": api.address("supplier2"), "amount": "1.00", "purpose": 1},
    )
    assert done["loan_id"] == theirs["loan_id"]
    # The next free number is per bank too.
    assert api.open_loan("other_bank", loan_number=None)["loan_number"].endswith("-0001") is False
    # An auditor sees both: the number is ambiguous for it, and the error says to use the id.
    body = _error(api.get("auditor", "/v1/loans/LN-2026-0001"), 422, "Validation")
    assert body["message"] == "Loan number LN-2026-0001 is used by 2 banks."
    assert body["hint"] == "Pass the loan's 0x-prefixed 32-byte id instead."
    assert api.get("auditor", f"/v1/loans/{theirs['loan_id']}").json()["principal"] == 20000
    # Whoever sees neither gets the same answer for a used and an unused number: nothing says which exist.
    for number in ("LN-2026-0001", "LN-2026-0077"):
        body = _error(api.get("outsider", f"/v1/loans/{number}"), 404, "NotFound")
        assert body["message"] == f"No loan {number} is visible to Outsider Ltd."


def test_a_retried_opening_whose_answer_was_lost_reuses_its_salted_id_and_opens_one_loan(
    api: Api, network: FlakyTransport
) -> None:
    body = {
        "loan_number": "LN-2026-0005",
        "borrower": api.address("borrower"),
        "principal": "10.00",
        "allowed_purposes": [1],
        "maturity": int(time.time()) + 86400,
        "terms": {"repayment_schedule": [{"due": "2027-06-30", "amount": "10.00"}]},
    }
    network.fail_next_send = "drop"
    lost = api.post("bank", "/v1/loans?wait=true", body, key="open-5")
    assert lost.status_code == 503, lost.text
    (pending,) = _rows(api, LoanOpening.__table__)  # the salted id is kept for the retry
    assert _rows(api, LoanMetadata.__table__) == []

    retry = api.post("bank", "/v1/loans?wait=true", body, key="open-5")

    assert retry.status_code == 201, retry.text
    assert retry.json()["loan_id"] == pending.loan_id
    assert _rows(api, LoanOpening.__table__) == []
    assert [r.loan_id for r in _rows(api, LoanMetadata.__table__)] == [pending.loan_id]
    assert api.get("bank", "/v1/loans").json()["total"] == 1
