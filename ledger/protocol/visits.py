"""Visits and interviews (实地走访, 当面访谈, 视频访谈): the one model of a visit report and its hash.

A visit goes on chain as the contract's `recordInspection(loanId, kind, reportHash)`: an `InspectionRecorded`
event hash-chained into the loan's trail like every other loan event, so trail verification and the proof
bundle cover it. The chain holds only the kind and the hash; the report itself (date, place, attendees,
findings, photos, follow-up actions) is off chain, as the canonical JSON (`VisitReport.document()`) whose
keccak256 is the on-chain `reportHash`. Anyone holding the JSON can check it against the chain; deleting it
is the erasure path (attendees are people: never on chain).

The chain's kind says whether the visit was at the borrower's site: an in-person and a video interview are
both `INTERVIEW` on chain and differ in the report's `kind`. Only a `site_visit` (chain kind `SITE_VISIT`)
satisfies a site-visit schedule.
"""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import InspectionKind

__all__ = [
    "REPORT_SCHEMA",
    "FollowUp",
    "VisitDetails",
    "VisitKind",
    "VisitReport",
    "report_hash",
]

REPORT_SCHEMA = "fundflow.visit-report/1"
_HASH = re.compile(r"^0x[0-9a-f]{64}$")


class VisitKind(StrEnum):
    """What the lender did, in the report; `chain_kind` is what the contract records."""

    SITE_VISIT = "site_visit"  # 实地走访: at the borrower's premises
    IN_PERSON_INTERVIEW = "in_person_interview"  # 当面访谈
    VIDEO_INTERVIEW = "video_interview"  # 视频访谈
    DOCUMENT_REVIEW = "document_review"  # 资料审查

    @property
    def chain_kind(self) -> InspectionKind:
        return _CHAIN_KIND[self]

    @property
    def en(self) -> str:
        return _LABELS[self][0]

    @property
    def zh(self) -> str:
        return _LABELS[self][1]


_CHAIN_KIND = {
    VisitKind.SITE_VISIT: InspectionKind.SITE_VISIT,
    VisitKind.IN_PERSON_INTERVIEW: InspectionKind.INTERVIEW,
    VisitKind.VIDEO_INTERVIEW: InspectionKind.INTERVIEW,
    VisitKind.DOCUMENT_REVIEW: InspectionKind.DOCUMENT_REVIEW,
}
_LABELS = {
    VisitKind.SITE_VISIT: ("site visit", "实地走访"),
    VisitKind.IN_PERSON_INTERVIEW: ("in-person interview", "当面访谈"),
    VisitKind.VIDEO_INTERVIEW: ("video interview", "视频访谈"),
    VisitKind.DOCUMENT_REVIEW: ("document review", "资料审查"),
}


def _hash_list(values: list[str]) -> list[str]:
    out = []
    for v in values:
        v = v.strip().lower()
        if not _HASH.fullmatch(v):
            raise ValueError(f"{v!r} is not a document hash (0x followed by 64 hex digits; upload it first)")
        out.append(v)
    return out


class FollowUp(BaseModel):
    """An action the visit decided on, who owns it and by when."""

    model_config = ConfigDict(extra="forbid")

    action: str = Field(min_length=1, max_length=1000)
    owner: str = Field(min_length=1, max_length=200)
    due_date: date


class VisitDetails(BaseModel):
    """A visit or interview as the lender reports it (the API's request body)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "site_visit",
                    "visit_date": "2026-11-30",
                    "place": "Plant 2, 88 Example Road, Hangzhou",
                    "attendees": ["Account manager Wang", "Borrower's CFO"],
                    "findings": "Production lines running; inventory matches the ledger.",
                    "photos": [],
                    "documents": [],
                    "follow_ups": [
                        {"action": "Collect Q4 VAT returns", "owner": "Wang", "due_date": "2026-12-31"}
                    ],
                }
            ]
        },
    )

    kind: VisitKind
    visit_date: date
    place: str = Field("", max_length=500)
    attendees: list[str] = Field(min_length=1, max_length=50)
    findings: str = Field(min_length=1, max_length=20_000)
    photos: list[str] = Field(default_factory=list, max_length=100, description="document hashes")
    documents: list[str] = Field(default_factory=list, max_length=100, description="document hashes")
    follow_ups: list[FollowUp] = Field(default_factory=list, max_length=50)

    @field_validator("attendees")
    @classmethod
    def _attendees(cls, value: list[str]) -> list[str]:
        names = [v.strip() for v in value if v.strip()]
        if not names:
            raise ValueError("name at least one attendee")
        return names

    @field_validator("findings", "place")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("photos", "documents")
    @classmethod
    def _hashes(cls, value: list[str]) -> list[str]:
        return _hash_list(value)

    @model_validator(mode="after")
    def _place_for_visits(self) -> VisitDetails:
        if self.kind in (VisitKind.SITE_VISIT, VisitKind.IN_PERSON_INTERVIEW) and not self.place:
            raise ValueError(f"a {self.kind.en} needs its place (the site's address or the meeting room)")
        if not self.findings:
            raise ValueError("write the findings")
        return self


class VisitReport(VisitDetails):
    """The stored report: the details bound to one loan. `document()` is what is hashed and stored."""

    loan_id: str = Field(pattern=_HASH.pattern, description="binds the report to one loan")

    def document(self) -> dict[str, Any]:
        return {"schema": REPORT_SCHEMA, **self.model_dump(mode="json")}

    def canonical(self) -> bytes:
        return canonical_json(self.document())

    def hash(self) -> str:
        return report_hash(self.canonical())

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> VisitReport:
        if document.get("schema") != REPORT_SCHEMA:
            raise ValueError(f"not a visit report (schema {document.get('schema')!r})")
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})


def report_hash(data: bytes) -> str:
    """keccak256 of the report's bytes, 0x-hex: the on-chain `reportHash` (and the document store's key)."""
    return "0x" + keccak(data).hex()
