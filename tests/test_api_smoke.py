from __future__ import annotations

from api_support import Api


def test_open_disburse_pay_and_read_trail(api: Api) -> None:
    loan = api.open_loan(loan_number="LN-2026-0001")
    assert loan["loan_number"] == "LN-2026-0001"
    lot = api.disburse("LN-2026-0001", "supplier", "5000.00")
    r = api.pay("supplier", "LN-2026-0001", lot, "subsupplier", 1234)
    assert r.status_code == 201, r.text
    assert r.json()["mirrored"] is True
    trail = api.get("bank", "/v1/loans/LN-2026-0001/trail")
    assert trail.status_code == 200, trail.text
    body = trail.json()
    assert body["lot_count"] == 2
    assert body["lots"][0]["children"][0]["amount"] == 1234
