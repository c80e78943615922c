"""A supply-chain voucher's trail exported (issue 22), as a loan's is (`ledger.audit.report`, `.workbook`).

`voucher_trail` verifies the voucher against the chain (`verify_voucher`), then reads what the mirror holds
of it (its tree of parts, its raw events) and the block times, so an export always shows what was verified
and at which block. Three formats render it:

- xlsx: a summary sheet with the verdict at the top, the trail (one row per event) and the parts; typed
  cells as in the loan's workbook (dates in the bank's zone, yuan numbers, integer blocks);
- csv: the trail, one row per event, each row carrying the verdict (`verified`, `verified_at_block`);
- json: the verdict, the voucher, the trail and the parts as one document.

Each event row reads as a person reads it first (date, event in English and Chinese, part, from and to by
name, amount in yuan and its currency, details), then the machine's columns (block, log index, addresses,
fen, transaction and head).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy.engine import Engine

from ledger.audit.report import People, block_times
from ledger.audit.vouchers import VoucherVerification, verify_voucher
from ledger.audit.workbook import MONEY_FORMAT, WHEN_FORMAT, bold_header, set_widths, when_cell
from ledger.chain.vouchers import VoucherContract
from ledger.errors import NotFoundError
from ledger.mirror.voucher_read import VoucherReader, VoucherTree
from ledger.protocol.codes import PartState
from ledger.protocol.dates import iso_date
from ledger.protocol.events import DecodedEvent
from ledger.protocol.hashchain import part_id_of
from ledger.protocol.money import yuan_text

__all__ = [
    "VOUCHER_EVENT_COLUMNS",
    "VOUCHER_EVENT_LABELS",
    "VOUCHER_PART_COLUMNS",
    "VoucherTrail",
    "voucher_csv",
    "voucher_event_rows",
    "voucher_json",
    "voucher_part_rows",
    "voucher_trail",
    "voucher_xlsx",
]

VOUCHER_EVENT_LABELS = {  # event name -> (English, Chinese)
    "VoucherIssued": ("issued and confirmed", "确权签发"),
    "PartTransferred": ("split and transferred", "拆分转让"),
    "FinancingRequested": ("financing requested", "融资申请"),
    "PartFinanced": ("discount financed", "贴现融资"),
    "PartSettled": ("settled at maturity", "到期兑付"),
}

# A person's columns first, then the machine's (block, addresses, fen, hashes); the verdict on every row.
VOUCHER_EVENT_COLUMNS = (
    "date",
    "event_en",
    "event_zh",
    "part_id",
    "from_name",
    "to_name",
    "amount_yuan",
    "currency",
    "detail",
    "block_number",
    "log_index",
    "time",
    "event",
    "parent_part_id",
    "from",
    "to",
    "amount",
    "transaction_hash",
    "head",
    "verified",
    "verified_at_block",
)
VOUCHER_PART_COLUMNS = (
    "part_id",
    "parent_part_id",
    "holder_name",
    "face_yuan",
    "remaining_yuan",
    "currency",
    "state_en",
    "state_zh",
    "financed_by",
    "paid_yuan",
    "interest_yuan",
    "settled_yuan",
    "settled_on",
    "holder",
    "face",
    "financed_block",
    "settled_block",
)
_EVENT_HEADERS = {
    "date": "Date 日期",
    "event_en": "Event",
    "event_zh": "事项",
    "part_id": "Part 分拆编号",
    "from_name": "From 转出方",
    "to_name": "To 转入方",
    "amount_yuan": "Amount 金额",
    "currency": "Currency 币种",
    "detail": "Detail 说明",
}
_PART_HEADERS = {
    "part_id": "Part 分拆编号",
    "parent_part_id": "Parent 上级",
    "holder_name": "Holder 持有方",
    "face_yuan": "Face 票面金额",
    "remaining_yuan": "Remaining 余额",
    "currency": "Currency 币种",
    "state_en": "State",
    "state_zh": "状态",
    "financed_by": "Financed by 融资银行",
    "paid_yuan": "Paid to seller 实付金额",
    "interest_yuan": "Discount interest 贴现利息",
    "settled_yuan": "Settled 兑付金额",
    "settled_on": "Settled on 兑付日期",
}


@dataclass(frozen=True)
class VoucherTrail:
    """What a voucher export shows: the verification, the mirrored tree and events it verified, the block
    times, and the names, currency and zone that put it in a person's terms."""

    verification: VoucherVerification
    tree: VoucherTree
    events: list[DecodedEvent]
    times: Mapping[int, int]
    people: People

    def when(self, block: int | None) -> str:
        return "" if block is None else self.people.date(self.times.get(block))


