"""Issue 16's smaller findings: amounts in other scripts' digits, a loan number's existence told apart by
the error text, /docs from a CDN, the audit report's inline style blocked by its own CSP, and data files
readable by everyone."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from api_support import Api, serve_http

from ledger.chain.localchain import LocalChain, free_port

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


# ------------------------------------------------------------------------------------------------- /docs

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def test_docs_page_references_no_outside_url_and_the_app_serves_its_scripts_under_a_self_only_csp(
    api: Api,
) -> None:
    page = api.http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == DOCS_CSP
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"(https?:)?//", page.text), page.text  # no absolute or protocol-relative URL
    assert "<script>" not in page.text and "style=" not in page.text and "<style" not in page.text
    scripts = re.findall(r'<script src="([^"]+)"></script>', page.text)
    styles = re.findall(r'<link rel="stylesheet" href="([^"]+)">', page.text)
    assert scripts == ["/docs/assets/swagger-ui-bundle.js", "/docs/init.js"]
    assert styles == ["/docs/assets/swagger-ui.css"]
    for url in scripts + styles:
        asset = api.http.get(url)
        assert asset.status_code == 200, url
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert asset.headers["content-type"] == f"{kind}; charset=utf-8", url
        assert asset.headers["x-content-type-options"] == "nosniff", url
        assert len(asset.content) > (100 if url == "/docs/init.js" else 100_000), url
    assert '"/openapi.json"' in api.http.get("/docs/init.js").text
    assert api.http.get("/redoc").status_code == 404  # FastAPI's CDN ReDoc page is gone too
    unlisted = api.http.get("/docs/assets/redoc.standalone.js")  # in the package, not on the list
    assert (unlisted.status_code, unlisted.json()["error"]) == (404, "NotFound")
    assert api.http.get("/docs/assets/..%2F__init__.py").status_code == 404


@pytest.fixture
def served(api: Api) -> Iterator[str]:
    """The same app served by uvicorn on a free port (a browser needs a real socket)."""
    with serve_http(api.services) as url:
        yield url


def test_docs_render_every_operation_in_chromium_with_no_network_and_no_csp_violation(served: str) -> None:
    from playwright.sync_api import Route, sync_playwright

    outside: list[str] = []

    def offline(route: Route) -> None:  # as on a machine without internet: only the app answers
        if route.request.url.startswith(served):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.route("**/*", offline)
            page.goto(f"{served}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            shown = page.locator(".opblock-summary-path").count()
            title = page.locator(".info .title").inner_text()
        finally:
            browser.close()
    assert outside == []
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []
    assert title.startswith("Fundflow API")
    paths = httpx.get(f"{served}/openapi.json").json()["paths"]
    assert shown == sum(len(operations) for operations in paths.values())  # every operation is listed


# ------------------------------------------------------------------------------------- the audit report


def _report_loan(api: Api) -> str:
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    api.disburse("LN-2026-0001", "supplier", "50.00")
    return "/v1/loans/LN-2026-0001/report"


def test_audit_report_csp_allows_exactly_its_own_inline_style_by_hash_and_nothing_else(api: Api) -> None:
    r = api.get("auditor", _report_loan(api))
    assert r.status_code == 200, r.text
    styles = re.findall(r"<style>(.*?)</style>", r.text, re.DOTALL)
    assert len(styles) == 1 and "<style" not in r.text.replace(f"<style>{styles[0]}</style>", "")
    assert " style=" not in r.text and "<script" not in r.text  # no other inline style, no script
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert r.headers["content-security-policy"] == (
        f"default-src 'none'; style-src 'sha256-{digest}'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    )
    assert r.headers["x-content-type-options"] == "nosniff"


def test_audit_report_is_styled_in_chromium_under_its_own_csp(api: Api, served: str) -> None:
    from playwright.sync_api import sync_playwright

    path = _report_loan(api)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(extra_http_headers=api.auth("auditor"))
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            assert page.goto(f"{served}{path}").status == 200  # type: ignore[union-attr]
            verdict = page.eval_on_selector(
                ".verdict", "e => [getComputedStyle(e).borderTopWidth, getComputedStyle(e).color]"
            )
            header = page.eval_on_selector("th", "e => getComputedStyle(e).backgroundColor")
        finally:
            browser.close()
    assert verdict == ["2px", "rgb(10, 93, 44)"]  # .verdict { border: 2px solid } .ok { color: #0a5d2c }
    assert header == "rgb(238, 238, 238)"  # th { background: #eee }
    assert [m for m in console if "Content Security Policy" in m or "Refused" in m] == []


# ------------------------------------------------------------------------------------- the data directory

FUNDFLOW = Path(sys.executable).parent / "fundflow"


def _modes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): stat.S_IMODE(path.lstat().st_mode)
        for path in [root, *sorted(root.rglob("*"))]
    }


def test_make_run_creates_every_data_file_for_its_owner_only(chain: LocalChain, tmp_path: Path) -> None:
    """`fundflow up` (what `make run` starts) as a real process, on the session node, with a data directory
    an earlier version left open (0755, a 0644 file): once the demo is told, the directory and everything
    in it (database + WAL/SHM, lock, deployment, keystores, participants, documents) is owner-only."""
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "old.log").write_text("from an earlier run\n")
    (data / "old.log").chmod(0o644)
    env = {
        **os.environ,
        "FUNDFLOW_ENV": "dev",
        "FUNDFLOW_RPC_URL": chain.url,
        "FUNDFLOW_DATA_DIR": str(data),
        "FUNDFLOW_API_PORT": str(free_port()),
        "FUNDFLOW_KEYSTORE_SCRYPT_N": "1024",
    }
    env.pop("FUNDFLOW_DATABASE_URL", None)
    out: list[str] = []
    with subprocess.Popen(
        [str(FUNDFLOW), "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    ) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:  # pytest-timeout bounds this
                out.append(line)
                if "Ctrl-C stops everything." in line:
                    break
            assert "Ctrl-C stops everything." in "".join(out), "".join(out)
            modes = _modes(data)  # while it runs: the WAL and SHM files exist
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for name in ("fundflow.db", "fundflow.db-wal", "fundflow.db-shm", "deployment.json", "participants.json"):
        assert name in modes, (name, sorted(modes))
    assert any(name.startswith("keystore/") for name in modes), sorted(modes)
    assert any(name.startswith("documents/") for name in modes), sorted(modes)
    assert modes["."] == 0o700
    assert {name: oct(mode) for name, mode in modes.items() if mode & 0o077} == {}
    assert {name: oct(mode) for name, mode in _modes(data).items() if mode & 0o077} == {}  # and after
