"""The dashboard in a real browser: Debian's Chromium, headless, driven by Playwright, against the app served
by uvicorn on a free port over a fresh deployment on the session Hardhat node, with the real indexer (and the
monitoring rules) following the chain in a background thread. Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Api, add_third_party, build_services, serve_http, signin_csrf

from ledger.chain.client import ChainClient
from ledger.mirror.indexer import Indexer
from ledger.monitoring.monitor import Monitor

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


class MonitoredIndexer:
    """The real indexer with the monitoring rules after each batch, following the tip in a thread."""

    def __init__(self, api_services: Any, client: ChainClient) -> None:
        self.indexer = Indexer(
            api_services.engine,
            client,
            api_services.deployment,
            poll_interval=0.02,
            after_batch=Monitor().after_batch,
        )
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="dashboard-indexer")

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.indexer.run_forever(self.stop_event)
            except Exception:
                self.stop_event.wait(0.1)

    def start(self) -> MonitoredIndexer:
        self.indexer.open()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.indexer.close()


@dataclass
class Site:
    url: str
    api: Api
    lots: dict[str, str]


@pytest.fixture
def site(world: Any, client: ChainClient, tmp_path: Path) -> Iterator[Site]:
    services, tokens, accounts = build_services(world, client, tmp_path)
    indexer = MonitoredIndexer(services, ChainClient(client.rpc_url)).start()
    try:
        with serve_http(services) as url, httpx.Client(base_url=url, timeout=60) as http:
            api = Api(http, services, world, tokens, accounts, indexer)  # type: ignore[arg-type]
            # A demo-like loan: an entrusted payment to a supplier who pays onward (once outside the declared
            # use), and a disbursement to the borrower who pays a supplier.
            api.open_loan(loan_number="LN-2026-0001", principal="1000000.00")
            lots = {"to_supplier": api.disburse("LN-2026-0001", "supplier", "400000.00", purpose=1)}
            lots["to_borrower"] = api.disburse("LN-2026-0001", "borrower", "300000.00", purpose=4)
            for name, who, parent, payee, amount, purpose in [
                ("to_sub", "supplier", "to_supplier", "subsupplier", "150000.00", 1),
                ("securities", "supplier", "to_supplier", "supplier2", "50000.00", 29),
                ("equipment", "borrower", "to_borrower", "supplier2", "80000.00", 3),
            ]:
                r = api.pay(who, "LN-2026-0001", lots[parent], payee, amount, purpose)
                assert r.status_code == 201, r.text
                lots[name] = r.json()["lot_ids"][0]
            yield Site(url, api, lots)
    finally:
        indexer.stop()
        services.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which("chromium") is None and not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the dashboard's browser tests need it. "
            "Install it with `apt-get install -y chromium` (make test does this when it is missing)."
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _sign_in(browser: Any, site: Site, who: str, start: str = "/dashboard/loans") -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(site.url + start)
    assert "/dashboard/signin" in page.url  # no session yet
    page.fill("#token", site.api.tokens[who])
    page.click("#signin")
    page.wait_for_load_state()
    assert page.url.startswith(site.url + start), page.url
    return page


def _wait_until_mirrored(site: Site, lot_id: str, state: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = site.api.get("bank", f"/v1/lots/{lot_id}")
        if r.status_code == 200 and r.json()["confirmation"] == state:
            return
        time.sleep(0.1)
    raise AssertionError(f"lot {lot_id} never reached {state} in the mirror")


def test_lender_sees_one_node_per_lot_and_flagged_lot_details(browser: Any, site: Site) -> None:
    page = _sign_in(browser, site, "bank")
    row = page.locator("#loans tbody tr", has_text="LN-2026-0001")
    assert row.count() == 1
    assert "1,000,000.00" in row.inner_text() and "700,000.00" in row.inner_text()
    _shot(page, "loans")

    row.locator("a").first.click()
    page.wait_for_load_state()
    trail = site.api.get("bank", "/v1/loans/LN-2026-0001/trail").json()
    assert trail["lot_count"] == 5
    nodes = page.locator("svg.flow a.lot-node")
    assert nodes.count() == 5
    assert sorted(nodes.evaluate_all("els => els.map(e => e.dataset.lotId)")) == sorted(site.lots.values())
    assert page.locator("svg.flow a.lot-node.disbursement").count() == 2
    badge = page.locator("#verification").inner_text()
    assert "Verified against the chain at block" in badge, badge
    assert int(page.inner_text("#verified-block")) >= 1
    _shot(page, "loan")

    flagged = page.locator("svg.flow a.lot-node.undeclared")
    assert flagged.count() == 1
    assert flagged.get_attribute("data-lot-id") == site.lots["securities"]
    assert "outside declared use" in (flagged.text_content() or "")  # a label, not colour alone
    flagged.click()
    page.wait_for_load_state()
    assert f"lot={site.lots['securities']}" in page.url
    detail = page.locator("#lot-detail").inner_text()
    assert "Supplier Two" in detail
    assert "50,000.00" in detail
    assert "Outside declared use" in detail and "securities" in detail
    assert site.lots["securities"] in detail
    assert (
        page.locator("svg.flow a.lot-node.selected").get_attribute("data-lot-id") == site.lots["securities"]
    )
    _shot(page, "flagged-lot")

    page.goto(site.url + "/dashboard/alerts")
    alert_row = page.locator("#alerts tbody tr[data-alert-id]", has_text="securities")
    assert alert_row.count() == 1
    _shot(page, "alerts")
    alert_row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_load_state()
    assert "acknowledged" in page.locator(".flash.ok").inner_text()
    assert (
        page.locator("#alerts tbody tr[data-alert-id]", has_text="securities")
        .locator("td.state")
        .inner_text()
        .startswith("acknowledged")
    )

    page.goto(f"{site.url}/dashboard/loans/LN-2026-0001?lot={site.lots['to_supplier']}")
    page.click("a.lang")
    page.wait_for_load_state()
    assert "放款" in page.inner_text("#lot-detail") and "受托支付" in page.inner_text("#lot-detail")
    assert "已与链上数据核验" in page.inner_text("#verification")
    _shot(page, "loan-zh")


def test_enterprise_confirms_payment_and_trail_updates_after_indexing(browser: Any, site: Site) -> None:
    lot_id = site.lots["to_sub"]
    page = _sign_in(browser, site, "subsupplier", start="/dashboard/received")
    waiting = page.locator(f"#waiting tr[data-lot-id='{lot_id}']")
    assert waiting.count() == 1
    assert "150,000.00" in waiting.inner_text()
    _shot(page, "received")

    waiting.locator("button.confirm").click()
    page.wait_for_load_state()
    assert "confirmed on the ledger" in page.locator(".flash.ok").inner_text()
    assert page.locator(f"#waiting tr[data-lot-id='{lot_id}']").count() == 0
    assert "confirmed" in page.locator(f"#answered tr[data-lot-id='{lot_id}']").inner_text()
    _wait_until_mirrored(site, lot_id, "confirmed")

    lender = _sign_in(browser, site, "bank", start="/dashboard/loans/LN-2026-0001")
    node = lender.locator(f"svg.flow a.lot-node[data-lot-id='{lot_id}']")
    assert "confirmed" in (node.get_attribute("class") or "").split()
    assert "✓ confirmed" in (node.text_content() or "")
    lender.goto(f"{site.url}/dashboard/loans/LN-2026-0001?lot={lot_id}")
    assert lender.inner_text("#lot-confirmation").startswith("confirmed")
    _shot(lender, "trail-after-confirm")


def test_pages_send_security_headers_and_refuse_forms_without_csrf(site: Site) -> None:
    with httpx.Client(base_url=site.url) as http:
        form = {"token": site.api.tokens["subsupplier"], "signin_csrf": signin_csrf(http)}
        r = http.post("/dashboard/signin", data=form)
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert site.api.tokens["subsupplier"] not in cookie  # the cookie never carries the bearer token
        page = http.get("/dashboard/received")
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none': no scripts
        forged = http.post(f"/dashboard/lots/{site.lots['to_sub']}/confirm", content="csrf=nope")
        assert forged.status_code == 403
    assert site.api.get("bank", f"/v1/lots/{site.lots['to_sub']}").json()["confirmation"] == "unconfirmed"


def test_an_uploaded_html_page_with_a_meta_refresh_downloads_instead_of_navigating(
    browser: Any, site: Site
) -> None:
    """Issue 16, finding 8: an uploaded HTML page is a download on the dashboard's origin; its meta refresh
    (here to a marked URL of the same server, so the test needs no network) never runs."""
    target = f"{site.url}/v1/health?refreshed-by-upload"
    html = f'<html><head><meta http-equiv="refresh" content="0;url={target}"></head><body>x</body></html>'
    r = site.api.http.post(
        "/v1/documents",
        content=html.encode(),
        headers=site.api.auth("supplier") | {"Content-Type": "text/html"},
    )
    assert r.status_code == 201, r.text
    digest = r.json()["hash"]
    page = _sign_in(browser, site, "supplier")
    visited: list[str] = []
    page.context.on("request", lambda request: visited.append(request.url))
    with page.expect_download(timeout=10_000) as download:
        try:
            page.goto(f"{site.url}/dashboard/documents/{digest}")
        except Exception as exc:  # Chromium aborts a navigation that turns into a download
            assert "Download is starting" in str(exc) or "net::ERR_ABORTED" in str(exc), exc
    assert download.value.suggested_filename == digest
    page.wait_for_timeout(1000)
    assert not [u for u in visited if "refreshed-by-upload" in u], visited
    assert page.url.startswith(site.url + "/dashboard/loans"), page.url
    page.context.close()


def _alert_states(site: Site, loan: str, rule: str) -> list[str]:
    r = site.api.get("bank", "/v1/alerts", params={"loan": loan, "rule": rule})
    assert r.status_code == 200, r.text
    return [a["state"] for a in r.json()["items"]]


def test_a_site_visit_recorded_in_the_dashboard_resolves_the_missed_visit_alert(
    browser: Any, site: Site
) -> None:
    """Issue 19: the loan contract schedules a site visit for yesterday; a video interview recorded through
    the loan page's form leaves the alert open, a site visit resolves it."""
    from datetime import UTC, datetime, timedelta

    now = int(site.api.world.ledger.client.get_header().timestamp)
    yesterday = (datetime.fromtimestamp(now, UTC).date() - timedelta(days=1)).isoformat()
    site.api.open_loan(
        loan_number="LN-2026-0002",
        principal="500000.00",
        terms={"inspection_schedule": [{"due": yesterday, "kind": "site_visit"}]},
    )
    site.api.disburse("LN-2026-0002", "supplier", "100000.00", purpose=1)
    deadline = time.monotonic() + 30
    while _alert_states(site, "LN-2026-0002", "missed_inspection") != ["open"]:
        assert time.monotonic() < deadline, "the missed-inspection alert was never raised"
        time.sleep(0.1)

    page = _sign_in(browser, site, "bank", start="/dashboard/loans/LN-2026-0002")
    assert "Visits and interviews" in page.inner_text("#visits")

    def record(kind: str, place: str, findings: str) -> None:
        page.select_option("#visit-kind", kind)
        page.fill("#visit-date", yesterday)
        page.fill("#visit-place", place)
        page.fill("#visit-attendees", "Account manager Wang\nBorrower's CFO")
        page.fill("#visit-findings", findings)
        page.fill("#visit-follow-up", "Collect Q4 VAT returns")
        page.fill("#visit-follow-up-owner", "Wang")
        page.fill("#visit-follow-up-due", "2027-01-31")
        page.click("#record-visit")
        page.wait_for_load_state()
        assert "recorded on the ledger" in page.locator(".flash.ok").inner_text()

    record("video_interview", "", "CFO walked through the order book on video.")
    assert _alert_states(site, "LN-2026-0002", "missed_inspection") == ["open"]  # no site visit yet
    record("site_visit", "Plant 2, 88 Example Road", "Production lines running; stock matches.")
    assert _alert_states(site, "LN-2026-0002", "missed_inspection") == ["resolved"]
    rows = page.locator("#visit-list tbody tr")
    assert rows.count() == 2
    assert "site visit" in rows.nth(1).inner_text() and "实地走访" in rows.nth(1).inner_text()
    assert "report matches its on-chain hash" in rows.nth(1).inner_text()
    assert "Collect Q4 VAT returns (Wang, 2027-01-31)" in rows.nth(1).inner_text()
    _shot(page, "visits")

    borrower = _sign_in(browser, site, "borrower", start="/dashboard/loans/LN-2026-0002")
    assert borrower.locator("#visits").count() == 0  # the bank's risk view, not the borrower's


