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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import keccak
from sqlalchemy.engine import Engine

from ledger.audit.verify import DOCUMENT_FIELDS, Verification
from ledger.mirror.read import Mirror

__all__ = [
    "EXPORT_COLUMNS",
    "REPORT_CSP",
    "AttestationView",
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


def trail_rows(verification: Verification, times: Mapping[int, int] | None = None) -> list[dict[str, Any]]:
    """One flat row per event, in chain order (the export's rows)."""
    times = times or {}
    rows = []
    for e in verification.events:
        a = e.args
        document = next((str(a[f]) for f in DOCUMENT_FIELDS if f in a), "")
        rows.append(
            {
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


def export_csv(verification: Verification, times: Mapping[int, int] | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(trail_rows(verification, times))
    return out.getvalue()


def export_json(verification: Verification, times: Mapping[int, int] | None = None) -> str:
    """The verification result plus the flat trail and the attestations, as one JSON document."""
    body = verification.to_dict()
    body["trail"] = trail_rows(verification, times)
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


def _short(value: str) -> str:
    return value if len(value) <= 14 else f"{value[:10]}…{value[-4:]}"


def render_html(
    verification: Verification,
    *,
    times: Mapping[int, int] | None = None,
    title: str | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The printable audit report: verdict, the block proven at, problems, attestations and the trail."""
    times = times or {}
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
        f"<dt>Loan</dt><dd><code>{_e(v.loan_id)}</code></dd>",
        f"<dt>Chain / contract</dt><dd>{v.chain_id} / <code>{_e(v.contract)}</code></dd>",
        f"<dt>Proven at block</dt><dd>{v.block_number} <code>{_e(v.block_hash)}</code>"
        f" {_e(_iso(times.get(v.block_number)) or '')}</dd>",
        f"<dt>Head (headOf)</dt><dd><code>{_e(v.head_on_chain)}</code></dd>",
        f"<dt>Head recomputed</dt><dd><code>{_e(v.head_recomputed)}</code></dd>",
        f"<dt>Trail grew since</dt><dd>{grew}</dd>",
        f"<dt>Generated</dt><dd>{_e(generated)}</dd>",
        "</dl>",
    ]
    problems = v.problems()
    parts.append("<h2>Problems</h2>")
    if problems:
        parts.append('<ul class="problems bad">' + "".join(f"<li>{_e(p)}</li>" for p in problems) + "</ul>")
    else:
        parts.append("<p class='ok'>None: every event, lot and stored document matches the chain.</p>")

    parts.append("<h2>Attestations</h2>")
    attestations = attestations_of(v, times)
    if attestations:
        parts.append(
            "<table><thead><tr><th>block</th><th>time</th><th>auditor org</th><th>head attested</th>"
            "<th>report hash</th><th>status</th></tr></thead><tbody>"
        )
        for a in attestations:
            status = "current" if a.current else f"trail grew since ({a.events_since} changes after)"
            parts.append(
                f"<tr><td class='num'>{a.block_number}</td><td>{_e(a.time or '')}</td>"
                f"<td class='mono'>{_e(a.auditor_org)}</td><td class='mono'>{_e(a.head)}</td>"
                f"<td class='mono'>{_e(a.report_hash)}</td><td>{_e(status)}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append("<p>No auditor has attested this trail yet.</p>")

    parts.append("<h2>Lots</h2>")
    parts.append(
        "<table><thead><tr><th>lot</th><th>parent</th><th>holder</th><th>amount</th><th>remaining</th>"
        "<th>verified</th></tr></thead><tbody>"
    )
    for lot in v.lots:
        cls = "ok" if lot.ok else "bad"
        parts.append(
            f"<tr><td class='mono'>{_e(lot.lot_id)}</td><td class='mono'>{_e(lot.parent_lot_id or '')}</td>"
            f"<td class='mono'>{_e(lot.holder or '')}</td><td class='num'>{_e(lot.amount)}</td>"
            f"<td class='num'>{_e(lot.remaining)}</td>"
            f"<td class='{cls}'>{'yes' if lot.ok else _e('; '.join(lot.problems))}</td></tr>"
        )
    parts.append("</tbody></table>")

    parts.append("<h2>Trail</h2>")
    parts.append(
        "<table><thead><tr><th>block</th><th>log</th><th>time</th><th>event</th><th>lot</th><th>payee</th>"
        "<th>amount</th><th>purpose</th><th>document</th><th>head</th><th>verified</th></tr></thead><tbody>"
    )
    for row in trail_rows(v, times):
        cls = "ok" if row["verified"] == "true" else "bad"
        purpose = row["purpose"] + ("" if row["declared_use"] in ("", "true") else " (undeclared use)")
        parts.append(
            f"<tr><td class='num'>{row['block_number']}</td><td class='num'>{row['log_index']}</td>"
            f"<td>{_e(row['time'])}</td><td>{_e(row['event'])}</td>"
            f"<td class='mono' title='{_e(row['lot_id'])}'>{_e(_short(row['lot_id']))}</td>"
            f"<td class='mono'>{_e(row['payee'])}</td><td class='num'>{_e(row['amount'])}</td>"
            f"<td>{_e(purpose)}</td><td class='mono' title='{_e(row['document_hash'])}'>"
            f"{_e(_short(row['document_hash']))}</td>"
            f"<td class='mono' title='{_e(row['head'])}'>{_e(_short(row['head']))}</td>"
            f"<td class='{cls}'>{'yes' if cls == 'ok' else _e(row['problems'])}</td></tr>"
        )
    parts.append("</tbody></table>")

    docs = [d for d in v.documents if d.present]
    if v.documents:
        parts.append("<h2>Documents</h2>")
        parts.append(
            f"<p>{len(docs)} of {len(v.documents)} referenced documents are in the store; each stored one "
            "was re-hashed (keccak256) and compared with the hash on chain.</p>"
        )
        parts.append(
            "<table><thead><tr><th>hash</th><th>referenced by</th><th>result</th></tr></thead><tbody>"
        )
        for d in v.documents:
            result = "not stored" if not d.present else ("matches" if d.ok else d.problem or "mismatch")
            cls = "ok" if d.ok else "bad"
            parts.append(
                f"<tr><td class='mono'>{_e(d.hash)}</td><td>{_e('; '.join(d.referenced_by))}</td>"
                f"<td class='{cls}'>{_e(result)}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append(
        "<footer>Amounts are in the loan currency's minor unit. Each head is "
        "keccak256(abi.encode(previousHead, kind, fields…)); the last must equal headOf(loan) at the block "
        "proven at. Check this report offline with <code>fundflow bundle</code> / "
        "<code>fundflow verify-bundle</code>.</footer>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)