def voucher_trail(
    engine: Engine,
    vouchers: VoucherContract,
    voucher_id: str,
    people: People,
    *,
    block: int | None = None,
) -> VoucherTrail:
    """Verify the voucher at `block` (default: the mirror's checkpoint) and gather what its export shows.
    `people.currency` is replaced by the voucher's own currency."""
    verification = verify_voucher(engine, vouchers, voucher_id, block=block)
    with engine.connect() as conn:
        reader = VoucherReader(conn, decoder=vouchers.events)
        tree = reader.tree(verification.voucher_id)
        events = reader.events(verification.voucher_id)
    if tree is None:
        raise NotFoundError(f"voucher {voucher_id} is not in the mirror")
    events = [e for e in events if e.block_number <= verification.block_number]
    times = block_times(engine, sorted({e.block_number for e in events} | {verification.block_number}))
    who = People(
        names=people.names,
        orgs=people.orgs,
        loan_number=people.loan_number,
        currency=tree.voucher.currency,
        zone=people.zone,
    )
    return VoucherTrail(verification, tree, events, times, who)


def _who(p: People, address: str = "", org: str = "") -> tuple[str, str]:
    """(name, identifier) of an account or an organisation."""
    return (p.name(address), address) if address else (p.org(org), org)


def voucher_event_rows(trail: VoucherTrail) -> list[dict[str, Any]]:
    """One flat row per event of the voucher, in chain order: VOUCHER_EVENT_COLUMNS."""
    p, cur, v = trail.people, trail.people.currency, trail.verification
    holders: dict[int, str] = {}  # part -> its holder so far (who passes it on, asks, is paid)
    remaining: dict[int, int] = {}
    rows = []
    for e in trail.events:
        a = e.args
        parent: int | None = None
        detail = ""
        if e.name == "VoucherIssued":
            part, amount = 1, int(a["faceValue"])
            (from_name, src), (to_name, dst) = _who(p, org=str(a["coreOrg"])), _who(p, str(a["holder"]))
            holders[1], remaining[1] = dst, amount
            detail = f"maturity 到期日 {iso_date(int(a['maturity']), UTC)}; invoice 发票 {a['invoiceHash']}"
        elif e.name == "PartTransferred":
            part, parent, amount = part_id_of(str(a["head"])), int(a["parentPartId"]), int(a["amount"])
            (from_name, src), (to_name, dst) = _who(p, holders.get(parent, "")), _who(p, str(a["to"]))
            holders[part], remaining[part] = dst, amount
            remaining[parent] = remaining.get(parent, 0) - amount
            detail = f"split from part {parent} 拆自第{parent}部分"
        elif e.name == "FinancingRequested":
            part, amount = int(a["partId"]), remaining.get(int(a["partId"]), 0)
            (from_name, src), (to_name, dst) = _who(p, holders.get(part, "")), _who(p, org=str(a["bankOrg"]))
            rate = int(a["discountRateBps"])
            detail = f"discount rate 年贴现率 {rate / 100:.2f}%"
        elif e.name == "PartFinanced":
            part, amount = int(a["partId"]), int(a["face"])
            (from_name, src), (to_name, dst) = _who(p, str(a["seller"])), _who(p, str(a["bank"]))
            holders[part] = dst
            detail = (
                f"paid 实付 {yuan_text(int(a['paid']), cur)}, interest 贴现利息 "
                f"{yuan_text(int(a['interest']), cur)} at 按 {int(a['discountRateBps']) / 100:.2f}% "
                f"for {int(a['discountDays'])} days 天"
            )
        elif e.name == "PartSettled":
            part, amount = int(a["partId"]), int(a["amount"])
            (from_name, src) = _who(p, org=trail.tree.voucher.core_org)
            (to_name, dst) = _who(p, str(a["holder"]))
            remaining[part] = 0
            detail = f"payment 付款凭证 {a['paymentRef']}"
        else:  # pragma: no cover - the voucher contract emits no other event under a voucher id
            continue
        en, zh = VOUCHER_EVENT_LABELS[e.name]
        rows.append(
            {
                "date": trail.when(e.block_number),
                "event_en": en,
                "event_zh": zh,
                "part_id": part,
                "from_name": from_name,
                "to_name": to_name,
                "amount_yuan": yuan_text(amount, cur),
                "currency": cur,
                "detail": detail,
                "block_number": e.block_number,
                "log_index": e.log_index,
                "time": "" if e.block_number not in trail.times else _utc(trail.times[e.block_number]),
                "event": e.name,
                "parent_part_id": "" if parent is None else parent,
                "from": src,
                "to": dst,
                "amount": amount,
                "transaction_hash": e.transaction_hash,
                "head": str(a.get("head", "")),
                "verified": "true" if v.ok else "false",
                "verified_at_block": v.block_number,
            }
        )
    return rows


