"""A voucher's trail exported (issue 22), as a loan's is: `GET /v1/vouchers/{voucher}/export` as an Excel
workbook, CSV and JSON, and the voucher page's download links. A whole life through the API (issue, split,
financing at Bank B, settlement of every part at maturity) on the running node, the indexer mirroring it into
SQLite or PostgreSQL; the export must carry every event with its yuan and names, the parts, and the verdict
(which turns to FAILED when the mirror is tampered with). Who may not verify the whole tree may not export
it."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from openpyxl import load_workbook
from test_vouchers_api import CORE, VoucherSite, _line_and_voucher, ok, post, refused, vsite  # noqa: F401


def _life(vsite: VoucherSite) -> tuple[str, int, dict[str, object]]:  # noqa: F811
    """Issue 300,000.00 to Supplier One, which passes 120,000.00 to Supplier Two; Supplier Two has it
    financed at Bank B at 3.65%; at maturity the core enterprise settles both parts."""
    api = vsite.api
    voucher = _line_and_voucher(vsite)
    parts = f"/v1/vouchers/{voucher}/parts"
    split = ok(post(api, "supplier", f"{parts}/1/split", {"transfers": [
        {"to": api.address("supplier2"), "amount": "120000.00"}]}))  # fmt: skip
    (two,) = [p["part_id"] for p in split["parts"]]
    ok(post(api, "supplier2", f"{parts}/{two}/financing", {"bank": "Bank B", "discount_rate_bps": 365}))
    terms = ok(post(api, "other_bank", f"{parts}/{two}/financing/accept", {}))["financing"]
    vsite.site.advance(91)
    for part in (1, two):
        ok(post(api, CORE, f"{parts}/{part}/settle", {}))
    return voucher, two, terms


def test_a_vouchers_whole_life_exports_as_excel_csv_and_json(vsite: VoucherSite) -> None:  # noqa: F811
    api = vsite.api
    voucher, two, terms = _life(vsite)
    bank_b = api.address("other_bank")

    r = api.get("auditor", f"/v1/vouchers/{voucher}/export?format=xlsx")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"fundflow-voucher-{voucher[:10]}-block-" in r.headers["content-disposition"]
    book = load_workbook(io.BytesIO(r.content))
    assert book.sheetnames == ["Summary 概要", "Trail 凭证流转", "Parts 分拆明细"]
    summary = {row[0]: row[1] for row in book["Summary 概要"].iter_rows(values_only=True)}
    assert list(summary)[0] == "Verified 核验结果" and summary["Verified 核验结果"] == "VERIFIED 通过"
    assert summary["Problems 问题"] in (None, "")
    assert (
        summary["Core enterprise 核心企业"] == "Borrower Co" and summary["Face value 票面金额"] == "300000.00"
    )
    assert summary["Settled 已兑付"] == "300000.00" and summary["Maturity 到期日"] == vsite.due
    assert isinstance(summary["Block time 区块时间"], datetime)

    trail = book["Trail 凭证流转"]
    header = [c.value for c in trail[1]]
    assert header[:9] == ["Date 日期", "Event", "事项", "Part 分拆编号", "From 转出方", "To 转入方",
                          "Amount 金额", "Currency 币种", "Detail 说明"]  # fmt: skip
    assert trail["A1"].font.bold and trail.freeze_panes == "A2"
    rows = [dict(zip(header, row, strict=True)) for row in trail.iter_rows(min_row=2, values_only=True)]
    seen = [(r["事项"], r["Part 分拆编号"], r["From 转出方"], r["To 转入方"], r["Amount 金额"]) for r in rows]
    assert seen == [
        ("确权签发", 1, "Borrower Co", "Supplier One", Decimal("300000.00")),
        ("拆分转让", two, "Supplier One", "Supplier Two", Decimal("120000.00")),
        ("融资申请", two, "Supplier Two", "Bank B", Decimal("120000.00")),
        ("贴现融资", two, "Supplier Two", "Bank B", Decimal("120000.00")),
        ("到期兑付", 1, "Borrower Co", "Supplier One", Decimal("180000.00")),
        ("到期兑付", two, "Borrower Co", "Bank B", Decimal("120000.00")),
    ]  # fmt: skip
    assert all(isinstance(r["Date 日期"], datetime) and r["Currency 币种"] == "CNY" for r in rows)
    assert all(isinstance(r["block_number"], int) and r["transaction_hash"].startswith("0x") for r in rows)
    assert rows[3]["to"] == bank_b and rows[3]["amount"] == 12_000_000
    assert f"paid 实付 {terms['paid_yuan']}" in rows[3]["Detail 说明"]
    assert trail.cell(2, header.index("Amount 金额") + 1).number_format == "#,##0.00"

    parts = book["Parts 分拆明细"]
    header = [c.value for c in parts[1]]
    prows = [dict(zip(header, row, strict=True)) for row in parts.iter_rows(min_row=2, values_only=True)]
    assert [(p["Part 分拆编号"], p["Parent 上级"], p["Holder 持有方"], p["Face 票面金额"], p["状态"],
             p["Financed by 融资银行"], p["Settled 兑付金额"]) for p in prows] == [
        (1, None, "Supplier One", Decimal("300000.00"), "已兑付", None, Decimal("180000.00")),
        (two, 1, "Bank B", Decimal("120000.00"), "已兑付", "Bank B", Decimal("120000.00")),
    ]  # fmt: skip
    assert prows[1]["Paid to seller 实付金额"] == Decimal(terms["paid_yuan"])
    assert all(isinstance(p["Settled on 兑付日期"], datetime) for p in prows)

    # CSV: the same rows (yuan text), the verdict on each, a byte-order mark for Excel
    r = api.get(CORE, f"/v1/vouchers/{voucher}/export?format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    assert r.content.startswith("\ufeff".encode())
    lines = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [x["event"] for x in lines] == ["VoucherIssued", "PartTransferred", "FinancingRequested",
                                          "PartFinanced", "PartSettled", "PartSettled"]  # fmt: skip
    assert [(x["from_name"], x["to_name"], Decimal(x["amount_yuan"])) for x in lines] == [
        (r["From 转出方"], r["To 转入方"], r["Amount 金额"]) for r in rows
    ]
    assert {x["verified"] for x in lines} == {"true"}

    # JSON: the verdict, the trail and the parts
    body = ok(api.get("bank", f"/v1/vouchers/{voucher}/export?format=json"), 200)
    assert body["ok"] is True and body["problems"] == [] and body["voucher_id"] == voucher
    assert [e["event_zh"] for e in body["trail"]] == [r["事项"] for r in rows]
    assert [p["part_id"] for p in body["parts"]] == [1, two]
    assert (body["voucher"]["core_name"], body["voucher"]["settled_yuan"]) == ("Borrower Co", "300000.00")

    # who may not verify the whole tree may not export it: a holder is told so, a stranger finds nothing
    refused(api.get("supplier2", f"/v1/vouchers/{voucher}/export?format=xlsx"), 403, "covers every branch")
    refused(api.get("outsider", f"/v1/vouchers/{voucher}/export"), 404, "no voucher")
    r = api.get("auditor", f"/v1/vouchers/{voucher}/export?format=pdf")
    assert r.status_code == 422 and "format" in r.text, r.text

    # the voucher page links the export for those who see the whole tree, and the link downloads it
    from api_support import dashboard_sign_in

    dashboard_sign_in(api, "auditor")
    page = api.http.get(f"/dashboard/vouchers/{voucher}")
    link = f"/dashboard/vouchers/{voucher}/export?format=xlsx"
    assert page.status_code == 200 and f'href="{link}"' in page.text, page.text[:400]
    r = api.http.get(link)
    assert r.status_code == 200 and load_workbook(io.BytesIO(r.content)).sheetnames[0] == "Summary 概要"
    dashboard_sign_in(api, "supplier2")
    assert "voucher-downloads" not in api.http.get(f"/dashboard/vouchers/{voucher}").text
    assert api.http.get(link).status_code == 403

    # a tampered mirror: the export says FAILED, naming the column
    with api.services.engine.begin() as conn:
        conn.execute(sa.text("UPDATE voucher_parts SET amount = 1 WHERE voucher_id = :v AND part_id = 1"),
                     {"v": voucher})  # fmt: skip
    body = json.loads(api.get("auditor", f"/v1/vouchers/{voucher}/export?format=json").text)
    assert body["ok"] is False and any("voucher_parts.amount of part 1" in p for p in body["problems"])
    r = api.get("auditor", f"/v1/vouchers/{voucher}/export?format=xlsx")
    summary = {row[0]: row[1] for row in load_workbook(io.BytesIO(r.content))["Summary 概要"].iter_rows(
        values_only=True)}  # fmt: skip
    assert (
        summary["Verified 核验结果"] == "FAILED 未通过" and "voucher_parts.amount" in summary["Problems 问题"]
    )
