"""Issue 20: the audit outputs in a person's terms (names, dates in the bank's zone, yuan with the currency,
English and Chinese labels), the Excel workbook with typed cells, and the dashboard's download buttons."""

from __future__ import annotations

import csv
import io
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

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


# ------------------------------------------------------------------------------------------ payer and alerts


@pytest.fixture
def monitored(api: Api) -> Api:
    from ledger.monitoring.monitor import Monitor

    api.indexer.indexer.after_batch = Monitor().after_batch
    return api


def _alerts(api: Api, query: str = "") -> list[dict[str, Any]]:
    r = api.get("auditor", f"/v1/alerts{query}")
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_the_payer_is_who_signed_and_alerts_name_people_in_both_languages(monitored: Api) -> None:
    api = monitored
    api.open_loan(loan_number=LOAN, principal="10000.00")
    borrower_lot = api.disburse(LOAN, "borrower", "2000.00", purpose=4)
    # The bank, servicing the loan, pays out of the borrower's lot for a purpose the loan does not allow.
    r = api.pay("bank", LOAN, borrower_lot, "subsupplier", "300.00", purpose=9)
    assert r.status_code == 201, r.text
    child = r.json()["lot_ids"][0]

    received = api.get("subsupplier", "/v1/payments/received").json()["items"]
    assert [(i["lot_id"], i["paid_by"], i["paid_by_name"]) for i in received] == [
        (child, api.address("bank"), "Bank A")
    ]
    dashboard_sign_in(api, "subsupplier")
    row = api.http.get("/dashboard/received").text.split(f'data-lot-id="{child}"')[1].split("</tr>")[0]
    assert "Bank A" in row and "Borrower Co" not in row

    deadline = time.monotonic() + 20
    while not (found := [a for a in _alerts(api) if a["rule"] == "undeclared_use"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    alert = found[0]
    bank, borrower = api.address("bank"), api.address("borrower")
    assert alert["explanation"].startswith(
        f"The lender ({bank[:6]}…{bank[-4:]}) paid CNY 300.00 to {api.address('subsupplier')[:6]}…"
    )
    assert f"out of the lot held by the borrower ({borrower[:6]}…{borrower[-4:]})" in alert["explanation"]
    assert alert["explanation_named"].startswith(f"The lender (Bank A, {bank[:6]}…{bank[-4:]}) paid")
    assert f"the borrower (Borrower Co, {borrower[:6]}…" in alert["explanation_named"]
    assert (alert["rule_en"], alert["rule_zh"]) == ("Use outside the declared purposes", "资金用途超出约定")
    assert (alert["severity_zh"], alert["state_zh"]) == ("高", "未处理")
    assert alert["source_time"].endswith("+08:00")

    # date filters: the bank's calendar day of the alert, and the day before
    day = date.fromisoformat(alert["source_time"][:10])
    assert [a["id"] for a in _alerts(api, f"?since={day}&until={day}&rule=undeclared_use")] == [alert["id"]]
    assert _alerts(api, f"?until={day - timedelta(days=1)}") == []
    assert _alerts(api, f"?since={day + timedelta(days=1)}") == []

    dashboard_sign_in(api, "auditor")
    api.http.get("/dashboard/lang/zh")
    page = api.http.get(f"/dashboard/alerts?rule=undeclared_use&severity=high&loan={LOAN}&since={day}").text
    assert "资金用途超出约定" in page and "Bank A" in page and "未处理" in page
    assert f'data-alert-id="{alert["id"]}"' in page
    empty = api.http.get(f"/dashboard/alerts?rule=prohibited_use&loan={LOAN}").text
    assert 'data-alert-id="' not in empty


def test_the_loans_table_downloads_as_csv_and_excel_in_a_persons_terms(
    api: Api, paid: dict[str, str]
) -> None:
    dashboard_sign_in(api, "bank")
    assert 'href="/dashboard/loans-export/xlsx"' in api.http.get("/dashboard/loans").text
    r = api.http.get("/dashboard/loans-export/csv")
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    row = next(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert (row["loan_number"], row["borrower"], row["lender"]) == (LOAN, "Borrower Co", "Bank A")
    assert (row["principal_yuan"], row["outstanding_yuan"], row["risk_class_zh"]) == (
        "10000.00",
        "5000.00",
        "正常",
    )
    assert row["opened"].endswith("+08:00") and row["maturity_date"]
    book = load_workbook(io.BytesIO(api.http.get("/dashboard/loans-export/xlsx").content))
    sheet = book["Loans 贷款"]
    header = [c.value for c in sheet[1]]
    cells = dict(zip(header, sheet[2], strict=True))
    assert cells["Loan 贷款编号"].value == LOAN
    assert Decimal(str(cells["Outstanding 贷款余额"].value)) == Decimal("5000.00")
    assert isinstance(cells["Opened 放款日期"].value, datetime)
    dashboard_sign_in(api, "subsupplier")  # the supplier's own loans, without the borrower's risk file
    row = next(
        csv.DictReader(io.StringIO(api.http.get("/dashboard/loans-export/csv").content.decode("utf-8-sig")))
    )
    assert row["repaid_yuan"] == "" and row["risk_class"] == ""