def _utc(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def voucher_part_rows(trail: VoucherTrail) -> list[dict[str, Any]]:
    """One row per part of the tree (depth first, chain order): VOUCHER_PART_COLUMNS."""
    p, cur = trail.people, trail.people.currency
    rows = []
    for node in trail.tree.parts:
        part, f, s = node.part, node.financing, node.settlement
        state = PartState(part.state)
        financed_by = ""
        if f is not None:
            financed_by = p.name(f.bank) or p.org(f.bank_org) or f.bank
        elif part.bank_org:
            financed_by = f"asked 已申请: {p.org(part.bank_org) or part.bank_org}"
        rows.append(
            {
                "part_id": part.part_id,
                "parent_part_id": "" if part.parent_part_id is None else part.parent_part_id,
                "holder_name": p.name(part.holder),
                "face_yuan": yuan_text(part.amount, cur),
                "remaining_yuan": yuan_text(part.remaining, cur),
                "currency": cur,
                "state_en": state.label,
                "state_zh": state.label_zh,
                "financed_by": financed_by,
                "paid_yuan": "" if f is None else yuan_text(f.paid, cur),
                "interest_yuan": "" if f is None else yuan_text(f.interest, cur),
                "settled_yuan": "" if s is None else yuan_text(s.amount, cur),
                "settled_on": "" if s is None else trail.when(s.block_number),
                "holder": part.holder,
                "face": part.amount,
                "financed_block": "" if f is None else f.block_number,
                "settled_block": "" if s is None else s.block_number,
            }
        )
    return rows


def _summary(trail: VoucherTrail) -> list[tuple[str, Any]]:
    v, voucher, p = trail.verification, trail.tree.voucher, trail.people
    cur = p.currency
    return [
        ("Verified 核验结果", "VERIFIED 通过" if v.ok else "FAILED 未通过"),
        ("Summary", v.summary()),
        ("Problems 问题", "; ".join(v.problems)),
        ("Proven at block 核验区块", v.block_number),
        ("Block time 区块时间", trail.when(v.block_number)),
        ("Voucher 电子债权凭证", voucher.voucher_id),
        ("Core enterprise 核心企业", p.org(voucher.core_org) or voucher.core_org),
        ("Face value 票面金额", yuan_text(voucher.face_value, cur)),
        ("Settled 已兑付", yuan_text(voucher.settled, cur)),
        ("Maturity 到期日", iso_date(voucher.maturity, UTC)),
        ("Currency 币种", cur),
        ("Time zone 时区", str(p.zone)),
        ("Head on chain", v.head_on_chain),
        ("Head recomputed", v.head_recomputed),
    ]


def voucher_json(trail: VoucherTrail) -> str:
    """The verdict, the voucher, the trail and the parts as one JSON document."""
    v, voucher, cur = trail.verification, trail.tree.voucher, trail.people.currency
    body = {
        "voucher_id": v.voucher_id,
        "ok": v.ok,
        "block_number": v.block_number,
        "block_time": trail.when(v.block_number),
        "head_on_chain": v.head_on_chain,
        "head_recomputed": v.head_recomputed,
        "problems": v.problems,
        "summary": v.summary(),
        "voucher": {
            "voucher_id": voucher.voucher_id,
            "core_org": voucher.core_org,
            "core_name": trail.people.org(voucher.core_org),
            "face_value": voucher.face_value,
            "face_value_yuan": yuan_text(voucher.face_value, cur),
            "settled": voucher.settled,
            "settled_yuan": yuan_text(voucher.settled, cur),
            "currency": cur,
            "maturity_date": iso_date(voucher.maturity, UTC),
            "invoice_hash": voucher.invoice_hash,
        },
        "trail": voucher_event_rows(trail),
        "parts": voucher_part_rows(trail),
    }
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def voucher_csv(trail: VoucherTrail, *, bom: bool = False) -> str:
    """The trail, one row per event; `bom` starts it with a byte-order mark so Excel reads the Chinese."""
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=VOUCHER_EVENT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(voucher_event_rows(trail))
    return out.getvalue()


def _sheet_rows(
    sheet: Any, columns: tuple[str, ...], rows: list[dict[str, Any]], headers: Mapping[str, str]
) -> None:
    """Rows as typed cells: `*_yuan` yuan numbers, dates date-times, fen and block numbers integers."""
    bold_header(sheet, [headers.get(c, c) for c in columns])
    for row in rows:
        values: list[Any] = []
        for c in columns:
            value: Any = row[c]
            if c.endswith("_yuan"):
                value = None if value == "" else Decimal(value)  # exact: the yuan text, never a float
            elif c in ("date", "settled_on"):
                value = when_cell(str(value))
            elif value == "":
                value = None
            values.append(value)
        sheet.append(values)
        n = sheet.max_row
        for i, c in enumerate(columns, start=1):
            if c.endswith("_yuan"):
                sheet.cell(n, i).number_format = MONEY_FORMAT
            elif c in ("date", "settled_on"):
                sheet.cell(n, i).number_format = WHEN_FORMAT


def voucher_xlsx(trail: VoucherTrail) -> bytes:
    """Three sheets: the summary (the verdict first), the trail (one row per event) and the parts."""
    book = Workbook()
    summary = book.active
    summary.title = "Summary 概要"
    for label, fact in _summary(trail):
        summary.append([label, when_cell(fact) if label.startswith("Block time") else fact])
        if label.startswith("Block time"):
            summary.cell(summary.max_row, 2).number_format = WHEN_FORMAT
    for cell in summary["A"]:
        cell.font = Font(bold=True)
    set_widths(summary, {1: 28, 2: 70})

    events = book.create_sheet("Trail 凭证流转")
    _sheet_rows(events, VOUCHER_EVENT_COLUMNS, voucher_event_rows(trail), _EVENT_HEADERS)
    set_widths(events, {1: 20, 2: 20, 3: 12, 4: 12, 5: 22, 6: 22, 7: 16, 9: 48})
    parts = book.create_sheet("Parts 分拆明细")
    _sheet_rows(parts, VOUCHER_PART_COLUMNS, voucher_part_rows(trail), _PART_HEADERS)
    set_widths(parts, {1: 12, 2: 10, 3: 22, 4: 16, 5: 16, 9: 22, 10: 16, 11: 16, 12: 16, 13: 20, 14: 44})
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
