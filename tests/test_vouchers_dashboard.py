"""Supply-chain vouchers (issue 22) in Chromium and on the command line, against the app served by uvicorn
over a fresh deployment (ledger and voucher contract) with the real indexer following the chain: the core
enterprise sees its payables against its line and the voucher's tree as a picture; a supplier sees the parts
it holds and asks a bank to finance one with the form; the bank sees its financing book and exposure and
accepts with a button; each page passes axe-core. Then `fundflow vouchers` does the same through the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Api, build_services, h, serve_http
from conftest import make_world
from test_dashboard_browser import MonitoredIndexer, browser  # noqa: F401 (fixture)
from test_human_browser import _axe

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.deploy import deploy_vouchers

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DAY = 86_400


@dataclass
class VoucherSite:
    url: str
    api: Api
    voucher: str
    parts: dict[str, int]


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return dict(r.json())


@pytest.fixture
def vsite(client: ChainClient, compiled: CompiledContract, tmp_path: Path) -> Iterator[VoucherSite]:
    world = make_world(client, compiled)
    world.deployment = deploy_vouchers(client, world.cast.operator, world.deployment)
    services, tokens, accounts = build_services(world, client, tmp_path)
    indexer = MonitoredIndexer(services, ChainClient(client.rpc_url)).start()
    try:
        with serve_http(services) as url, httpx.Client(base_url=url, timeout=60) as http:
            api = Api(http, services, world, tokens, accounts, indexer)  # type: ignore[arg-type]
            now = int(client.get_header().timestamp)
            day = lambda days: datetime.fromtimestamp(now + days * DAY, UTC).date().isoformat()  # noqa: E731
            line = {"core": "Borrower Co", "limit": "1000000.00", "expiry": day(365)}
            _ok(api.post("bank", "/v1/vouchers/credit-lines?wait=true", line))
            issue = {"holder": api.address("supplier"), "face_value": "300000.00", "maturity": day(90)}
            issue["invoice_hash"] = h("invoice:INV-2026-0042")
            voucher = _ok(api.post("borrower", "/v1/vouchers?wait=true", issue))["voucher_id"]
            parts = {"tier1": 1}
            for who, parent, to, amount in (("supplier", "tier1", "supplier2", "120000.00"),
                                            ("supplier2", "tier2", "subsupplier", "50000.00")):  # fmt: skip
                body = {"transfers": [{"to": api.address(to), "amount": amount}]}
                made = _ok(
                    api.post(who, f"/v1/vouchers/{voucher}/parts/{parts[parent]}/split?wait=true", body)
                )
                parts["tier2" if parent == "tier1" else "tier3"] = made["parts"][0]["part_id"]
            yield VoucherSite(url, api, voucher, parts)
    finally:
        indexer.stop()
        services.engine.dispose()


def _page(browser: Any, site: VoucherSite, who: str, start: str) -> Any:  # noqa: F811
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(site.url + start)
    page.fill("#token", site.api.tokens[who])
    page.click("#signin")
    page.wait_for_load_state()
    assert page.url.startswith(site.url + start), page.url
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"vouchers-{name}.png"), full_page=True)
    assert _axe(page) == [], name


def test_each_role_sees_its_vouchers_and_the_tree_and_acts_with_the_forms(
    browser: Any,  # noqa: F811
    vsite: VoucherSite,
) -> None:
    v, parts = vsite.voucher, vsite.parts
    core = _page(browser, vsite, "borrower", "/dashboard/vouchers")
    assert "700000.00" in core.inner_text("#line-available")
    row = core.locator("#payables tbody tr")
    assert row.count() == 1 and "300000.00" in row.inner_text()
    assert "Supplier One" in row.inner_text() and "Sub Supplier" in row.inner_text()
    _shot(core, "core")
    row.locator("a").click()
    core.wait_for_load_state()
    boxes = core.locator("#voucher-tree svg.flow a.lot-node")
    assert boxes.count() == 3  # one box per part: tier 1, tier 2, tier 3
    assert sorted(boxes.evaluate_all("els => els.map(e => e.dataset.lotId)")) == sorted(
        f"part-{p}" for p in parts.values()
    )
    tree = core.inner_text("#voucher-tree")
    assert "Borrower Co" in tree and "Supplier Two" in tree and "120,000.00" in tree
    assert "Issued (确权)" in tree
    assert core.locator("#voucher-facts details.when").count() == 1  # the block one click away
    assert "Verified against the chain at block" in core.inner_text("#voucher-verification")
    _shot(core, "voucher-core")

    supplier = _page(browser, vsite, "supplier2", "/dashboard/vouchers")
    held = supplier.locator("#parts-held tbody tr")
    assert held.count() == 1 and "70000.00" in held.inner_text()
    _shot(supplier, "supplier")
    held.locator("select[name=bank]").select_option("Bank B")
    held.locator("input[name=rate_bps]").fill("365")
    held.locator("button[type=submit]").click()
    supplier.wait_for_load_state()
    assert "Financing of part" in supplier.inner_text(".flash.ok")
    supplier.goto(f"{vsite.url}/dashboard/vouchers/{v}")
    assert supplier.locator("#voucher-branch").count() == 1  # its own branch, not the whole tree
    assert supplier.locator("#voucher-verification").count() == 0
    assert supplier.locator("#voucher-parts tbody tr").count() == 3  # tier 1 above, its part, tier 3 below

    bank = _page(browser, vsite, "other_bank", "/dashboard/vouchers")
    book = bank.locator("#financing-book tbody tr")
    assert book.count() == 1 and "Supplier Two" in book.inner_text()
    _shot(bank, "bank-book")
    book.locator("button[type=submit]").click()
    bank.wait_for_load_state()
    assert "discount interest" in bank.inner_text(".flash.ok")
    assert "70000.00" in bank.inner_text("#exposure")
    _shot(bank, "bank-financed")

    core.goto(f"{vsite.url}/dashboard/vouchers/{v}")
    assert "Bank B" in core.inner_text("#voucher-tree") and "financed" in core.inner_text("#voucher-parts")
    core.locator(f"#part-{parts['tier1']} form button").click()  # settle before maturity: refused, in words
    core.wait_for_load_state()
    assert "not due yet" in core.inner_text(".flash.bad")

    # in Chinese: the same page with the domain words bankers read (确权, 到期日, 已融资)
    core.goto(f"{vsite.url}/dashboard/lang/zh?next=/dashboard/vouchers/{v}")
    core.wait_for_load_state()
    text = core.inner_text("main")
    assert "到期日" in text and "已融资" in text and "确权签发" in text and "核心企业" in text
    assert "已与链上数据核验" in text
    _shot(core, "voucher-core-zh")

    outsider = _page(browser, vsite, "outsider", "/dashboard/vouchers")
    outsider.goto(f"{vsite.url}/dashboard/vouchers/{v}")
    assert "no voucher" in outsider.inner_text("main")


def test_the_cli_lists_shows_splits_and_finances_through_the_running_api(vsite: VoucherSite) -> None:
    from typer.testing import CliRunner

    from fundflow.cli.main import app

    runner, api, v = CliRunner(), vsite.api, vsite.voucher

    def run(who: str, *args: str) -> Any:
        return runner.invoke(app, ["vouchers", *args, "--api", vsite.url, "--token", api.tokens[who]])

    r = run("borrower", "list")
    assert r.exit_code == 0, r.output
    assert "credit line 1000000.00 from Bank A" in r.output and "available 700000.00" in r.output
    assert f"payable {v}" in r.output
    r = run("borrower", "show", v)
    assert r.exit_code == 0, r.output
    assert "of Borrower Co: 300000.00 CNY" in r.output
    assert "part 1: Supplier One holds 180000.00 of 300000.00" in r.output
    assert "    part" in r.output  # tier 3 indented under tier 2
    tier3 = vsite.parts["tier3"]
    r = run("subsupplier", "split", v, str(tier3), "--to", f"{api.address('supplier')}=10000.00")
    assert r.exit_code == 0, r.output
    assert f"part {tier3} of voucher {v} split: part" in r.output and "(10000.00)" in r.output
    r = run("subsupplier", "finance", v, str(tier3), "--bank", "Bank A", "--rate-bps", "300")
    assert r.exit_code == 0 and "asked of Bank A at 3.00%" in r.output, r.output
    r = run("bank", "accept", v, str(tier3))
    assert r.exit_code == 0 and "discount interest" in r.output and "paid 39" in r.output, r.output
    r = run("bank", "list")
    assert f"financed {v} part {tier3}" in r.output and "exposure to Borrower Co" in r.output
    r = run("auditor", "verify", v)
    assert r.exit_code == 0 and "every mirrored column and event matches the chain" in r.output, r.output
    out = Path(vsite.api.services.settings.data_dir) / "voucher-bundle.json"
    r = run("auditor", "bundle", v, "--out", str(out))
    assert r.exit_code == 0 and "written to" in r.output, r.output
    assert json.loads(out.read_text(encoding="utf-8"))["header"]["hash"].startswith("0x")
    book = Path(vsite.api.services.settings.data_dir) / "voucher.xlsx"
    r = run("auditor", "export", v, "--format", "xlsx", "--out", str(book))
    assert r.exit_code == 0 and f"exported to {book}" in r.output, r.output
    from openpyxl import load_workbook

    sheets = load_workbook(book)
    assert sheets["Summary 概要"]["B1"].value == "VERIFIED 通过"
    events = [row[2] for row in sheets["Trail 凭证流转"].iter_rows(min_row=2, values_only=True)]
    assert events[:3] == ["确权签发", "拆分转让", "拆分转让"] and "贴现融资" in events, events
    text = Path(vsite.api.services.settings.data_dir) / "voucher.csv"
    r = run("borrower", "export", v, "--format", "csv", "--out", str(text))
    assert r.exit_code == 0 and "确权签发" in text.read_text(encoding="utf-8-sig"), r.output
    r = run("supplier2", "export", v, "--out", str(book))
    assert r.exit_code == 1 and "The API refused (403)" in r.output, r.output
    r = run("auditor", "export", v, "--format", "pdf", "--out", str(book))
    assert r.exit_code == 1 and "use --format xlsx, csv or json" in r.output, r.output
    r = run("supplier2", "verify", v)
    assert r.exit_code == 1 and "The API refused (403)" in r.output and "Ask the core enterprise" in r.output
    r = run("borrower", "settle", v, "1")
    assert r.exit_code == 1 and "not due yet" in r.output
    r = run("supplier", "settle", v, "1")
    assert r.exit_code == 1 and "The API refused (403)" in r.output
    r = run("supplier", "split", v, "1", "--to", "nobody")
    assert r.exit_code == 1 and "is not ADDRESS=YUAN" in r.output
