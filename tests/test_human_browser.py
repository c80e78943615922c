"""Issue 20 in Chromium: every dashboard page, as a lender, an enterprise and an auditor, in English and
Chinese, shows dates, names and yuan; each page passes axe-core with no serious or critical violation; the
downloads work and the HTML report is styled under its CSP; /docs renders offline. Screenshots of every page
are kept in test-artifacts/ (ignored by git)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_dashboard_browser import ARTIFACTS, Site, _sign_in, browser, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
YUAN = re.compile(r"\b\d{1,3}(,\d{3})*\.\d\d\b")


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"human-{name}.png"), full_page=True)


def _axe(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is (WCAG 2 A/AA rules)."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` (axe-core is in package.json's devDependencies)")
    page.evaluate(AXE.read_text(encoding="utf-8"))  # evaluated by the driver: the page's CSP has no say
    result = page.evaluate(
        "async () => { const r = await axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']}); "
        "return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, "
        "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def _check(
    page: Any, name: str, *, names: tuple[str, ...] = (), dates: bool = True, yuan: bool = True
) -> str:
    page.wait_for_load_state()
    text = page.inner_text("body")
    if dates:
        assert DATE.search(text), (name, text[:500])
    if yuan:
        assert YUAN.search(text), (name, text[:500])
    for who in names:
        assert who in text, (name, who)
    _shot(page, name)
    serious = _axe(page)
    assert serious == [], (name, serious)
    return str(text)


def test_every_page_shows_dates_names_and_yuan_and_passes_axe(browser: Any, site: Site) -> None:  # noqa: F811
    signin = browser.new_page()
    signin.goto(site.url + "/dashboard/signin")
    _check(signin, "signin", dates=False, yuan=False)
    signin.close()

    lender = _sign_in(browser, site, "bank")
    _check(lender, "loans", names=("Borrower Co",))
    lender.goto(f"{site.url}/dashboard/loans/LN-2026-0001?lot={site.lots['equipment']}")
    text = _check(lender, "loan", names=("Borrower Co", "Supplier Two", "Bank A"))
    assert "Asia/Shanghai" in text
    detail = lender.inner_text("#lot-detail")
    assert "Paid by\nBorrower Co" in detail or "Borrower Co" in lender.inner_text("#lot-payer")
    summary = lender.locator("#lot-detail details.when summary").first
    summary.click()  # the block is one click away
    assert re.search(r"Block \d+", lender.inner_text("#lot-detail"))
    for kind in ("report", "csv", "xlsx", "bundle"):
        assert lender.locator(f"#dl-{kind}").count() == 1
    lender.goto(site.url + "/dashboard/alerts")
    _check(lender, "alerts", names=("Supplier One",), yuan=True)
    lender.goto(site.url + "/dashboard/alerts?rule=prohibited_use&severity=critical")
    assert lender.locator("#alerts tbody tr[data-alert-id]").count() == 1
    lender.goto(site.url + "/dashboard/portfolio")
    _check(lender, "portfolio", names=("Borrower Co",))
    assert lender.locator("img.chart").count() >= 4
    widths = lender.locator("img.chart").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert all(w > 100 for w in widths), widths  # the SVG images decoded and drew

    lender.goto(f"{site.url}/dashboard/loans/LN-2026-0001?lot={site.lots['to_supplier']}")
    lender.click("a.lang")
    zh = _check(lender, "loan-zh", names=("Supplier One",))
    assert "区块时间" in zh or "时区" in zh
    lender.goto(site.url + "/dashboard/alerts")
    alerts_zh = _check(lender, "alerts-zh", names=("Supplier One",))
    assert "贷款资金违规用途" in alerts_zh and "严重" in alerts_zh
    lender.goto(site.url + "/dashboard/portfolio")
    _check(lender, "portfolio-zh")
    lender.goto(site.url + "/dashboard/loans")
    _check(lender, "loans-zh", names=("Borrower Co",))

    supplier = _sign_in(browser, site, "subsupplier", start="/dashboard/received")
    _check(supplier, "received", names=("Supplier One",))

    auditor = _sign_in(browser, site, "auditor")
    _check(auditor, "loans-auditor", names=("Borrower Co",))


def test_downloads_from_the_loan_page_and_a_styled_report(browser: Any, site: Site) -> None:  # noqa: F811
    page = _sign_in(browser, site, "auditor", start="/dashboard/loans/LN-2026-0001")
    with page.expect_download() as download:
        page.click("#dl-xlsx")
    assert download.value.suggested_filename.endswith(".xlsx")
    with page.expect_download() as download:
        page.click("#dl-csv")
    assert download.value.suggested_filename.endswith(".csv")
    page.click("#dl-report")
    page.wait_for_load_state()
    assert "Supplier One" in page.inner_text("body") and "资金流向" in page.inner_text("body")
    # its one <style> ran under the report's own CSP (allowed by hash): headings have their rule
    assert page.evaluate("getComputedStyle(document.querySelector('h2')).borderBottomStyle") == "solid"
    _shot(page, "report")


def test_api_docs_render_offline(browser: Any, site: Site) -> None:  # noqa: F811
    context = browser.new_context()
    context.route(re.compile(r"^https?://(?!127\.0\.0\.1).*"), lambda route: route.abort())  # no internet
    page = context.new_page()
    page.goto(site.url + "/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert "Amounts are decimal strings in yuan" in page.inner_text("body")  # the rule, at the top
    _shot(page, "docs")
    context.close()