def test_the_cli_records_and_lists_visits_through_the_running_api(site: Site) -> None:
    """Issue 19: `fundflow visits record|list` against the served API (same checks and policy)."""
    from typer.testing import CliRunner

    from fundflow.cli.main import app

    runner = CliRunner()
    common = ["--api", site.url]
    args = ["visits", "record", "LN-2026-0001", "--kind", "site_visit", "--date", "2026-11-30"]
    args += ["--attendee", "Account manager Wang", "--attendee", "Borrower's CFO", "--place", "Plant 2"]
    args += ["--findings", "Stock matches the ledger.", "--follow-up", "Collect VAT returns|Wang|2027-01-31"]
    r = runner.invoke(app, [*args, *common, "--token", site.api.tokens["bank"]])
    assert r.exit_code == 0, r.output
    assert "site visit (实地走访) of 2026-11-30 recorded on loan LN-2026-0001" in r.output

    r = runner.invoke(app, ["visits", "list", "LN-2026-0001", *common, "--token", site.api.tokens["bank"]])
    assert r.exit_code == 0, r.output
    assert "Stock matches the ledger." in r.output and "verified" in r.output
    assert "next site visit due" in r.output and "every 90 days" in r.output

    r = runner.invoke(app, [*args, *common, "--token", site.api.tokens["borrower"]])
    assert r.exit_code == 1
    assert "The API refused (403)" in r.output

    bad = [a if a != "Collect VAT returns|Wang|2027-01-31" else "no owner" for a in args]
    r = runner.invoke(app, [*bad, *common, "--token", site.api.tokens["bank"]])
    assert r.exit_code == 1 and "is not ACTION|OWNER|YYYY-MM-DD" in r.output


