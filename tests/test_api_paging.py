"""Paging past what SQL can count is a clear 422 (schemathesis found it as a driver overflow, a 500)."""

from __future__ import annotations

import pytest
from api_support import Api


@pytest.mark.parametrize("path", ["/v1/loans", "/v1/payments/received", "/v1/alerts"])
def test_an_offset_beyond_a_signed_64_bit_integer_is_a_422_naming_the_field(api: Api, path: str) -> None:
    who = "auditor" if path == "/v1/alerts" else "supplier" if "received" in path else "bank"
    r = api.get(who, path, params={"offset": 2**63})
    assert r.status_code == 422, r.text
    assert "offset" in r.text
    assert api.get(who, path, params={"offset": 2**63 - 1}).status_code == 200
