"""Limits: per-participant rate limit (429 + Retry-After), request body and upload size (413), CORS closed
unless configured, security headers on API responses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_support import Api

pytestmark = pytest.mark.slow


def _auth(api: Api, who: str) -> dict[str, str]:
    return api.auth(who)


def test_rate_limit_is_per_participant_with_429_retry_after_and_a_clear_body(api: Api, limited: Any) -> None:
    http = limited(rate_limit=60, rate_limit_burst=3)
    for _ in range(3):
        assert http.get("/v1/participants/me", headers=_auth(api, "bank")).status_code == 200
    r = http.get("/v1/participants/me", headers=_auth(api, "bank"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "1"
    assert r.json() == {
        "error": "RateLimited",
        "message": "Too many requests: the limit is 60 per minute per participant.",
        "hint": "Retry after 1 s; spread requests out or use the batch endpoints.",
    }
    # another participant has its own bucket
    assert http.get("/v1/participants/me", headers=_auth(api, "supplier")).status_code == 200


def test_rate_limit_is_off_by_default_outside_prod(api: Api) -> None:
    assert api.services.settings.effective_rate_limit == 0
    for _ in range(50):
        assert api.get("bank", "/v1/participants/me").status_code == 200


def test_oversized_json_body_is_413_before_the_route_runs(api: Api, limited: Any) -> None:
    http = limited(max_body_bytes=2048)
    body = {
        "borrower": api.address("borrower"),
        "principal": "0.05",
        "allowed_purposes": [1],
        "maturity": "2099-01-01",
    }
    body["terms"] = {"note": "x" * 4096}
    r = http.post("/v1/loans", json=body, headers=_auth(api, "bank"))
    assert r.status_code == 413
    assert r.json() == {
        "error": "PayloadTooLarge",
        "message": "The request body is larger than the limit of 2,048 bytes.",
        "hint": "Send less: split batches, or upload large evidence as a document.",
    }
    assert r.headers["X-Content-Type-Options"] == "nosniff"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        yield b'{"borrower": "'
        for _ in range(10):
            yield b"y" * 1024
        yield b'"}'

    r = http.post(
        "/v1/loans", content=chunks(), headers=_auth(api, "bank") | {"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    assert api.get("bank", "/v1/loans").json()["total"] == 0


def test_oversized_upload_is_413_and_leaves_no_file(api: Api) -> None:
    limit = api.services.settings.document_max_bytes
    r = api.http.post(
        "/v1/documents",
        content=b"%" * (limit + 1),
        headers=api.auth("supplier") | {"Content-Type": "application/pdf"},
    )
    assert r.status_code == 413
    assert r.json()["error"] == "PayloadTooLarge"
    assert r.json()["message"] == f"The document is larger than the limit of {limit:,} bytes."
    directory = api.services.settings.documents_dir
    assert not directory.exists() or list(directory.iterdir()) == []


def test_cors_is_closed_by_default(api: Api) -> None:
    origin = {"Origin": "https://evil.example"}
    r = api.http.get("/v1/health", headers=origin)
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = api.http.options(
        "/v1/loans",
        headers=origin
        | {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_only_the_configured_origins(api: Api, limited: Any) -> None:
    http = limited(cors_origins=["https://bank.example"])
    ok = http.get("/v1/health", headers={"Origin": "https://bank.example"})
    assert ok.headers["access-control-allow-origin"] == "https://bank.example"
    other = http.get("/v1/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_api_responses_carry_security_headers_success_and_error(api: Api) -> None:
    for r in (
        api.get("bank", "/v1/loans"),
        api.http.get("/v1/loans"),
        api.get("bank", "/v1/loans/LN-2026-9999"),
    ):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