def test_the_cli_gives_lists_and_releases_a_guarantee_through_the_running_api(site: Site) -> None:
    from typer.testing import CliRunner

    from fundflow.cli.main import app

    runner, bank = CliRunner(), ["--api", site.url, "--token", site.api.tokens["bank"]]
    give = ["guarantees", "give", "LN-2026-0001", "--kind", "pledge", "--amount", "100000.00"]
    give += ["--start", "2026-01-01", "--expiry", "2099-12-31", "--guarantor", site.api.address("supplier2")]
    r = runner.invoke(app, [*give, *bank])
    assert r.exit_code == 0, r.output
    assert "pledge (质押) of 100000.00 recorded on loan LN-2026-0001" in r.output
    record_id = r.output.split("guarantee ")[1].split(",")[0].strip()
    r = runner.invoke(app, ["guarantees", "list", "LN-2026-0001", *bank])
    assert f"{record_id}  pledge (质押) by {site.api.address('supplier2')}: 100,000.00" in r.output
    r = runner.invoke(app, ["guarantees", "release", "LN-2026-0001", record_id, "--reason", "repaid", *bank])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["guarantees", "list", "LN-2026-0001", *bank])
    assert "released" in r.output
    r = runner.invoke(app, [*give[:-4], "--start", "2026-01-01", "--expiry", "2099-12-31", *bank])
    assert r.exit_code == 1 and "exactly one" in r.output  # no guarantor named


