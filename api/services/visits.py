"""Visits and interviews of a loan (贷后走访与访谈): recorded by its lender, read by its lender and auditors.

Recording stores the report's canonical JSON in the document store (its keccak256 is its key) and sends
`recordInspection(loan, kind, reportHash)`; the write path attaches the stored report to the event, so the
documents service verifies it like any evidence. Listing reads the mirrored `InspectionRecorded` events and
opens each report from the store only if its bytes still hash to the on-chain `reportHash` and it names this
loan: a report that was changed, erased or belongs to another loan is shown as such, never as the record.

The next site visit's due date comes from the same function the `missed_site_visit` rule uses
(`ledger.monitoring.rules.site_visit_due`), so the page and the alert cannot disagree.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.services import Services
from api.services import documents as documents_service
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import ValidationError
from ledger.mirror.read import Mirror
from ledger.monitoring.monitor import load_facts
from ledger.monitoring.rules import Thresholds, site_visit_due
from ledger.protocol.codes import InspectionKind
from ledger.protocol.visits import VisitDetails, VisitKind, VisitReport, report_hash
from ledger.store.offchain import db_terms_provider

__all__ = ["list_visits", "may_record", "record_visit", "visit_schedule"]

_CHAIN_LABELS = {
    InspectionKind.SITE_VISIT: ("site visit", "实地走访"),
    InspectionKind.DOCUMENT_REVIEW: ("document review", "资料审查"),
    InspectionKind.INTERVIEW: ("interview", "访谈"),
}


def _date(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).date().isoformat()


def may_record(session: Session, caller: Caller, loan: str) -> str:
    """The loan id, if the caller may record visits on it (its lender); else 403/404."""
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.record_visit")
    return loan_id


def record_visit(session: Session, write: Write, loan: str, body: VisitDetails) -> JSONResponse:
    caller = write.caller
    loan_id = may_record(session, caller, loan)
    today = datetime.now(UTC).date()
    if (body.visit_date - today).days > 1:  # a day's slack for time zones east of UTC
        raise ValidationError(
            f"The visit date {body.visit_date.isoformat()} is in the future.",
            hint="Record a visit once it has taken place, with the day it took place.",
        )
    named = [*body.photos, *body.documents]
    kept = documents_service.stored(session, named)
    missing = [h for h in named if h not in kept]
    if missing:
        raise ValidationError(
            f"Document {missing[0]} is not stored here.",
            hint="Upload photos and documents with POST /v1/documents first and name their hashes.",
        )
    report = VisitReport(loan_id=loan_id, **body.model_dump())
    data = report.canonical()
    documents_service.store(
        write.services, caller, data, "application/json", f"visit-{report.visit_date.isoformat()}.json"
    )
    digest = report_hash(data)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.record_inspection(
            caller.signer(), loan_id=loan_id, kind=int(report.kind.chain_kind), report_hash=digest
        )
        return Outcome(tx, {"loan_id": loan_id, "report_hash": digest, "kind": report.kind.value})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/visits")


def _open_report(services: Services, loan_id: str, digest: str) -> tuple[str, VisitReport | None]:
    """('verified', report) when the stored bytes hash to `digest`, parse as a visit report and name this
    loan; else the reason and None."""
    path = services.settings.documents_dir / digest
    if not path.exists():
        return "not stored", None
    data = path.read_bytes()
    if report_hash(data) != digest:
        return "altered", None
    try:
        report = VisitReport.from_document(json.loads(data))
    except ValueError:
        return "not a visit report", None
    if report.loan_id != loan_id:
        return "another loan's report", None
    return "verified", report


def list_visits(session: Session, services: Services, caller: Caller, loan: str) -> list[dict[str, Any]]:
    """The loan's visits, oldest first: what the chain recorded (kind, hash, block, date) and the report."""
    row = loan_for(session, caller, loan, "loan.visits")
    rows = records(session, "inspections", row.loan_id)
    stamps = Mirror(session).block_times(r["block_number"] for r in rows)
    out = []
    for r in rows:
        chain_kind = InspectionKind(int(r["kind"]))
        status, report = _open_report(services, row.loan_id, str(r["report_hash"]))
        if report is not None and report.kind.chain_kind != chain_kind:
            status, report = "kind differs from the chain's", None
        kind = report.kind if report is not None else None
        out.append(
            {
                **r,
                "recorded_on": _date(stamps.get(r["block_number"])),
                "chain_kind": chain_kind.name.lower(),
                "kind_label": kind.en if kind else _CHAIN_LABELS[chain_kind][0],
                "kind_label_zh": kind.zh if kind else _CHAIN_LABELS[chain_kind][1],
                "report_status": status,
                "report": report.model_dump(mode="json", exclude={"loan_id"}) if report else None,
            }
        )
    return out


def visit_schedule(session: Session, services: Services, caller: Caller, loan: str) -> dict[str, Any]:
    """When the next site visit is due under the bank's visit frequency for the loan's risk class."""
    row = loan_for(session, caller, loan, "loan.visits")
    thresholds = Thresholds.from_settings(services.settings)
    mirror = Mirror(session)
    now = mirror.latest_block_time() or 0
    facts = load_facts(session.connection(), row.loan_id, db_terms_provider(session.connection()), now)
    due = site_visit_due(facts, thresholds) if facts is not None else None
    if due is None:
        return {"loan_id": row.loan_id, "site_visit_due": None, "interval_days": None, "overdue_days": 0}
    when, days, last = due
    return {
        "loan_id": row.loan_id,
        "site_visit_due": _date(when),
        "interval_days": days,
        "last_site_visit": _date(last.timestamp) if last is not None else None,
        "overdue_days": max(0, (now - when) // 86_400),
        "kinds": [k.value for k in VisitKind],
    }
