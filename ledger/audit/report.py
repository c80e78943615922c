"""Audit outputs of a verified trail: CSV and JSON exports, and a printable HTML audit report.

This renders a `Verification` (ledger/audit/verify.py) plus what the mirror knows about attestations and
block times; nothing is re-derived, so a report always shows exactly what was verified, at which block. The
HTML is one self-contained file (inline CSS, no scripts, no external fonts or CDN) that prints cleanly on A4.
Served over HTTP it carries `REPORT_CSP`, which allows that one inline style by its hash and nothing else.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any

from eth_utils import keccak
from sqlalchemy.engine import Engine

from ledger.audit.verify import DOCUMENT_FIELDS, Verification
from ledger.mirror.read import Mirror
from ledger.protocol.dates import iso_time
from ledger.protocol.money import format_amount, yuan_text
from ledger.protocol.purposes import describe

__all__ = [
    "EVENT_LABELS",
    "EXPORT_COLUMNS",
    "HUMAN_COLUMNS",
    "REPORT_CSP",
    "AttestationView",
    "People",
    "attestations_of",
    "block_times",
    "export_csv",
    "export_json",
    "render_html",
    "report_hash",
    "trail_rows",
]

EXPORT_COLUMNS = (
    "block_number",
    "log_index",
    "time",
    "event",
    "lot_id",
    "parent_lot_id",
    "payee",
    "amount",
    "purpose",
    "declared_use",
    "document_hash",
    "head",
    "transaction_hash",
    "block_hash",
    "verified",
    "problems",
)


# --- issue 20: outputs in a person's terms -------------------------------------------------------------
# A person reads names, dates, yuan and labels in English and Chinese; a machine reads addresses, blocks and
# fen. The exports carry both: these columns come first, the machine's columns (EXPORT_COLUMNS, unchanged)
# after them.

HUMAN_COLUMNS = (
    "date",
    "event_en",
    "event_zh",
    "payee_name",
    "amount_yuan",
    "currency",
    "purpose_en",
    "purpose_zh",
)

EVENT_LABELS = {  # event name -> (English, Chinese)
    "LoanOpened": ("loan opened", "贷款发放登记"),
    "Disbursed": ("disbursement", "放款"),
    "Paid": ("payment", "支付"),
    "LotConfirmed": ("receipt confirmed", "收款确认"),
    "LotDisputed": ("payment disputed", "收款异议"),
    "Repaid": ("repayment", "还款"),
    "LoanClosed": ("loan closed", "贷款结清"),
    "RiskClassified": ("risk classified", "风险分类"),
    "CollateralValued": ("collateral valued", "押品估值"),
    "InspectionRecorded": ("inspection recorded", "贷后检查"),
    "LoanRestructured": ("loan restructured", "贷款重组"),
    "TrailAttested": ("trail attested", "审计鉴证"),
}
# The post-loan file's records (RecordFiled) by record kind (FileRecordKind), in the banker's words.
RECORD_LABELS = {
    0: ("guarantee given", "担保登记"),
    1: ("guarantee released", "担保解除"),
    2: ("recovery after write-off", "核销后清收"),
    3: ("asset-preservation case", "财产保全"),
    4: ("appraiser engaged", "委托评估机构"),
    5: ("law firm engaged", "委托律师事务所"),
    6: ("collection agency engaged", "委托催收机构"),
    7: ("engagement ended", "终止委托"),
    8: ("collateral item registered or changed", "押品登记或变更"),
    9: ("collateral appraised", "押品评估"),
}


@dataclass(frozen=True)
class People:
    """What turns the chain's identifiers into a person's terms: participant names by account address and
    by organisation id (off chain, from the participants directory), the loan number, its currency, and the
    bank's time zone for dates."""

    names: Mapping[str, str] = field(default_factory=dict)
    orgs: Mapping[str, str] = field(default_factory=dict)
    loan_number: str | None = None
    currency: str = "CNY"
    zone: tzinfo = UTC

    def name(self, address: str) -> str:
        if not address:
            return ""
        return self.names.get(address) or next(
            (n for a, n in self.names.items() if a.lower() == address.lower()), ""
        )

    def org(self, org_id: str) -> str:
        return self.orgs.get(org_id) or self.orgs.get(org_id.lower(), "")

    def date(self, timestamp: int | None) -> str:
        return "" if timestamp is None else iso_time(timestamp, self.zone)


@dataclass(frozen=True)
class AttestationView:
    """An auditor's attestation, and whether the trail has grown since it."""

    auditor_org: str
    head: str
    report_hash: str
    block_number: int
    transaction_hash: str
    time: str | None
    current: bool
    events_since: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "auditor_org": self.auditor_org,
            "head": self.head,
            "report_hash": self.report_hash,
            "block_number": self.block_number,
            "transaction_hash": self.transaction_hash,
            "time": self.time,
            "current": self.current,
            "events_since": self.events_since,
        }


