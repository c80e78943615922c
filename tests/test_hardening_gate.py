"""The gate in front of every route (issue 16): a body nested 200,000 deep cannot kill the process, rate
limits count verified participants (and failed authentications per address) in bounded tables, dashboard
sessions end with their token, and sign-in refuses cross-site posts (login CSRF)."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from api_support import Api, build_services

from ledger.chain.client import ChainClient
from ledger.store.offchain import ApiToken, create_token, hash_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DEEP_BODY = b"[" * 200_000  # 200 KB of nesting: far under the 1 MiB body limit
BODY_TOO_DEEP = {
    "error": "BodyTooDeep",
    "message": "The request body nests arrays and objects deeper than 64 levels.",
    "hint": "Send a flatter JSON body; no Fundflow request needs more than a few levels.",
}


# ---------------------------------------------------------------------------------------- deep bodies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


STACK_SCRIPT = """
import time
from fundflow.compose import ApiStack
from ledger.config import get_settings

stack = ApiStack(get_settings()).start()
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def test_a_body_nested_200000_deep_is_422_unauthenticated_and_the_stack_keeps_answering(
    world: Any, client: ChainClient, tmp_path: Path
) -> None:
    """`fundflow up`'s process (API and indexer in one ApiStack, uvicorn over a real socket) in a process of
    its own: on main this body killed it with a segmentation fault."""
    build_services(world, client, tmp_path)  # keystore, participants, tokens, migrated SQLite mirror
    world.deployment.save(tmp_path / "deployment.json")
    port = _free_port()
    env = {
        **os.environ,
        "FUNDFLOW_ENV": "test",
        "FUNDFLOW_RPC_URL": client.rpc_url,
        "FUNDFLOW_DATA_DIR": str(tmp_path),
        "FUNDFLOW_DEPLOYMENT_FILE": str(tmp_path / "deployment.json"),
        "FUNDFLOW_KEYSTORE_SCRYPT_N": "1024",
        "FUNDFLOW_API_HOST": "127.0.0.1",
        "FUNDFLOW_API_PORT": str(port),
    }
    log = tmp_path / "stack.log"
    with (
        log.open("w") as stderr,
        subprocess.Popen(
            [sys.executable, "-c", STACK_SCRIPT],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        ) as server,
    ):
        try:
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready", log.read_text()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                for content_type in ("application/json", None):
                    headers = {"Content-Type": content_type} if content_type else {}
                    try:
                        r = http.post(
                            "/v1/loans/LN-2026-0001/restructure", content=DEEP_BODY, headers=headers
                        )
                    except httpx.TransportError as exc:
                        pytest.fail(
                            f"the server dropped the connection ({exc!r}); exit code {server.wait(10)}"
                        )
                    assert r.status_code == 422, r.text
                    assert r.json() == BODY_TOO_DEEP
                assert server.poll() is None, f"the stack exited with {server.returncode}"
                health = http.get("/v1/health")
                assert health.status_code == 200
                assert health.json()["status"] in ("ok", "degraded")
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def test_building_the_app_puts_pythons_recursion_limit_back_to_1000() -> None:
    """py_ecc raises it to 100,000 at import; a fresh interpreter (as a server starts) is asked."""
    script = (
        "import sys, api.app; from ledger.config import Settings; "
        "api.app.create_app(Settings(env='test', _env_file=None)); print(sys.getrecursionlimit())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "1000"


def test_a_deep_body_is_refused_before_the_token_is_checked_and_a_normal_one_still_passes(api: Api) -> None:
    deep = b'{"a": ' * 65 + b"1" + b"}" * 65
    r = api.http.post("/v1/loans", content=deep, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json() == BODY_TOO_DEEP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    # 64 levels is allowed: the request goes on to authentication
    ok = b'{"a": ' * 64 + b"1" + b"}" * 64
    r = api.http.post("/v1/loans", content=ok, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"] == "Authentication"


def test_json_depth_scan_counts_nesting_not_brackets_in_strings() -> None:
    from api.guards import json_depth_exceeds

    assert json_depth_exceeds(b"[" * 200_000, 64)
    assert not json_depth_exceeds(b"[]" * 200_000, 64)  # many brackets, depth 1
    assert not json_depth_exceeds(b'{"note": "' + b"[" * 1000 + b'"}', 2)
    assert not json_depth_exceeds(b'["\\"' + b"[" * 1000 + b'"]', 2)  # an escaped quote stays in the string
    assert json_depth_exceeds(b"[[[1]]]", 2) and not json_depth_exceeds(b"[[[1]]]", 3)


# ---------------------------------------------------------------------------------------- rate limits


def test_bogus_tokens_from_one_address_get_429_after_the_failed_authentication_limit(
    api: Api, limited: Any
) -> None:
    http = limited(auth_failure_limit=5)
    for i in range(5):
        r = http.get("/v1/participants/me", headers={"Authorization": f"Bearer ff_bogus{i}"})
        assert r.status_code == 401
    r = http.get("/v1/participants/me", headers={"Authorization": "Bearer ff_bogus-next"})
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 12  # 5 per minute: one more every 12 s
    assert r.json() == {
        "error": "TooManyFailedAuthentications",
        "message": "Too many requests with an unknown, expired or revoked token from this address: "
        "the limit is 5 per minute.",
        "hint": f"Retry after {retry} s with a valid token (`fundflow tokens create NAME`).",
    }
    # the address is refused before any token is looked up, a good one included, until the budget refills
    assert http.get("/v1/participants/me", headers=api.auth("bank")).status_code == 429
    # failed dashboard sign-ins count the same
    form = {"token": "ff_bogus", "signin_csrf": "x"}
    assert http.post("/dashboard/signin", data=form).status_code == 429


def test_a_participant_is_limited_whatever_token_header_or_cookie_it_sends(api: Api, limited: Any) -> None:
    http = limited(rate_limit=6, rate_limit_burst=4)
    second = create_token(
        api.services.engine, participant="Bank A", key_name="bank", address=api.address("bank")
    )
    variations = [
        {"Authorization": f"Bearer {api.tokens['bank']}"},
        {"Authorization": f"Bearer {second}", "Cookie": "junk=1"},  # another token of the same account
        {"Authorization": f"bearer {api.tokens['bank']}", "Cookie": "junk=2"},
        {"Authorization": f"Bearer {api.tokens['bank2']}"},  # another account of the same participant
    ]
    for headers in variations:
        assert http.get("/v1/participants/me", headers=headers).status_code == 200
    for headers in variations:
        r = http.get("/v1/participants/me", headers=headers | {"Cookie": f"fresh={time.monotonic()}"})
        assert r.status_code == 429
        retry = int(r.headers["Retry-After"])
        assert 1 <= retry <= 10  # 6 per minute: one more every 10 s
        assert r.json() == {
            "error": "RateLimited",
            "message": "Too many requests: the limit is 6 per minute per participant.",
            "hint": f"Retry after {retry} s; spread requests out or use the batch endpoints.",
        }
    # another participant has its own budget
    assert http.get("/v1/participants/me", headers=api.auth("supplier")).status_code == 200


def test_rate_limit_tables_stay_within_their_bound_under_10000_distinct_bogus_credentials(
    api: Api, limited: Any
) -> None:
    """Each request comes from a new address with a new bogus token and cookie: the worst case for tables
    keyed on what callers send."""
    http = limited(rate_limit=600, auth_failure_limit=600, rate_limit_table_size=100)
    app = http.app
    limits = app.state.rate_limits  # type: ignore[attr-defined]
    statuses: set[int] = set()
    largest = 0

    async def flood() -> None:
        nonlocal largest
        for i in range(10_000):
            address = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
            transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                r = await c.get(
                    "/v1/participants/me",
                    headers={"Authorization": f"Bearer ff_bogus{i}", "Cookie": f"fundflow_session=x{i}"},
                )
            statuses.add(r.status_code)
            largest = max(largest, len(limits.failures), len(limits.participants))

    asyncio.run(flood())
    assert statuses == {401}
    assert 0 < largest <= 100
    assert len(limits.participants) == 0  # a bogus credential never gets a participant bucket


def test_token_buckets_hold_at_most_max_keys_and_keep_the_drained_ones() -> None:
    from api.guards import TokenBuckets

    buckets = TokenBuckets(60, 1, max_keys=20)
    assert buckets.take("drained") == 0.0
    for i in range(10_000):
        buckets.take(f"k{i}")
        assert len(buckets) <= 20
        assert buckets.take("drained") > 0  # still in use, so not the least recent
    assert buckets.take("drained") > 0  # its empty bucket survived the flood


# ---------------------------------------------------------------------------------------- sessions


def signin_csrf(http: Any) -> str:
    """Open the sign-in page as a browser does; returns its form's sign-in CSRF token ("" if it has none, so
    these tests fail on what they check, not here, against a dashboard without one)."""
    page = http.get("/dashboard/signin")
    assert page.status_code == 200, page.text
    match = re.search(r'name="signin_csrf" value="([0-9a-f]+)"', page.text)
    return match[1] if match else ""


def _sign_in(http: Any, token: str) -> httpx.Response:
    form = {"token": token, "signin_csrf": signin_csrf(http)}
    return http.post("/dashboard/signin", data=form, follow_redirects=False)  # type: ignore[no-any-return]


def test_a_dashboard_session_ends_when_its_api_token_expires(api: Api) -> None:
    engine = api.services.engine
    expires = datetime.now(UTC) + timedelta(seconds=3)
    token = create_token(
        engine,
        participant="Supplier One",
        key_name="supplier",
        address=api.address("supplier"),
        expires_at=expires,
    )
    api.http.cookies.clear()
    assert _sign_in(api.http, token).status_code == 303
    assert api.http.get("/dashboard/received", follow_redirects=False).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.5)
    r = api.http.get("/dashboard/received", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/signin?next=/dashboard/received"

    # a token given an expiry after sign-in (its session cookie knows nothing of it) ends the session too
    token = create_token(
        engine, participant="Supplier One", key_name="supplier", address=api.address("supplier")
    )
    api.http.cookies.clear()
    assert _sign_in(api.http, token).status_code == 303
    assert api.http.get("/dashboard/received", follow_redirects=False).status_code == 200
    table = ApiToken.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(
            sa.update(table)
            .where(table.c.token_hash == hash_token(token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = api.http.get("/dashboard/received", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/signin")


# ---------------------------------------------------------------------------------------- login CSRF


def test_signin_posted_from_another_site_is_refused_with_403(api: Api) -> None:
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        api.http.cookies.clear()
        form = {"token": api.tokens["supplier"], "signin_csrf": signin_csrf(api.http)}
        r = api.http.post("/dashboard/signin", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 403, headers
        assert "This sign-in did not come from this dashboard&#39;s own page; sign in here." in r.text
        assert "fundflow_session" not in r.headers.get("set-cookie", "")
        assert api.http.get("/dashboard/received", follow_redirects=False).status_code == 303


def test_signin_without_the_forms_csrf_token_is_refused_with_403(api: Api) -> None:
    api.http.cookies.clear()
    token = api.tokens["supplier"]
    attempts = [
        {"token": token},  # no sign-in token at all (what a cross-site form would send)
        {"token": token, "signin_csrf": "0" * 64},  # a made-up one
    ]
    for form in attempts:
        signin_csrf(api.http)  # the browser has the page's cookie
        r = api.http.post("/dashboard/signin", data=form, follow_redirects=False)
        assert r.status_code == 403
        assert "The sign-in form expired or did not come from this dashboard; sign in again." in r.text
    # a real form token without the cookie it belongs to (taken from another browser)
    stolen = signin_csrf(api.http)
    api.http.cookies.clear()
    r = api.http.post(
        "/dashboard/signin", data={"token": token, "signin_csrf": stolen}, follow_redirects=False
    )
    assert r.status_code == 403
    assert "fundflow_session" not in r.headers.get("set-cookie", "")


def test_signin_from_the_dashboards_own_page_signs_in(api: Api) -> None:
    api.http.cookies.clear()
    for headers in ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, {}):
        api.http.cookies.clear()
        form = {
            "token": api.tokens["supplier"],
            "signin_csrf": signin_csrf(api.http),
            "next": "/dashboard/received",
        }
        r = api.http.post("/dashboard/signin", data=form, headers=headers, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/dashboard/received"
        assert "fundflow_session=" in r.headers["set-cookie"]
        assert api.http.get("/dashboard/received").status_code == 200
    # a wrong token on the real form is still the 401 it was
    r = api.http.post(
        "/dashboard/signin",
        data={"token": "ff_nope", "signin_csrf": signin_csrf(api.http)},
        follow_redirects=False,
    )
    assert r.status_code == 401
    assert "The API token is unknown, expired or revoked." in r.text
