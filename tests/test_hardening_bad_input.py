"""Bad input by hand: amounts (negative, zero, > 2^64-1, floats, exponents), unknown loans and lots, wrong
currency, malformed ids and addresses, out-of-range maturities, Unicode in every text field. Each is a 4xx
whose body names the field and the problem; nothing is recorded."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import Api

pytestmark = pytest.mark.slow

BIG_YUAN = "184467440737095516.16"  # 2**64 fen: one fen more than a uint64 holds


def _cases(api: Api, lot: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, path, body) of each bad request."""
    supplier = api.address("supplier")
    base = {"payee": supplier, "purpose": 1}
    loan = {
        "borrower": api.address("borrower"),
        "principal": "1.00",
        "allowed_purposes": [1],
        "maturity": "2099-01-01",
    }
    pay = {
        "loan": "LN-2026-0001",
        "from_lot": lot,
        "payee": api.address("subsupplier"),
        "amount": "0.01",
        "purpose": 1,
    }
    d = "/v1/loans/LN-2026-0001/disbursements"
    return [
        ("negative amount", d, base | {"amount": -1}),
        ("zero amount", d, base | {"amount": "0.00"}),
        ("amount over 2^64-1", d, base | {"amount": BIG_YUAN}),
        ("amount as a JSON integer", d, base | {"amount": 1000}),
        ("huge decimal amount", d, base | {"amount": "9" * 80 + ".00"}),
        ("float amount", d, base | {"amount": 1.5}),
        ("exponent string", d, base | {"amount": "1e3"}),
        ("exponent float", d, base | {"amount": 1e3}),
        ("three decimals", d, base | {"amount": "1.234"}),
        ("negative decimal string", d, base | {"amount": "-5.00"}),
        ("unknown loan", "/v1/loans/LN-2026-9999/disbursements", base | {"amount": "0.01"}),
        ("malformed loan id", "/v1/loans/0xzz/disbursements", base | {"amount": "0.01"}),
        ("malformed payee", d, base | {"amount": "0.01", "payee": "0x1234"}),
        ("payee not hex", d, base | {"amount": "0.01", "payee": "0x" + "g" * 40}),
        (
            "bad checksum payee",
            d,
            base | {"amount": "0.01", "payee": supplier.lower()[:-1] + ("A" if supplier[-1] != "A" else "B")},
        ),
        ("purpose out of range", d, base | {"amount": "0.01", "purpose": 32}),
        ("wrong currency", "/v1/loans", loan | {"currency": "XX"}),
        ("currency not ISO", "/v1/loans", loan | {"currency": "人民币"}),
        ("maturity before 1970", "/v1/loans", loan | {"maturity": "1969-12-31"}),
        ("maturity past uint40", "/v1/loans", loan | {"maturity": 2**40}),
        ("principal over 2^64-1", "/v1/loans", loan | {"principal": BIG_YUAN}),
        ("principal as a JSON integer", "/v1/loans", loan | {"principal": 500000}),
        ("unicode loan number", "/v1/loans", loan | {"loan_number": "LN-２０２６-0001"}),
        ("unknown lot", "/v1/payments", pay | {"from_lot": "0x" + "ab" * 32}),
        ("malformed lot", "/v1/payments", pay | {"from_lot": "0x" + "ab" * 31}),
        ("unknown lot to confirm", f"/v1/lots/0x{'cd' * 32}/confirm", {"evidence_hash": "0x" + "00" * 32}),
        ("malformed evidence hash", "/v1/payments", pay | {"evidence_hash": "0x12"}),
        ("empty batch", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": []}),
        ("body not json", d, {"__raw__": "{not json"}),
        ("body is a list", d, {"__list__": True}),
    ]


EXPECTED: dict[str, tuple[int, str, str]] = {
    # name: (status, error, a phrase the message must contain)
    "negative amount": (
        422,
        "Validation",
        "amount: amounts are decimal strings in yuan, not numbers, greater",
    ),
    "zero amount": (422, "Validation", "amount: the amount must be greater than zero"),
    "amount over 2^64-1": (422, "Validation", "amount: the amount is larger than the ledger can record"),
    "huge decimal amount": (422, "Validation", "is not a decimal amount"),
    "float amount": (422, "Validation", 'not numbers (a float loses cents): write "amount": "1.50"'),
    "exponent string": (422, "Validation", "amount: '1e3' is not a decimal amount"),
    "exponent float": (422, "Validation", "amount: amounts are decimal strings in yuan, not numbers"),
    "amount as a JSON integer": (
        422,
        "Validation",
        'write "amount": "10.00" for CNY 10.00, or "amount": "1000.00" for CNY 1,000.00',
    ),
    "principal as a JSON integer": (
        422,
        "Validation",
        'write "principal": "5000.00" for CNY 5,000.00, or "principal": "500000.00" for CNY 500,000.00',
    ),
    "three decimals": (422, "Validation", "amount: '1.234' is not a decimal amount"),
    "negative decimal string": (422, "Validation", "amount: '-5.00' is not a decimal amount"),
    "unknown loan": (404, "NotFound", "No loan LN-2026-9999 is visible to Bank A."),
    "malformed loan id": (422, "Validation", "'0xzz' is neither a loan id nor a loan number"),
    "malformed payee": (422, "Validation", "payee: expected an account address"),
    "payee not hex": (422, "Validation", "payee: expected an account address"),
    "bad checksum payee": (422, "Validation", "payee: the address's mixed-case checksum (EIP-55) is wrong"),
    "purpose out of range": (422, "Validation", "purpose: Input should be less than or equal to 31"),
    "wrong currency": (422, "Validation", "currency: String should match pattern"),
    "currency not ISO": (422, "Validation", "currency: String should match pattern"),
    "maturity before 1970": (422, "Validation", "maturity: maturity must be between 1970-01-01"),
    "maturity past uint40": (422, "Validation", "maturity: maturity must be between 1970-01-01"),
    "principal over 2^64-1": (
        422,
        "Validation",
        "principal: the amount is larger than the ledger can record",
    ),
    "unicode loan number": (422, "Validation", "loan_number: String should match pattern"),
    "unknown lot": (404, "LedgerLotNotFound", "No lot 0xabababab"),
    "malformed lot": (422, "Validation", "from_lot: expected a 32-byte hash"),
    "unknown lot to confirm": (404, "NotFound", "is not mirrored yet"),
    "malformed evidence hash": (422, "Validation", "evidence_hash: expected a 32-byte hash"),
    "empty batch": (422, "Validation", "payments: List should have at least 1 item"),
    "body not json": (422, "Validation", "JSON decode error"),
    "body is a list": (422, "Validation", "Input should be a valid dictionary"),
}


def test_every_bad_input_is_a_4xx_naming_the_problem_and_records_nothing(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    lot = api.disburse("LN-2026-0001", "supplier", "50.00")
    before = api.get("bank", "/v1/loans").json()
    cases = _cases(api, lot)
    assert {name for name, _, _ in cases} == set(EXPECTED)
    for name, path, body in cases:
        if "__raw__" in body:
            headers = api.auth("bank") | {"Content-Type": "application/json"}
            r = api.http.post(path, content=body["__raw__"], headers=headers)
        elif "__list__" in body:
            r = api.post("bank", path, [1, 2])
        else:
            r = api.post("supplier" if path.startswith(("/v1/payments", "/v1/lots")) else "bank", path, body)
        status, error, phrase = EXPECTED[name]
        assert (r.status_code, r.json()["error"]) == (status, error), (name, r.text)
        assert phrase in r.json()["message"], (name, r.text)
        assert r.json()["hint"], name
    assert api.get("bank", "/v1/loans?wait=true").json() == before
    assert api.get("bank", "/v1/loans/LN-2026-0001").json()["disbursed"] == 5000


def test_unicode_in_every_text_field_round_trips(api: Api) -> None:
    text = "供应链 付款 ✓ — Ünïcödé \u202e RTL 👍"
    terms = {
        "repayment_schedule": [{"due": "2027-06-30", "amount": "1.00"}],
        "purpose_note": text,
        "notes": [text, {"name": text}],
    }
    loan = api.open_loan(loan_number="LN-2026-0002", terms=terms)
    got = api.get("bank", f"/v1/loans/{loan['loan_id']}/terms").json()
    assert got["terms"]["purpose_note"] == text
    assert got["terms"]["notes"] == [text, {"name": text}]
    assert got["matches_chain"] is True  # the canonical UTF-8 terms hash to what the chain holds
    r = api.http.post(
        "/v1/documents",
        content=text.encode(),
        headers=api.auth("bank") | {"Content-Type": "text/plain; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    assert (
        api.http.get(f"/v1/documents/{r.json()['hash']}", headers=api.auth("bank")).content == text.encode()
    )