def _iso(timestamp: int | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def block_times(engine: Engine, numbers: Sequence[int]) -> dict[int, int]:
    """Block timestamps the mirror keeps, for the blocks asked."""
    with engine.connect() as conn:
        return Mirror(conn).block_times(numbers)


def attestations_of(
    verification: Verification, times: Mapping[int, int] | None = None
) -> list[AttestationView]:
    """The loan's attestations as the verified trail holds them, each with how many changes followed it."""
    times = times or {}
    chained = [e for e in verification.events if e.name != "TrailAttested"]
    out = []
    for e in verification.events:
        if e.name != "TrailAttested":
            continue
        later = sum(1 for c in chained if (c.block_number, c.log_index) > (e.block_number, e.log_index))
        head = str(e.args.get("head", ""))
        out.append(
            AttestationView(
                auditor_org=str(e.args.get("auditorOrg", "")),
                head=head,
                report_hash=str(e.args.get("reportHash", "")),
                block_number=e.block_number,
                transaction_hash=e.transaction_hash,
                time=_iso(times.get(e.block_number)),
                current=head.lower() == verification.head_on_chain and not verification.trail_grew_since,
                events_since=later,
            )
        )
    return out


def trail_rows(
    verification: Verification, times: Mapping[int, int] | None = None, people: People | None = None
) -> list[dict[str, Any]]:
    """One flat row per event, in chain order (the export's rows): HUMAN_COLUMNS, then EXPORT_COLUMNS."""
    times, people = times or {}, people or People()
    rows = []
    for e in verification.events:
        a = e.args
        document = next((str(a[f]) for f in DOCUMENT_FIELDS if f in a), "")
        payee = str(a.get("payee", a.get("borrower", "")))
        raw_amount = a.get("amount", a.get("principal", a.get("value")))
        en, zh = EVENT_LABELS.get(e.name, (e.name, e.name))
        if e.name == "RecordFiled":
            kind = int(a.get("recordKind", -1))
            en, zh = RECORD_LABELS.get(kind, ("post-loan file record", "贷后档案记录"))
        if e.name == "TrailAttested":
            payee_name = people.org(str(a.get("auditorOrg", "")))
        elif e.name == "RecordFiled":  # who filed it: the lender, or the appraiser who signed a valuation
            payee_name = people.name(str(a.get("actor", "")))
        else:
            payee_name = people.name(payee)
        rows.append(
            {
                "date": people.date(times.get(e.block_number)),
                "event_en": en,
                "event_zh": zh,
                "payee_name": payee_name,
                "amount_yuan": "" if raw_amount is None else yuan_text(int(raw_amount), people.currency),
                "currency": "" if raw_amount is None else people.currency,
                "purpose_en": "" if "purpose" not in a else describe(int(a["purpose"]), "en"),
                "purpose_zh": "" if "purpose" not in a else describe(int(a["purpose"]), "zh"),
                "block_number": e.block_number,
                "log_index": e.log_index,
                "time": _iso(times.get(e.block_number)) or "",
                "event": e.name,
                "lot_id": str(a.get("lotId", "")),
                "parent_lot_id": str(a.get("parentLotId", "")),
                "payee": str(a.get("payee", a.get("borrower", ""))),
                "amount": str(a.get("amount", a.get("principal", a.get("value", "")))),
                "purpose": "" if "purpose" not in a else str(a["purpose"]),
                "declared_use": "" if "declaredUse" not in a else str(bool(a["declaredUse"])).lower(),
                "document_hash": document,
                "head": e.head or "",
                "transaction_hash": e.transaction_hash,
                "block_hash": e.block_hash,
                "verified": "true" if e.ok else "false",
                "problems": "; ".join(e.problems),
            }
        )
    return rows


def export_csv(
    verification: Verification,
    times: Mapping[int, int] | None = None,
    people: People | None = None,
    *,
    bom: bool = False,
) -> str:
    """`amount` stays fen (the machine's column); `amount_yuan` + `currency` are what a person reads. `bom`
    starts the file with a UTF-8 byte-order mark, so Excel opens the Chinese labels as written."""
    out = io.StringIO()
    if bom:
        out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=HUMAN_COLUMNS + EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(trail_rows(verification, times, people))
    return out.getvalue()


def export_json(
    verification: Verification, times: Mapping[int, int] | None = None, people: People | None = None
) -> str:
    """The verification result plus the flat trail and the attestations, as one JSON document."""
    body = verification.to_dict()
    body["trail"] = trail_rows(verification, times, people)
    body["attestations"] = [a.to_dict() for a in attestations_of(verification, times)]
    return json.dumps(body, indent=2) + "\n"


def report_hash(report_html: str) -> str:
    """What an auditor's attestation commits to: keccak256 of the report file's bytes."""
    return "0x" + keccak(report_html.encode("utf-8")).hex()


_CSS = """
@page { size: A4 landscape; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10pt/1.4 "Helvetica Neue", Arial, "Noto Sans CJK SC", sans-serif; color: #111; margin: 24px; }
h1 { font-size: 16pt; margin: 0 0 4px; }
h2 { font-size: 12pt; margin: 18px 0 6px; border-bottom: 1px solid #999; }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; }
.meta dt { color: #555; } .meta dd { margin: 0; }
code, .mono { font-family: "SFMono-Regular", Consolas, "Liberation Mono", monospace; font-size: 8.5pt;
  word-break: break-all; }
.verdict { display: inline-block; padding: 4px 10px; font-weight: bold; border: 2px solid; }
.ok { color: #0a5d2c; } .bad { color: #a0111b; }
table { border-collapse: collapse; width: 100%; font-size: 8.5pt; }
th, td { border: 1px solid #bbb; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #eee; } td.num { text-align: right; white-space: nowrap; }
tr { break-inside: avoid; } thead { display: table-header-group; }
ul.problems { margin: 4px 0; padding-left: 18px; }
footer { margin-top: 18px; color: #555; font-size: 8pt; }
@media print { body { margin: 0; } a { color: inherit; text-decoration: none; } }
"""


# The page's one <style> element holds exactly _CSS, so a CSP can allow it by hash (CSP 3 hash-source: base64
# of the SHA-256 of the element's text) instead of 'unsafe-inline': no other inline style or any script runs.
_CSS_HASH = "sha256-" + base64.b64encode(hashlib.sha256(_CSS.encode("utf-8")).digest()).decode("ascii")
REPORT_CSP = (
    f"default-src 'none'; style-src '{_CSS_HASH}'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _money(amount: int | None, currency: str) -> str:
    return "" if amount is None else f"{currency} {format_amount(int(amount), currency, code=False)}"


def _short(value: str) -> str:
    return value if len(value) <= 14 else f"{value[:10]}…{value[-4:]}"


def render_html(
    verification: Verification,
    *,
    times: Mapping[int, int] | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
    people: People | None = None,
) -> str:
    """The printable audit report: verdict, the block proven at, problems, attestations and the trail, in a
    person's terms (names, dates in the bank's zone, yuan, English and Chinese) with the machine's
    identifiers beside them."""
    times, p = times or {}, people or People()
    cur = p.currency
    generated = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    v = verification
    grew = f"yes, head now {_e(v.head_now)}" if v.trail_grew_since else "no"
    verdict = (
        '<span class="verdict ok">VERIFIED</span>' if v.ok else '<span class="verdict bad">FAILED</span>'
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title or 'Audit report ' + v.loan_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title or 'Fund-flow audit report')}</h1>",
        f"<p>{verdict} {_e(v.summary)}</p>",
        '<dl class="meta">',
        f"<dt>Loan 贷款</dt><dd><strong>{_e(p.loan_number or '')}</strong> <code>{_e(v.loan_id)}</code></dd>",
        f"<dt>Chain / contract</dt><dd>{v.chain_id} / <code>{_e(v.contract)}</code></dd>",
        f"<dt>Proven at block 核验区块</dt><dd>{_e(p.date(times.get(v.block_number)))} · "
        f"block {v.block_number} <code>{_e(v.block_hash)}</code></dd>",
        f"<dt>Head (headOf)</dt><dd><code>{_e(v.head_on_chain)}</code></dd>",
        f"<dt>Head recomputed</dt><dd><code>{_e(v.head_recomputed)}</code></dd>",
        f"<dt>Trail grew since</dt><dd>{grew}</dd>",
        f"<dt>Generated</dt><dd>{_e(generated)}</dd>",
        "</dl>",
    ]
    problems = v.problems()
    parts.append("<h2>Problems 问题</h2>")
    if problems:
        parts.append('<ul class="problems bad">' + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    else:
        parts.append("<p class='ok'>None: every event, lot and stored document matches the chain.</p>")

    parts.append("<h2>Attestations 审计鉴证</h2>")
    attestations = attestations_of(v, times)
    if attestations:
        parts.append(
            "<table><thead><tr><th>date 日期</th><th>block</th><th>auditor 审计方</th><th>head attested</th>"
            "<th>report hash</th><th>status</th></tr></thead><tbody>"
        )
        for a in attestations:
            status = "current" if a.current else f"trail grew since ({a.events_since} changes after)"
            parts.append(
                f"<tr><td>{_e(p.date(times.get(a.block_number)))}</td><td class='num'>{a.block_number}</td>"
                f"<td>{_e(p.org(a.auditor_org))} <span class='mono'>{_e(_short(a.auditor_org))}</span></td>"
                f"<td class='mono'>{_e(a.head)}</td>"
                f"<td class='mono'>{_e(a.report_hash)}</td><td>{_e(status)}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No auditor has attested this trail yet.</p>")

    parts.append("<h2>Lots 资金批次</h2>")
    parts.append(
        "<table><thead><tr><th>holder 持有方</th><th>amount 金额</th><th>remaining 余额</th><th>lot</th>"
        "<th>parent</th><th>verified</th></tr></thead><tbody>"
    )
    for lot in v.lots:
        cls = "ok" if lot.ok else "bad"
        holder, parent = lot.holder or "", lot.parent_lot_id or ""
        parts.append(
            f"<tr><td>{_e(p.name(holder))} <span class='mono'>{_e(holder)}</span></td>"
            f"<td class='num'>{_e(_money(lot.amount, cur))}</td>"
            f"<td class='num'>{_e(_money(lot.remaining, cur))}</td>"
            f"<td class='mono' title='{_e(lot.lot_id)}'>{_e(_short(lot.lot_id))}</td>"
            f"<td class='mono' title='{_e(parent)}'>{_e(_short(parent))}</td>"
            f"<td class='{cls}'>{'yes' if lot.ok else _e('; '.join(lot.problems))}</td></tr>"
        )
    parts.append("</tbody></table>")

    parts.append("<h2>Trail 资金流向</h2>")
    parts.append(
        "<table><thead><tr><th>date 日期</th><th>event 事项</th><th>payee 收款方</th><th>amount 金额</th>"
        "<th>purpose 用途</th><th>block</th><th>lot</th><th>document</th><th>head</th><th>verified</th>"
        "</tr></thead><tbody>"
    )
    for row in trail_rows(v, times, p):
        cls = "ok" if row["verified"] == "true" else "bad"
        purpose = f"{row['purpose_en']} {row['purpose_zh']}".strip()
        if row["declared_use"] not in ("", "true"):
            purpose += " (outside declared use 超出约定用途)"
        amount = f"{cur} {format_amount(int(row['amount']), cur, code=False)}" if row["amount"] else ""
        parts.append(
            f"<tr><td>{_e(row['date'])}</td><td>{_e(row['event_en'])} {_e(row['event_zh'])}</td>"
            f"<td>{_e(row['payee_name'])} <span class='mono'>{_e(_short(row['payee']))}</span></td>"
            f"<td class='num'>{_e(amount)}</td><td>{_e(purpose)}</td>"
            f"<td class='num'>{row['block_number']}.{row['log_index']}</td>"
            f"<td class='mono' title='{_e(row['lot_id'])}'>{_e(_short(row['lot_id']))}</td>"
            f"<td class='mono' title='{_e(row['document_hash'])}'>"
            f"{_e(_short(row['document_hash']))}</td>"
            f"<td class='mono' title='{_e(row['head'])}'>{_e(_short(row['head']))}</td>"
            f"<td class='{cls}'>{'yes' if cls == 'ok' else _e(row['problems'])}</td></tr>"
        )
    parts.append("</tbody></table>")

    docs = [d for d in v.documents if d.present]
    if v.documents:
        parts.append("<h2>Documents</h2>")
        parts.append(
            f"<p>{len(docs)} of {len(v.documents)} referenced documents and kept terms versions are in the "
            "store; each stored one was re-hashed (keccak256; a terms version of its canonical JSON) and "
            "compared with the hash on chain.</p>"
        )
        parts.append(
            "<table><thead><tr><th>hash</th><th>kind</th><th>referenced by</th><th>result</th></tr></thead>"
            "<tbody>"
        )
        for d in v.documents:
            result = "not stored" if not d.present else ("matches" if d.ok else d.problem or "mismatch")
            cls = "ok" if d.ok else "bad"
            parts.append(
                f"<tr><td class='mono'>{_e(d.hash)}</td><td>{_e(d.kind)}</td>"
                f"<td>{_e('; '.join(d.referenced_by))}</td>"
                f"<td class='{cls}'>{_e(result)}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append(
        f"<footer>Amounts are in {_e(cur)} (yuan, two decimals); dates are block times in {_e(p.zone)}. "
        "Each head is "
        "keccak256(abi.encode(previousHead, kind, fields…)); the last must equal headOf(loan) at the block "
        "proven at. Check this report offline with <code>fundflow bundle</code> / "
        "<code>fundflow verify-bundle</code>.</footer>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)
