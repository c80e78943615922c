"""Every route through HTTP: success, each error and the role matrix, against the real app, chain, indexer."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import CAST, Api

from ledger.store.offchain import terms_hash

pytestmark = pytest.mark.slow
ZERO = "0x" + "00" * 32


def _error(r: Any, status: int, name: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == name, body
    assert body["message"] and "hint" in body
    return dict(body)


@pytest.fixture
def funded(api: Api) -> dict[str, str]:
    """LN-2026-0001 with a lot at the supplier (5,000.00) and one at the borrower (1,000.00)."""
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    return {
        "supplier_lot": api.disburse("LN-2026-0001", "supplier", "5000.00"),
        "borrower_lot": api.disburse("LN-2026-0001", "borrower", "1000.00", purpose=4),
    }


# ------------------------------------------------------------------------------------------ health, auth


def test_health_reports_chain_and_indexer_without_a_token(api: Api) -> None:
    r = api.http.get("/v1/health")
    assert r.status_code == 200
    body = r.json()
    assert body["chain"]["reachable"] is True and body["indexer"]["initialized"] is True
    assert body["contract"] == api.world.deployment.address


def test_requests_without_or_with_an_unknown_token_get_401(api: Api) -> None:
    assert _error(api.http.get("/v1/loans"), 401, "Authentication")
    r = api.http.get("/v1/loans", headers={"Authorization": "Bearer ff_nope"})
    assert _error(r, 401, "Authentication")["message"] == "The API token is unknown or has been revoked."
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_me_and_participants(api: Api) -> None:
    me = api.get("supplier", "/v1/participants/me").json()
    assert (me["name"], me["role"], me["address"]) == ("Supplier One", "enterprise", api.address("supplier"))
    names = {p["name"] for p in api.get("auditor", "/v1/participants").json()}
    assert names == {name for _, name, _, _ in CAST}


def test_openapi_has_examples_and_docs_are_served(api: Api) -> None:
    assert api.http.get("/docs").status_code == 200
    spec = api.http.get("/openapi.json").json()
    assert "LedgerInsufficientFunds" in str(spec["paths"]["/v1/payments"]["post"]["responses"]["409"])
    assert spec["components"]["schemas"]["OpenLoanRequest"]["examples"]


# ------------------------------------------------------------------------------------------ loans


def test_open_loan_takes_a_decimal_string_and_hashes_the_terms(api: Api) -> None:
    terms = {"approval_threshold": "500.00", "counterparties": [api.address("supplier")]}
    out = api.open_loan(loan_number="LN-2026-0007", principal="1234.56", terms=terms)
    loan = api.get("bank", "/v1/loans/LN-2026-0007").json()
    assert loan["principal"] == 123456 and loan["loan_number"] == "LN-2026-0007"
    assert loan["loan_id"] == out["loan_id"] and out["mirrored"] is True
    got = api.get("bank", f"/v1/loans/{out['loan_id']}/terms").json()
    assert got["matches_chain"] is True and got["terms_hash"] == loan["terms_hash"] == terms_hash(
        got["terms"]
    )
    assert got["terms"]["approval_threshold"] == 50000


def test_open_loan_assigns_a_number_when_none_is_given(api: Api) -> None:
    out = api.open_loan()
    assert out["loan_number"].startswith("LN-") and out["loan_number"].endswith("-0001")


@pytest.mark.parametrize(
    ("principal", "problem"),
    [
        (1234.5, 'not numbers (a float loses cents): write "principal": "1234.50"'),
        (1e5, "decimal strings in yuan, not numbers"),
        ("1e5", "is not a decimal amount"),
        ("12.345", "is not a decimal amount"),
        ("-5", "is not a decimal amount"),
        ("0.00", "greater than zero"),
        ("184467440737095516.16", "larger than the ledger can record"),  # 2**64 fen
        (1000, 'write "principal": "10.00" for CNY 10.00, or "principal": "1000.00" for CNY 1,000.00'),
    ],
)
def test_open_loan_refuses_bad_amounts_with_the_field_named(api: Api, principal: Any, problem: str) -> None:
    r = api.post(
        "bank",
        "/v1/loans",
        {
            "borrower": api.address("borrower"),
            "principal": principal,
            "allowed_purposes": [1],
            "maturity": "2099-01-01",
        },
    )
    body = _error(r, 422, "Validation")
    assert body["fields"][0]["field"] == "principal" and problem in body["fields"][0]["problem"]


def test_open_loan_refuses_a_taken_loan_number(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0002")
    r = api.post(
        "bank",
        "/v1/loans",
        {
            "loan_number": "LN-2026-0002",
            "borrower": api.address("borrower"),
            "principal": "0.05",
            "allowed_purposes": [1],
            "maturity": "2099-01-01",
        },
    )
    assert _error(r, 409, "Conflict")["message"] == "Loan number LN-2026-0002 is already taken."


def test_open_loan_with_past_maturity_is_the_contracts_422(api: Api) -> None:
    r = api.post(
        "bank",
        "/v1/loans",
        {"borrower": api.address("borrower"), "principal": "0.05", "allowed_purposes": [1], "maturity": 1000},
    )
    body = _error(r, 422, "LedgerMaturityInPast")
    assert body["args"]["maturity"] == 1000 and "already in the past" in body["message"]


def test_loans_list_filters_and_pages(api: Api) -> None:
    for _ in range(3):
        api.open_loan()
    page = api.get("bank", "/v1/loans", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    assert api.get("bank", "/v1/loans", params={"status": 2}).json()["total"] == 0
    assert api.get("other_bank", "/v1/loans").json()["total"] == 0
    assert _error(api.get("bank", "/v1/loans/LN-2026-9999"), 404, "NotFound")
    assert _error(api.get("bank", "/v1/loans/not-a-loan"), 422, "Validation")


def test_disburse_beyond_principal_is_409_with_a_sentence(api: Api, funded: dict[str, str]) -> None:
    r = api.post(
        "bank",
        "/v1/loans/LN-2026-0001/disbursements",
        {"payee": api.address("supplier"), "amount": "4000.01", "purpose": 1},
    )
    body = _error(r, 409, "LedgerPrincipalExceeded")
    assert body["args"]["undisbursed"] == 400000 and body["args"]["requested"] == 400001
    assert body["message"] == (
        "This disbursement of 4,000.01 would exceed the loan's principal: only 4,000.00 is left to disburse."
    )


@pytest.mark.parametrize(
    ("who", "status", "error"),
    [
        ("bank", 201, None),
        ("bank2", 201, None),
        # loan numbers are per lender: the other bank has no LN-2026-0001 (by id it is a 403, below)
        ("other_bank", 404, "NotFound"),
        ("borrower", 403, "PermissionDenied"),
        ("supplier", 403, "PermissionDenied"),
        ("auditor", 403, "PermissionDenied"),
    ],
)
def test_disburse_role_matrix(
    api: Api, funded: dict[str, str], who: str, status: int, error: str | None
) -> None:
    r = api.post(
        who,
        "/v1/loans/LN-2026-0001/disbursements",
        {"payee": api.address("supplier"), "amount": "0.01", "purpose": 1},
    )
    assert r.status_code == status, r.text
    if error:
        assert r.json()["error"] == error


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("bank", 201),
        ("other_bank", 201),
        ("borrower", 403),
        ("supplier", 403),
        ("auditor", 403),
        ("outsider", 403),
    ],
)
def test_open_loan_role_matrix(api: Api, who: str, status: int) -> None:
    r = api.post(
        who,
        "/v1/loans",
        {
            "borrower": api.address("borrower"),
            "principal": "0.05",
            "allowed_purposes": [1],
            "maturity": "2099-01-01",
        },
    )
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["message"] == (
            f"Only lenders can open loans; {dict((a, n) for a, n, _, _ in CAST)[who]} is registered as "
            f"{dict((a, role) for a, _, role, _ in CAST)[who]}."
        )


@pytest.mark.parametrize(
    ("who", "sees"),
    [
        ("bank", True),
        ("bank2", True),
        ("other_bank", False),
        ("borrower", True),
        ("supplier", True),
        ("supplier2", False),
        ("subsupplier", False),
        ("auditor", True),
        ("outsider", False),
    ],
)
def test_loan_visibility_role_matrix(api: Api, funded: dict[str, str], who: str, sees: bool) -> None:
    for path in (
        "/v1/loans/LN-2026-0001",
        "/v1/loans/LN-2026-0001/trail",
        "/v1/loans/LN-2026-0001/repayments",
    ):
        r = api.get(who, path)
        # Issue 16: repayments are the borrower's risk file; a supplier sees the loan but not them (403).
        refused = who == "supplier" and path.endswith("/repayments")
        assert r.status_code == (403 if refused else 200 if sees else 404), (path, r.text)
    assert api.get(who, "/v1/loans").json()["total"] == (1 if sees else 0)


def test_trail_shows_the_tree_flags_and_partial_view(api: Api, funded: dict[str, str]) -> None:
    r = api.pay("supplier", "LN-2026-0001", funded["supplier_lot"], "subsupplier", "100.00")
    assert r.status_code == 201, r.text
    r = api.pay("supplier", "LN-2026-0001", funded["supplier_lot"], "supplier2", "50.00", purpose=29)
    assert r.status_code == 201, r.text
    trail = api.get("auditor", "/v1/loans/LN-2026-0001/trail").json()
    assert trail["lot_count"] == 4 and trail["undeclared_use"] == 1 and trail["partial"] is False
    root = next(lot for lot in trail["lots"] if lot["lot_id"] == funded["supplier_lot"])
    assert [c["amount"] for c in root["children"]] == [10000, 5000]
    assert root["remaining"] == 500000 - 15000 and root["holder_name"] == "Supplier One"
    assert [c["declared_use"] for c in root["children"]] == [True, False]
    sub = api.get("subsupplier", "/v1/loans/LN-2026-0001/trail").json()
    assert sub["partial"] is True and sub["lot_count"] == 1


# ------------------------------------------------------------------------------------------ payments, lots


def test_pay_errors_come_from_the_contract_with_their_arguments(api: Api, funded: dict[str, str]) -> None:
    lot = funded["supplier_lot"]
    body = _error(
        api.pay("supplier", "LN-2026-0001", lot, "subsupplier", "5000.01"), 409, "LedgerInsufficientFunds"
    )
    assert body["args"] == {"lotId": lot, "remaining": 500000, "requested": 500001}
    body = _error(api.pay("supplier2", "LN-2026-0001", lot, "subsupplier", 1), 403, "LedgerNotLotSpender")
    assert body["args"]["account"] == api.address("supplier2")
    assert _error(api.pay("outsider", "LN-2026-0001", lot, "subsupplier", 1), 403, "LedgerNotLotSpender")
    assert _error(api.pay("auditor", "LN-2026-0001", lot, "subsupplier", 1), 403, "PermissionDenied")
    assert _error(
        api.pay("supplier", "LN-2026-0001", ZERO[:-1] + "1", "subsupplier", 1), 404, "LedgerLotNotFound"
    )
    # the servicing lender may spend a lot too
    assert api.pay("bank", "LN-2026-0001", lot, "subsupplier", 1).status_code == 201


def test_pay_batch_records_every_payment(api: Api, funded: dict[str, str]) -> None:
    payments = [
        {"from_lot": funded["supplier_lot"], "payee": api.address(p), "amount": f"1.{i:02d}", "purpose": 1}
        for i, p in enumerate(["subsupplier", "supplier2", "subsupplier"])
    ]
    r = api.post("supplier", "/v1/payments/batch?wait=true", {"loan": "LN-2026-0001", "payments": payments})
    assert r.status_code == 201, r.text
    assert len(r.json()["lot_ids"]) == 3 and [e["name"] for e in r.json()["events"]] == ["Paid"] * 3
    received = api.get("subsupplier", "/v1/payments/received").json()
    assert received["total"] == 2 and {i["amount"] for i in received["items"]} == {100, 102}
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": []})
    assert _error(r, 422, "Validation")["fields"][0]["field"] == "payments"


def test_confirm_and_dispute_by_the_payee_only(api: Api, funded: dict[str, str]) -> None:
    lot = api.pay("supplier", "LN-2026-0001", funded["supplier_lot"], "subsupplier", 10).json()["lot_ids"][0]
    # Dispute first, then confirm (which withdraws the dispute): nothing may follow a confirmation (issue 16).
    r = api.post("subsupplier", f"/v1/lots/{lot}/dispute?wait=true", {"reason_hash": "0x" + "cd" * 32})
    assert r.status_code == 201, r.text
    assert api.get("supplier", f"/v1/lots/{lot}").json()["confirmation"] == "disputed"
    assert (
        api.get("subsupplier", "/v1/payments/received", params={"confirmation": "disputed"}).json()["total"]
        == 1
    )
    r = api.post("subsupplier", f"/v1/lots/{lot}/confirm?wait=true", {"evidence_hash": "0x" + "ab" * 32})
    assert r.status_code == 201, r.text
    assert api.get("subsupplier", f"/v1/lots/{lot}").json()["confirmation"] == "confirmed"
    assert _error(api.post("supplier2", f"/v1/lots/{lot}/confirm", {}), 403, "PermissionDenied")
    assert _error(api.post("bank", f"/v1/lots/{lot}/confirm", {}), 403, "PermissionDenied")
    assert _error(api.get("supplier2", f"/v1/lots/{lot}"), 404, "NotFound")
    assert _error(api.post("subsupplier", f"/v1/lots/{ZERO}/confirm", {}), 404, "NotFound")


# ------------------------------------------------------------------------------------------ loan records


def test_repay_classify_collateral_attest(api: Api, funded: dict[str, str]) -> None:
    base = "/v1/loans/LN-2026-0001"
    assert api.post("bank", f"{base}/repayments?wait=true", {"amount": "100.00"}).status_code == 201
    body = _error(
        api.post("bank", f"{base}/repayments", {"amount": "6000.00"}),
        409,
        "LedgerRepaymentExceedsOutstanding",
    )
    assert body["args"]["outstanding"] == 590000
    assert _error(api.post("supplier", f"{base}/repayments", {"amount": "0.01"}), 403, "PermissionDenied")
    assert _error(api.post("other_bank", f"{base}/repayments", {"amount": "0.01"}), 404, "NotFound")
    by_id = "/v1/loans/" + api.get("bank", base).json()["loan_id"]
    assert _error(api.post("other_bank", f"{by_id}/repayments", {"amount": "0.01"}), 403, "PermissionDenied")
    assert api.get("borrower", f"{base}/repayments").json()[0]["amount"] == 10000

    # one way to classify: propose with a written reason, a second account of the bank approves
    gone = api.post("bank", f"{base}/classifications", {"risk_class": "substandard", "reason_hash": ZERO})
    assert gone.status_code == 405  # the bare reason-hash route is gone
    r = api.post(
        "bank",
        f"{base}/classification",
        {"risk_class": "substandard", "reason": "Main customer insolvent; receivables at risk."},
    )
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert (proposal["state"], proposal["risk_class"], proposal["proposed_by"]) == (
        "proposed",
        2,
        api.address("bank"),
    )
    assert _error(
        api.post("bank", f"/v1/classification-proposals/{proposal['id']}/approve", {}),
        403,
        "PermissionDenied",
    )
    assert _error(
        api.post("other_bank", f"/v1/classification-proposals/{proposal['id']}/approve", {}), 404, "NotFound"
    )
    r = api.post("bank2", f"/v1/classification-proposals/{proposal['id']}/approve?wait=true", {})
    assert r.status_code == 201, r.text
    assert api.get("auditor", base).json()["risk_class"] == 2
    listed = api.get("bank", f"{base}/classification-proposals").json()
    assert (listed[0]["state"], listed[0]["decided_by"]) == ("approved", api.address("bank2"))
    # A proposal number past what the database stores is refused as input, not a 500 (schema fuzzing).
    for number in ("10057900535039787008", "0"):
        refused = api.post("bank2", f"/v1/classification-proposals/{number}/approve", {})
        assert _error(refused, 422, "Validation")
    assert _error(
        api.post("bank", f"{base}/classification", {"risk_class": "great", "reason": "x"}),
        422,
        "Validation",
    )

    r = api.post(
        "bank", f"{base}/collateral?wait=true", {"collateral_id": "0x" + "22" * 32, "value": "8000.00"}
    )
    assert r.status_code == 201
    assert api.get("bank", f"{base}/collateral").json()[0]["value"] == 800000

    assert _error(api.post("bank", f"{base}/attestations", {"report_hash": ZERO}), 403, "PermissionDenied")
    body = _error(
        api.post("auditor", f"{base}/attestations", {"head": "0x" + "33" * 32, "report_hash": ZERO}),
        409,
        "LedgerStaleHead",
    )
    assert body["args"]["attestedHead"] == "0x" + "33" * 32
    r = api.post("auditor", f"{base}/attestations?wait=true", {"report_hash": "0x" + "44" * 32})
    assert r.status_code == 201, r.text
    attestations = api.get("bank", f"{base}/attestations").json()
    assert attestations[0]["head"] == api.get("bank", base).json()["head"]


def test_restructure_replaces_the_terms_and_their_hash(api: Api, funded: dict[str, str]) -> None:
    terms = {"repayment_schedule": [{"due": "2028-01-31", "amount": "6000.00"}]}
    r = api.post(
        "bank",
        "/v1/loans/LN-2026-0001/restructure?wait=true",
        {"maturity": "2028-06-30", "terms": terms, "financial_difficulty": False},
    )
    assert r.status_code == 201, r.text
    got = api.get("bank", "/v1/loans/LN-2026-0001/terms").json()
    assert got["matches_chain"] is True and got["terms"]["repayment_schedule"][0]["due"] == "2028-01-31"
    assert _error(
        api.post(
            "borrower",
            "/v1/loans/LN-2026-0001/restructure",
            {"maturity": "2028-06-30", "terms": terms, "financial_difficulty": False},
        ),
        403,
        "PermissionDenied",
    )


# ------------------------------------------------------------------------------------------ documents


def test_documents_upload_download_and_verify_against_the_chain(api: Api, funded: dict[str, str]) -> None:
    data = b"%PDF-1.7 invoice 2026-0042 for 120 t of steel"
    r = api.http.post(
        "/v1/documents",
        content=data,
        headers=api.auth("supplier") | {"Content-Type": "application/pdf", "X-Filename": "invoice.pdf"},
    )
    assert r.status_code == 201, r.text
    digest = r.json()["hash"]
    assert digest == "0x" + __import__("eth_utils").keccak(data).hex()
    r = api.pay("supplier", "LN-2026-0001", funded["supplier_lot"], "subsupplier", 5)
    r = api.post(
        "supplier",
        "/v1/payments?wait=true",
        {
            "loan": "LN-2026-0001",
            "from_lot": funded["supplier_lot"],
            "payee": api.address("subsupplier"),
            "amount": "0.07",
            "purpose": 1,
            "evidence_hash": digest,
        },
    )
    assert r.status_code == 201
    got = api.get("subsupplier", f"/v1/documents/{digest}")
    assert got.status_code == 200 and got.content == data and got.headers["content-type"] == "application/pdf"
    verified = api.get("auditor", f"/v1/documents/{digest}/verify").json()
    assert verified["verified"] is True and verified["recorded"][0]["event"] == "Paid"
    assert _error(api.get("other_bank", f"/v1/documents/{digest}"), 404, "NotFound")
    # tampering with the stored file is caught
    (api.services.settings.documents_dir / digest).write_bytes(data + b"!")
    assert api.get("auditor", f"/v1/documents/{digest}/verify").json()["content_matches"] is False


def test_document_limits(api: Api) -> None:
    big = b"x" * (64 * 1024 + 1)
    assert _error(
        api.http.post("/v1/documents", content=big, headers=api.auth("bank")), 413, "PayloadTooLarge"
    )
    assert _error(api.http.post("/v1/documents", content=b"", headers=api.auth("bank")), 422, "Validation")
    assert _error(api.get("bank", "/v1/documents/" + "0x" + "00" * 32), 404, "NotFound")
    assert _error(api.get("bank", "/v1/documents/abc"), 422, "Validation")


# ------------------------------------------------------------------------------------------ read your writes


def test_a_write_with_wait_is_visible_to_the_next_read(api: Api) -> None:
    out = api.open_loan()
    for i in range(5):
        r = api.post(
            "bank",
            f"/v1/loans/{out['loan_id']}/disbursements?wait=true",
            {"payee": api.address("supplier"), "amount": f"0.{1 + i:02d}", "purpose": 1},
        )
        assert r.json()["mirrored"] is True
        lot = r.json()["lot_ids"][0]
        assert api.get("supplier", f"/v1/lots/{lot}").json()["amount"] == 1 + i
    assert api.get("bank", f"/v1/loans/{out['loan_id']}").json()["disbursed"] == 15
    # the header form works as well
    r = api.post(
        "bank",
        f"/v1/loans/{out['loan_id']}/repayments",
        {"amount": "0.01"},
        headers={"Fundflow-Wait": "true"},
    )
    assert r.json()["mirrored"] is True
    with api.services.engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from repayments")).scalar() == 1
    assert time.time() > 0
