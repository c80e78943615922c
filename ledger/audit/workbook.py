"""The trail as an Excel workbook (.xlsx, openpyxl): where auditors and risk staff work.

Typed cells, so the numbers add up in Excel without a conversion step: dates are date-times (the bank's
zone, written without an offset because Excel has none; the zone is named in the summary sheet), amounts
are yuan numbers with two decimals (written from exact decimals, never through a float of fen), block
numbers are integers; addresses, hashes and ids stay text. Three sheets: a summary, the trail (one row per
event, the CSV's columns) and the lots.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from ledger.audit.report import EXPORT_COLUMNS, HUMAN_COLUMNS, People, trail_rows
from ledger.audit.verify import Verification
from ledger.protocol.money import yuan_text

__all__ = [
    "MONEY_FORMAT",
    "WHEN_FORMAT",
    "XLSX_MEDIA_TYPE",
    "bold_header",
    "export_xlsx",
    "loans_csv",
    "loans_xlsx",
    "set_widths",
    "when_cell",
    "yuan_cell",
]

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

MONEY_FORMAT = "#,##0.00"
WHEN_FORMAT = "yyyy-mm-dd hh:mm:ss"
_HEADERS = {  # column -> what the header cell says (English and Chinese)
    "date": "Date 日期",
    "event_en": "Event",
    "event_zh": "事项",
    "payee_name": "Payee 收款方",
    "amount_yuan": "Amount 金额",
    "currency": "Currency 币种",
    "purpose_en": "Purpose",
    "purpose_zh": "用途",
}


def yuan_cell(fen: Any, currency: str) -> Decimal | None:
    """Fen as a yuan number for a cell, exact (through the decimal text, never a float); None for none."""
    if fen in (None, ""):
        return None
    return Decimal(yuan_text(int(fen), currency))


def when_cell(iso: str) -> datetime | None:
    """An ISO time in the bank's zone as a cell's date-time (Excel has no offsets; the zone is named)."""
    return datetime.fromisoformat(iso).replace(tzinfo=None) if iso else None


def bold_header(sheet: Any, headers: list[str]) -> None:
    """The sheet's first row: bold headers, frozen above the rows."""
    sheet.append(headers)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "A2"


def set_widths(sheet: Any, widths: Mapping[int, int]) -> None:
    for index, width in widths.items():
        sheet.column_dimensions[get_column_letter(index)].width = width


def export_xlsx(
    verification: Verification, times: Mapping[int, int] | None = None, people: People | None = None
) -> bytes:
    p = people or People()
    v = verification
    book = Workbook()
    summary = book.active
    summary.title = "Summary 概要"
    for label, fact in (
        ("Loan 贷款", p.loan_number or v.loan_id),
        ("Loan id", v.loan_id),
        ("Verified 核验结果", "VERIFIED 通过" if v.ok else "FAILED 未通过"),
        ("Summary", v.summary),
        ("Proven at block 核验区块", v.block_number),
        ("Block time 区块时间", when_cell(p.date((times or {}).get(v.block_number)))),
        ("Time zone 时区", str(p.zone)),
        ("Currency 币种", p.currency),
        ("Head on chain", v.head_on_chain),
        ("Chain / contract", f"{v.chain_id} / {v.contract}"),
    ):
        summary.append([label, fact])
        if isinstance(fact, datetime):
            summary.cell(summary.max_row, 2).number_format = WHEN_FORMAT
    for cell in summary["A"]:
        cell.font = Font(bold=True)
    set_widths(summary, {1: 26, 2: 70})

    trail = book.create_sheet("Trail 资金流向")
    columns = list(HUMAN_COLUMNS + EXPORT_COLUMNS)
    bold_header(trail, [_HEADERS.get(c, c) for c in columns])
    for row in trail_rows(v, times, p):
        values: list[Any] = []
        for c in columns:
            value: Any = row[c]
            if c == "date":
                value = when_cell(str(value))
            elif c == "amount_yuan":
                value = yuan_cell(row["amount"], p.currency)
            elif c in ("amount", "block_number", "log_index"):
                value = int(value) if value not in ("", None) else None
            elif c in ("verified", "declared_use"):
                value = None if value == "" else value == "true"
            values.append(value)
        trail.append(values)
        n = trail.max_row
        trail.cell(n, columns.index("date") + 1).number_format = WHEN_FORMAT
        trail.cell(n, columns.index("amount_yuan") + 1).number_format = MONEY_FORMAT
    set_widths(trail, {1: 20, 2: 18, 3: 14, 4: 22, 5: 18, 6: 9, 7: 18, 8: 14})

    lots = book.create_sheet("Lots 资金批次")
    bold_header(
        lots,
        [
            "Holder 持有方",
            "Amount 金额",
            "Remaining 余额",
            "Currency 币种",
            "Holder address",
            "Lot id",
            "Parent lot id",
            "Verified",
        ],
    )
    for lot in v.lots:
        lots.append(
            [
                p.name(lot.holder or ""),
                yuan_cell(lot.amount, p.currency),
                yuan_cell(lot.remaining, p.currency),
                p.currency,
                lot.holder or "",
                lot.lot_id,
                lot.parent_lot_id or "",
                lot.ok,
            ]
        )
        n = lots.max_row
        lots.cell(n, 2).number_format = lots.cell(n, 3).number_format = MONEY_FORMAT
    set_widths(lots, {1: 24, 2: 18, 3: 18, 5: 44, 6: 68, 7: 68})

    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_LOAN_HEADERS = {
    "loan_number": "Loan 贷款编号",
    "borrower": "Borrower 借款人",
    "lender": "Lender 贷款行",
    "currency": "Currency 币种",
    "principal_yuan": "Principal 本金",
    "disbursed_yuan": "Disbursed 已放款",
    "repaid_yuan": "Repaid 已还款",
    "outstanding_yuan": "Outstanding 贷款余额",
    "opened": "Opened 放款日期",
    "maturity_date": "Maturity 到期日",
    "status": "Status",
    "status_zh": "状态",
    "risk_class": "Risk class",
    "risk_class_zh": "五级分类",
}


def loans_csv(rows: list[dict[str, Any]]) -> str:
    """A loan list (the dashboard's loans table) as CSV with a byte-order mark for Excel."""
    out = io.StringIO()
    out.write("\ufeff")
    columns = list(rows[0]) if rows else list(_LOAN_HEADERS)
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def loans_xlsx(rows: list[dict[str, Any]]) -> bytes:
    """A loan list as a workbook: yuan as numbers, dates as dates, the rest as text."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Loans 贷款"
    columns = list(rows[0]) if rows else list(_LOAN_HEADERS)
    bold_header(sheet, [_LOAN_HEADERS.get(c, c) for c in columns])
    for row in rows:
        values: list[Any] = []
        for c in columns:
            value: Any = row[c]
            if c.endswith("_yuan"):
                value = Decimal(value) if value else None
            elif c == "opened":
                value = when_cell(str(value))
            elif c == "maturity_date":
                value = date.fromisoformat(value) if value else None
            values.append(value)
        sheet.append(values)
        n = sheet.max_row
        for i, c in enumerate(columns, start=1):
            if c.endswith("_yuan"):
                sheet.cell(n, i).number_format = MONEY_FORMAT
            elif c == "opened":
                sheet.cell(n, i).number_format = WHEN_FORMAT
            elif c == "maturity_date":
                sheet.cell(n, i).number_format = "yyyy-mm-dd"
    set_widths(sheet, {1: 16, 2: 24, 3: 24, 5: 18, 6: 18, 7: 18, 8: 18, 9: 18, 10: 12})
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
