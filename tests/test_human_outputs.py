"""Issue 20: the audit outputs in a person's terms (names, dates in the bank's zone, yuan with the currency,
English and Chinese labels), the Excel workbook with typed cells, and the dashboard's download buttons."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal

import pytest
from api_support import Api, dashboard_sign_in
from openpyxl import load_workbook

from ledger.audit.workbook import XLSX_MEDIA_TYPE

pytestmark = pytest.mark.slow
LOAN = "LN-2026-0001"
BASE = f"/v1/loans/{LOAN}"


@pytest.fixture
def paid(api: Api) -> dict[str, str]:
    """LN-2026-0001: CNY 5,000.00 disbursed to Supplier One for raw materials, CNY 1,234.56 paid on."""
    api.open_loan(loan_number=LOAN, principal="10000.00")
    lot = api.disburse(LOAN, "supplier", "5000.00", purpose=1)
    r = api.pay("supplier", LOAN, lot, "subsupplier", "1234.56", purpose=1)
    assert r.status_code == 201, r.text
    return {"lot": lot, "child": r.json()["lot_ids"][0]}


def test_csv_export_leads_with_names_dates_yuan_and_both_languages(api: Api, paid: dict[str, str]) -> None:
    r = api.get("auditor", f"{BASE}/export?format=csv")
    assert r.status_code == 200, r.text
    assert r.content.startswith("\ufeff".encode())  # Excel reads the Chinese labels as UTF-8
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert list(rows[0])[:8] == [
        "date",
        "event_en",
        "event_zh",
        "payee_name",
        "amount_yuan",
        "currency",
        "purpose_en",
        "purpose_zh",
    ]
    disbursed, paid_row = rows[1], rows[2]
    assert (disbursed["event_en"], disbursed["event_zh"], disbursed["payee_name"]) == (
        "disbursement",
        "放款",
        "Supplier One",
    )
    assert (disbursed["amount_yuan"], disbursed["currency"], disbursed["amount"]) == (
        "5000.00",
        "CNY",
        "500000",
    )
    assert (disbursed["purpose_en"], disbursed["purpose_zh"]) == ("raw materials", "原材料采购")
    assert (paid_row["payee_name"], paid_row["amount_yuan"], paid_row["event_zh"]) == (
        "Sub Supplier",
        "1234.56",
        "支付",
    )
    assert disbursed["date"].endswith("+08:00") and disbursed["time"].endswith("Z")
    assert datetime.fromisoformat(disbursed["date"]) == datetime.fromisoformat(
        disbursed["time"]
    )  # same instant


def test_excel_export_has_typed_cells(api: Api, paid: dict[str, str]) -> None:
    r = api.get("bank", f"{BASE}/export?format=xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX_MEDIA_TYPE
    assert r.headers["content-disposition"].startswith(f'attachment; filename="fundflow-trail-{LOAN}-block-')
    book = load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["Summary 概要", "Trail 资金流向", "Lots 资金批次"]
    summary = {row[0]: row[1] for row in book["Summary 概要"].iter_rows(values_only=True)}
    assert summary["Loan 贷款"] == LOAN and summary["Verified 核验结果"] == "VERIFIED 通过"
    assert summary["Time zone 时区"] == "Asia/Shanghai" and isinstance(
        summary["Block time 区块时间"], datetime
    )
    trail = book["Trail 资金流向"]
    header = [c.value for c in trail[1]]
    disbursed = trail[3]
    cell = dict(zip(header, disbursed, strict=True))
    assert isinstance(cell["Date 日期"].value, datetime)
    assert Decimal(str(cell["Amount 金额"].value)) == Decimal("5000.00")
    assert cell["Amount 金额"].number_format == "#,##0.00"
    assert cell["Payee 收款方"].value == "Supplier One" and cell["事项"].value == "放款"
    assert cell["amount"].value == 500000 and isinstance(cell["block_number"].value, int)
    assert cell["verified"].value is True
    lots = list(book["Lots 资金批次"].iter_rows(min_row=2, values_only=True))
    assert lots[0][:3] == ("Supplier One", 5000, 3765.44)


def test_report_names_people_dates_and_yuan_in_both_languages(api: Api, paid: dict[str, str]) -> None:
    r = api.get("auditor", f"{BASE}/report")
    assert r.status_code == 200, r.text
    page = r.text
    assert f"<strong>{LOAN}</strong>" in page and "资金流向审计报告" in page
    assert "Supplier One" in page and "Sub Supplier" in page
    assert "CNY 5,000.00" in page and "CNY 1,234.56" in page
    assert "disbursement 放款" in page and "raw materials 原材料采购" in page
    assert "+08:00" in page and "Asia/Shanghai" in page
    assert "<script" not in page and "style-src 'sha256-" in r.headers["content-security-policy"]


def test_loan_page_has_download_buttons_that_download(api: Api, paid: dict[str, str]) -> None:
    dashboard_sign_in(api, "auditor")
    page = api.http.get(f"/dashboard/loans/{LOAN}").text
    for kind in ("report", "csv", "xlsx", "bundle"):
        assert f'href="/dashboard/loans/{LOAN}/download/{kind}"' in page
    xlsx = api.http.get(f"/dashboard/loans/{LOAN}/download/xlsx")
    assert xlsx.status_code == 200 and xlsx.headers["content-type"] == XLSX_MEDIA_TYPE
    assert load_workbook(io.BytesIO(xlsx.content))["Summary 概要"]["B1"].value == LOAN
    report = api.http.get(f"/dashboard/loans/{LOAN}/download/report")
    assert report.status_code == 200 and "Supplier One" in report.text
    assert report.headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    bundle = api.http.get(f"/dashboard/loans/{LOAN}/download/bundle")
    assert bundle.status_code == 200 and bundle.json()["format"] == "fundflow-proof-bundle"
    assert api.http.get(f"/dashboard/loans/{LOAN}/download/pdf").status_code == 404

    dashboard_sign_in(api, "subsupplier")  # takes part in the trail, does not see all of it
    page = api.http.get(f"/dashboard/loans/{LOAN}").text
    assert 'id="downloads"' not in page
    assert api.http.get(f"/dashboard/loans/{LOAN}/download/csv").status_code == 403