def test_the_cli_engages_an_appraiser_registers_collateral_and_the_appraiser_signs_its_value(
    site: Site,
) -> None:
    from typer.testing import CliRunner

    from fundflow.cli.main import app

    add_third_party(site.api, "appraiser", "CLI Appraisal Co", "appraiser")
    runner, bank = CliRunner(), ["--api", site.url, "--token", site.api.tokens["bank"]]
    appraiser = ["--api", site.url, "--token", site.api.tokens["appraiser"]]
    item = ["collateral", "register", "LN-2026-0001", "--ref", "M-1", "--type", "equipment"]
    item += ["--description", "CNC line 3", "--registration", "DJ-2026-0042", "--haircut-bp", "4000"]
    r = runner.invoke(app, [*item, *bank])
    assert r.exit_code == 0, r.output
    item_id = r.output.split("item 0x")[1].split(",")[0]
    item_id = "0x" + item_id.strip()
    value = ["collateral", "appraise", "LN-2026-0001", item_id, "--value", "500000.00", "--method", "cost"]
    r = runner.invoke(app, [*value, *appraiser])
    assert r.exit_code == 1 and "The API refused (404)" in r.output  # not engaged: it does not see the loan
    r = runner.invoke(app, ["engagements", "add", "LN-2026-0001", "CLI Appraisal Co", "--role", "appraiser",
                            "--scope", "value the CNC line", *bank])  # fmt: skip
    assert r.exit_code == 0 and "engaged as appraiser (评估机构)" in r.output, r.output
    r = runner.invoke(app, [*value, *appraiser])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["collateral", "list", "LN-2026-0001", *bank])
    shown = "M-1 equipment (机器设备) DJ-2026-0042, registered (已登记), haircut 40.00%: latest 500000.00 "
    assert shown + "appraised, effective 300000.00" in r.output, r.output
    r = runner.invoke(app, ["engagements", "list", "LN-2026-0001", *bank])
    assert "CLI Appraisal Co: appraiser" in r.output


def test_the_cli_writes_off_and_records_recoveries_through_the_running_api(site: Site) -> None:
    from typer.testing import CliRunner

    from fundflow.cli.main import app

    runner, bank = CliRunner(), ["--api", site.url, "--token", site.api.tokens["bank"]]
    r = runner.invoke(app, ["recoveries", "list", "LN-2026-0001", *bank])
    assert r.exit_code == 0 and "not written off" in r.output
    r = runner.invoke(app, ["write-off", "LN-2026-0001", "--reason", "Borrower insolvent", *bank])
    assert r.exit_code == 0, r.output
    rec = ["recoveries", "record", "LN-2026-0001", "--amount", "1500.00", "--date", "2026-12-01"]
    r = runner.invoke(app, [*rec, "--source", "collateral auction", *bank])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["recoveries", "list", "LN-2026-0001", *bank])
    assert "Borrower insolvent" in r.output and "recovered since write-off: CNY 1,500.00" in r.output
