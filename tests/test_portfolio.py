"""Issue 20: the lender's portfolio page: totals, outstanding by class and type, past-maturity buckets, top
exposures and alerts by rule/severity/month, charts drawn on the server (matplotlib SVG images, no script),
and who may see it (lenders their own bank's loans, auditors all, enterprises nobody's)."""

from __future__ import annotations

import base64
import re

import pytest
from api_support import Api, dashboard_sign_in

from api.services.portfolio import _bucket
from ledger.monitoring.monitor import Monitor

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(1, "1-30"), (30, "1-30"), (31, "31-90"), (90, "31-90"), (91, "91-270"), (270, "91-270"),
     (271, "271-360"), (360, "271-360"), (361, "361+"), (5000, "361+")],
)  # fmt: skip
def test_days_past_maturity_fall_in_the_five_category_buckets(days: int, bucket: str) -> None:
    assert _bucket(days) == bucket


def test_portfolio_shows_totals_classes_exposures_and_alerts_with_server_drawn_charts(api: Api) -> None:
    api.indexer.indexer.after_batch = Monitor().after_batch
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00", terms={"loan_type": "working_capital"})
    api.disburse("LN-2026-0001", "supplier", "4000.00")
    api.disburse("LN-2026-0001", "supplier", "100.00", purpose=29)  # securities: a critical alert
    api.open_loan(loan_number="LN-2026-0002", principal="3000.00")
    api.disburse("LN-2026-0002", "borrower", "2500.00", purpose=4)
    api.open_loan("other_bank", loan_number="LN-2026-0003", principal="99999.00")
    r = api.post(  # another bank's: not in Bank A's portfolio
        "other_bank",
        "/v1/loans/LN-2026-0003/disbursements?wait=true",
        {"payee": api.address("supplier"), "amount": "99999.00", "purpose": 1},
    )
    assert r.status_code == 201, r.text
    r = api.post("bank", "/v1/loans/LN-2026-0001/repayments?wait=true", {"amount": "600.00"})
    assert r.status_code == 201, r.text

    dashboard_sign_in(api, "bank")
    page = api.http.get("/dashboard/portfolio")
    assert page.status_code == 200, page.text
    html = page.text
    assert "<script" not in html
    totals = html.split('id="portfolio-totals"')[1].split("</dl>")[0]
    assert "2 / 2" in totals  # Bank A's two loans, both open
    assert 'id="total-outstanding">CNY 6,000.00<' in totals  # 4,100 - 600 + 2,500
    assert "working_capital" in html and "3,500.00" in html  # LN-0001's type and outstanding
    assert "Borrower Co" in html and "99,999.00" not in html
    images = re.findall(
        r'<img class="chart" id="([a-z-]+)" alt="([^"]+)" src="data:image/svg\+xml;base64,([^"]+)"', html
    )
    assert {i for i, _, _ in images} >= {"chart-by-class", "chart-overdue", "chart-top", "chart-alerts-rule"}
    svg = base64.b64decode(dict((i, d) for i, _, d in images)["chart-by-class"]).decode()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<script" not in svg
    assert "正常" in svg and "special mention" in svg  # labels stay text, drawn by the browser's fonts
    alt = dict((i, a) for i, a, _ in images)
    assert "正常 normal: 0.60" in alt["chart-by-class"]  # CNY 6,000.00 = 0.60 x 10,000

    dashboard_sign_in(api, "auditor")  # every bank's loans
    assert 'id="total-outstanding">CNY 105,999.00<' in api.http.get("/dashboard/portfolio").text

    dashboard_sign_in(api, "supplier")  # the bank's risk view of its borrowers: no enterprise sees it
    assert api.http.get("/dashboard/portfolio").status_code == 403
    assert 'id="nav-portfolio"' not in api.http.get("/dashboard/loans").text
