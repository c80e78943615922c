"""The collateral register (押品登记簿) and the third parties engaged on a loan (issue 19, second half).

Items: registered and changed by the loan's lender (`fileRecord(loan, COLLATERAL_ITEM, itemId, hash)`, the
latest filing of an item is the item; a release or a substitution is a change of terms with its reason).
Valuations: signed by an appraiser its firm was engaged for (`fileAppraisal`, the contract refuses anyone
else); the lender's own estimates (`valueCollateral`) are listed beside them, marked as such. Engagements:
`fileRecord(loan, 4|5|6, orgId, hash)` engages a participant as appraiser, law firm or collection agency,
`fileRecord(loan, 7, orgId, hash)` ends its engagements. Every content is shown only if it still hashes to
its on-chain value; the effective cover is computed as the collateral_cover rule computes it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.services import filecontents
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import account_names, org_names, records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import NotFoundError, ValidationError
from ledger.mirror.read import Mirror
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.collateral import (
    Appraisal,
    AppraisalDetails,
    CollateralItem,
    CollateralItemDetails,
    CollateralStatus,
    Engagement,
    EngagementDetails,
    PartyRole,
    effective_value,
)
from ledger.protocol.money import yuan_text

__all__ = [
    "EngagementEnd",
    "appraise",
    "end_engagement",
    "engage",
    "list_engagements",
    "list_register",
    "register_item",
]

_ENGAGEMENT_KINDS = {
    int(k) for k in range(FileRecordKind.APPRAISER_ENGAGED, FileRecordKind.ENGAGEMENT_ENDED + 1)
}


class EngagementEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ended_on: date
    reason: str = Field(min_length=1, max_length=1000)


def _day(stamp: int | None) -> str | None:
    return datetime.fromtimestamp(stamp, UTC).date().isoformat() if stamp is not None else None


# ---------------------------------------------------------------------------------------------- register


def register_item(session: Session, write: Write, loan: str, body: CollateralItemDetails) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.register_collateral")
    item = CollateralItem(loan_id=loan_id, **body.model_dump())
    if item.substitutes is not None:
        replaced = {f["item"]["item_ref"] for f in _items(session, loan_id).values() if f["item"] is not None}
        if item.substitutes not in replaced:
            raise ValidationError(
                f"Loan {loan} has no collateral item {item.substitutes!r} to substitute.",
                hint="substitutes names a registered item_ref; GET .../collateral-register lists them.",
            )
    digest = filecontents.keep(session, caller, item.document())
    return filecontents.file_record(
        write, body, loan_id=loan_id, kind=FileRecordKind.COLLATERAL_ITEM, record_id=item.record_id,
        content_hash=digest, path=f"/v1/loans/{loan_id}/collateral-register",
        answer={"loan_id": loan_id, "item_id": item.record_id, "content_hash": digest},
    )  # fmt: skip


def appraise(session: Session, write: Write, loan: str, item_id: str, body: AppraisalDetails) -> JSONResponse:
    """An engaged appraiser signs a valuation of a registered item, not released (404 for a loan it is not
    engaged on: it does not see it)."""
    caller = write.caller
    row = loan_for(session, caller, loan, "loan.appraise")
    item_id = item_id.lower()
    item = _items(session, row.loan_id).get(item_id)
    if item is None or item["item"] is None:
        raise NotFoundError(
            f"Loan {loan} has no registered collateral item {item_id}.",
            hint="GET /v1/loans/{loan}/collateral-register lists the items and their ids.",
        )
    if item["item"]["status"] == CollateralStatus.RELEASED:
        raise ValidationError(
            f"Collateral item {item['item']['item_ref']} is released; it is no longer valued."
        )
    if body.valued_on > datetime.now(UTC).date():
        raise ValidationError(
            f"valued_on {body.valued_on} is in the future.", hint="Give the day the item was valued."
        )
    appraisal = Appraisal(loan_id=row.loan_id, item_id=item_id, **body.model_dump())
    digest = filecontents.keep(session, caller, appraisal.document())

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.file_appraisal(caller.signer(), loan_id=row.loan_id, item_id=item_id, content_hash=digest)
        return Outcome(tx, {"loan_id": row.loan_id, "item_id": item_id, "content_hash": digest})

    return write.record(
        body, action, path=f"/v1/loans/{row.loan_id}/collateral-register/{item_id}/appraisals"
    )


def _items(session: Session, loan_id: str) -> dict[str, dict[str, Any]]:
    """item id -> its latest filing (content checked), the number of filings, and each change, chain order."""
    filed = [
        r
        for r in records(session, "file_records", loan_id)
        if r["record_kind"] == FileRecordKind.COLLATERAL_ITEM
    ]
    stamps = Mirror(session).block_times(r["block_number"] for r in filed)
    items: dict[str, dict[str, Any]] = {}
    for r in filed:
        status, content = filecontents.read(session, r["content_hash"])
        item = None
        if content is not None:
            try:
                item = CollateralItem.from_document(content)
            except ValueError:
                status = "not a collateral item"
            if item is not None and (item.loan_id != loan_id or item.record_id != r["record_id"]):
                status, item = "another item's record", None
        entry = items.setdefault(r["record_id"], {"item_id": r["record_id"], "changes": []})
        entry["changes"].append(
            {"filed_on": _day(stamps.get(r["block_number"])), "block_number": r["block_number"],
             "content_status": status,
             "status": item.status.value if item else None,
             "change_reason": item.change_reason if item else None}
        )  # fmt: skip
        entry.update(
            registered_on=entry.get("registered_on") or _day(stamps.get(r["block_number"])),
            content_status=status,
            item=None
            if item is None
            else {
                **item.model_dump(mode="json", exclude={"loan_id"}),
                "type_label_zh": item.type.zh,
                "status_label_zh": item.status.zh,
            },
        )
    return items


def list_register(session: Session, caller: Caller, loan: str) -> dict[str, Any]:
    """The register: each item with its valuations (appraisers' signed ones and the lender's own estimates,
    chain order), its effective value, and the loan's effective cover."""
    row = loan_for(session, caller, loan, "loan.collateral")
    assert caller.services is not None
    names = account_names(caller.services)
    items = _items(session, row.loan_id)
    valuations: list[dict[str, Any]] = []
    signed = [
        r
        for r in records(session, "file_records", row.loan_id)
        if r["record_kind"] == FileRecordKind.APPRAISAL
    ]
    estimates = records(session, "collateral_valuations", row.loan_id)
    stamps = Mirror(session).block_times(
        [r["block_number"] for r in signed] + [r["block_number"] for r in estimates]
    )
    for r in signed:
        status, content = filecontents.read(session, r["content_hash"])
        a = None
        if content is not None:
            try:
                a = Appraisal.from_document(content)
            except ValueError:
                status = "not an appraisal"
            if a is not None and (a.loan_id != row.loan_id or a.item_id != r["record_id"]):
                status, a = "another item's record", None
        valuations.append(
            {"item_id": r["record_id"], "source": "appraiser", "signed_by": r["actor"],
             "signed_by_name": names.get(r["actor"]), "content_status": status,
             "value": yuan_text(a.value) if a else None, "_fen": a.value if a else None,
             "valued_on": a.valued_on.isoformat() if a else None, "method": a.method if a else None,
             "report_hash": a.report_hash if a else None,
             "recorded_on": _day(stamps.get(r["block_number"])),
             "_order": (r["block_number"], r["log_index"])}
        )  # fmt: skip
    for r in estimates:
        valuations.append(
            {"item_id": r["collateral_id"], "source": "lender_estimate", "signed_by": None,
             "signed_by_name": None, "content_status": "on chain", "value": yuan_text(int(r["value"])),
             "_fen": int(r["value"]), "valued_on": None, "method": "lender's own estimate",
             "report_hash": r["evidence_hash"], "recorded_on": _day(stamps.get(r["block_number"])),
             "_order": (r["block_number"], r["log_index"])}
        )  # fmt: skip
    valuations.sort(key=lambda v: v["_order"])
    latest: dict[str, dict[str, Any]] = {}
    for v in valuations:
        if v["_fen"] is not None:  # an altered appraisal is never the latest value
            latest[v["item_id"]] = v
    out_items = []
    total = 0
    for item_id, entry in items.items():
        item = entry["item"]
        value = latest.get(item_id)
        counted = item is not None and item["status"] != CollateralStatus.RELEASED and value is not None
        effective = effective_value(value["_fen"], item["haircut_bp"]) if counted and value and item else 0
        total += effective
        out_items.append(
            {**entry, "valuations": [_public(v) for v in valuations if v["item_id"] == item_id],
             "latest_value": value["value"] if value else None,
             "latest_source": value["source"] if value else None,
             "effective_value": yuan_text(effective), "counts_as_cover": counted}
        )  # fmt: skip
    outstanding = int(row.disbursed) - int(row.repaid)
    show_cover = policy.allowed(caller, "loan.repayments", row) or policy.allowed(
        caller, "loan.risk_class", row
    )
    return {
        "loan_id": row.loan_id,
        "items": out_items,
        "unregistered_valuations": [_public(v) for v in valuations if v["item_id"] not in items],
        "effective_value": yuan_text(total),
        "outstanding": yuan_text(outstanding) if show_cover else None,
        "effective_cover": str((Decimal(total) / Decimal(outstanding)).quantize(Decimal("0.0001")))
        if show_cover and outstanding > 0
        else None,
        "rounding": "each item's value x (1 - haircut) rounded down to the fen",
    }


