"""Issue 16's smaller findings: amounts in other scripts' digits, a loan number's existence told apart by
the error text, /docs from a CDN, the audit report's inline style blocked by its own CSP, and data files
readable by everyone."""

from __future__ import annotations

import pytest
from api_support import Api

pytestmark = pytest.mark.slow

D = "/v1/loans/LN-2026-0001/disbursements"


@pytest.mark.parametrize(
    ("field", "value", "digit"),
    [
        ("amount", "٣.٠٠", "٣"),  # Arabic-Indic digits: once recorded as 300 fen
        ("amount", "１００", "１"),  # fullwidth
        ("amount", "1२.00", "२"),  # one Devanagari digit among ASCII ones
        ("principal", "۵۰۰۰", "۵"),  # Extended Arabic-Indic, on a new loan's principal
    ],
)
def test_amount_in_non_ascii_digits_is_a_422_naming_the_field_and_records_nothing(
    api: Api, field: str, value: str, digit: str
) -> None:
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    api.disburse("LN-2026-0001", "supplier", "50.00")
    before = api.get("bank", "/v1/loans?wait=true").json()
    if field == "amount":
        r = api.post("bank", D, {"payee": api.address("supplier"), "purpose": 1, "amount": value})
    else:
        body = {
            "borrower": api.address("borrower"),
            "principal": value,
            "allowed_purposes": [1],
            "maturity": "2099-01-01",
        }
        r = api.post("bank", "/v1/loans", body)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "Validation"
    assert body["message"] == (
        f"The request is invalid: {field}: {value!r} is not a decimal amount: {digit!r} is not an ASCII "
        'digit; write it like "1234.56" (ASCII digits 0-9, at most two decimals, no sign, exponent or '
        "thousands separator)"
    )
    assert body["hint"]
    assert api.get("bank", "/v1/loans?wait=true").json() == before
    assert api.get("bank", "/v1/loans/LN-2026-0001").json()["disbursed"] == 5000


def _loan_reads(api: Api) -> list[str]:
    """Every GET of the OpenAPI schema about one loan (path parameter `loan` only), plus the alert filter."""
    paths = api.http.get("/openapi.json").json()["paths"]
    reads = [
        path.replace("{loan}", "LN-2026-0007")
        for path, operations in paths.items()
        if "get" in operations and "{loan}" in path and path.count("{") == 1
    ]
    assert len(reads) >= 10, reads  # loan, terms, trail, the audit and record routes
    return [*sorted(reads), "/v1/alerts?loan=LN-2026-0007"]


def test_another_banks_loan_number_gets_the_same_404_as_a_number_nobody_has(api: Api) -> None:
    reads = _loan_reads(api)
    unknown = {path: api.get("other_bank", path) for path in reads}
    api.open_loan(loan_number="LN-2026-0007", principal="10000.00")
    api.disburse("LN-2026-0007", "supplier", "50.00")
    assert api.get("bank", "/v1/loans/LN-2026-0007").status_code == 200  # it exists now, for its bank
    for path in reads:
        answer = api.get("other_bank", path)
        before = unknown[path]
        assert (answer.status_code, answer.content) == (before.status_code, before.content), path
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json() == {
            "error": "NotFound",
            "message": "No loan LN-2026-0007 is visible to Bank B.",
            "hint": "It does not exist, is not mirrored yet, or belongs to another organisation.",
        }, path