def _public(v: dict[str, Any]) -> dict[str, Any]:
    return {k: x for k, x in v.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------- engagements


def engage(session: Session, write: Write, loan: str, body: EngagementDetails) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.engage")
    party = write.services.directory.get().find(body.participant)
    if party is None:
        raise NotFoundError(
            f"No participant named {body.participant!r}.", hint="GET /v1/participants lists them."
        )
    if party.role != body.role.value:
        raise ValidationError(
            f"{party.name} is registered as {party.role}, not {body.role.value}.",
            hint="Engage an appraiser as appraiser, a law firm as law_firm, a collection agency as "
            "collection_agency.",
        )
    engagement = Engagement(
        loan_id=loan_id, org_id=party.org_id, role=body.role, on=body.engaged_on, scope=body.scope
    )
    digest = filecontents.keep(session, caller, engagement.document())
    return filecontents.file_record(
        write, body, loan_id=loan_id, kind=body.role.record_kind, record_id=party.org_id, content_hash=digest,
        path=f"/v1/loans/{loan_id}/engagements",
        answer={"loan_id": loan_id, "org_id": party.org_id, "role": body.role.value},
    )  # fmt: skip


def end_engagement(
    session: Session, write: Write, loan: str, participant: str, body: EngagementEnd
) -> JSONResponse:
    caller = write.caller
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.engage")
    party = write.services.directory.get().find(participant)
    engaged = Mirror(session).engagements(loan_id).get(loan_id, {})
    if party is None or party.org_id.lower() not in engaged:
        raise NotFoundError(
            f"{participant} is not engaged on loan {loan}.",
            hint="GET /v1/loans/{loan}/engagements lists who is.",
        )
    ended = Engagement(loan_id=loan_id, org_id=party.org_id, role=None, on=body.ended_on, scope=body.reason)
    digest = filecontents.keep(session, caller, ended.document())
    return filecontents.file_record(
        write, body, loan_id=loan_id, kind=FileRecordKind.ENGAGEMENT_ENDED, record_id=party.org_id,
        content_hash=digest, path=f"/v1/loans/{loan_id}/engagements/{party.org_id}/end",
        answer={"loan_id": loan_id, "org_id": party.org_id},
    )  # fmt: skip


def list_engagements(session: Session, caller: Caller, loan: str) -> dict[str, Any]:
    """Who is engaged now (from the chain's record kinds) and every engagement record, content checked; a
    third party sees only its own."""
    row = loan_for(session, caller, loan, "loan.engagements")
    own = policy.grant(caller, "loan.engagements", row) is policy.OWN
    assert caller.services is not None
    names = org_names(caller.services)
    current = Mirror(session).engagements(row.loan_id).get(row.loan_id, {})
    filed = [
        r for r in records(session, "file_records", row.loan_id) if r["record_kind"] in _ENGAGEMENT_KINDS
    ]
    if own:
        filed = [r for r in filed if r["record_id"].lower() == caller.org_id.lower()]
        current = {o: rs for o, rs in current.items() if o == caller.org_id.lower()}
    stamps = Mirror(session).block_times(r["block_number"] for r in filed)
    history = []
    for r in filed:
        status, content = filecontents.read(session, r["content_hash"])
        e = None
        if content is not None:
            try:
                e = Engagement.from_document(content)
            except ValueError:
                status = "not an engagement"
        role = PartyRole.of_kind(int(r["record_kind"]))
        history.append(
            {"org_id": r["record_id"], "name": names.get(r["record_id"]),
             "action": "engaged" if role else "ended", "role": role.value if role else None,
             "role_zh": role.zh if role else None, "recorded_on": _day(stamps.get(r["block_number"])),
             "content_status": status, "on": e.on.isoformat() if e else None, "scope": e.scope if e else None}
        )  # fmt: skip
    return {
        "loan_id": row.loan_id,
        "engaged": [
            {"org_id": o, "name": names.get(o), "roles": sorted(rs)} for o, rs in sorted(current.items())
        ],
        "history": history,
    }
