"""Asset preservation (财产保全) in the post-loan file: the one model of a preservation case and its id.

A case is `RecordFiled(loan, PRESERVATION_CASE, recordId, contentHash)`; its `recordId` is keccak256 of the
loan id and the bank's case reference, so every update of the case (a deadline met, a seizure renewed) files
a new content under the same id and the latest one is the case. The content is canonical JSON off chain.

Deadlines are what lapse: a pre-suit preservation (诉前保全) is lifted if the bank does not sue within 30 days
of the court's ruling (民事诉讼法 第104条), so that deadline is derived unless `lawsuit_filed_on` is set;
others are given (a seizure's term ends: bank deposits one year, movables two, real estate three, renewable
before they lapse).
"""

from __future__ import annotations

from datetime import date, timedelta
from enum import StrEnum
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field

from ledger.protocol.canonical import canonical_json

__all__ = [
    "PRESERVATION_SCHEMA",
    "PRE_SUIT_DAYS",
    "Deadline",
    "PreservationCase",
    "PreservationDetails",
    "PreservationKind",
    "case_record_id",
]

PRESERVATION_SCHEMA = "fundflow.preservation-case/1"
PRE_SUIT_DAYS = 30
_HASH = r"^0x[0-9a-f]{64}$"


class PreservationKind(StrEnum):
    PRE_SUIT = "pre_suit"  # 诉前保全
    LITIGATION = "litigation"  # 诉讼保全

    @property
    def en(self) -> str:
        return "pre-suit preservation" if self is PreservationKind.PRE_SUIT else "litigation preservation"

    @property
    def zh(self) -> str:
        return "诉前保全" if self is PreservationKind.PRE_SUIT else "诉讼保全"


class Deadline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    what: str = Field(min_length=1, max_length=500)
    due_date: date
    met_on: date | None = None


class PreservationDetails(BaseModel):
    """A preservation case as the lender records it (the API's request body)."""

    model_config = ConfigDict(extra="forbid")

    case_ref: str = Field(min_length=1, max_length=200, description="the bank's reference for the case")
    kind: PreservationKind
    court: str = Field(min_length=1, max_length=300)
    ruling_date: date = Field(description="the day the court ruled on the application")
    seized_assets: list[str] = Field(min_length=1, max_length=100)
    lawsuit_filed_on: date | None = Field(None, description="pre-suit: the day the bank sued")
    deadlines: list[Deadline] = Field(default_factory=list, max_length=50)

    def all_deadlines(self) -> list[Deadline]:
        """The given deadlines, and for a pre-suit preservation the derived one to sue."""
        out = list(self.deadlines)
        if self.kind is PreservationKind.PRE_SUIT:
            out.append(
                Deadline(
                    what="file the lawsuit (诉前保全后三十日内起诉)",
                    due_date=self.ruling_date + timedelta(days=PRE_SUIT_DAYS),
                    met_on=self.lawsuit_filed_on,
                )
            )
        return out


class PreservationCase(PreservationDetails):
    loan_id: str = Field(pattern=_HASH)

    def document(self) -> dict[str, Any]:
        return {"schema": PRESERVATION_SCHEMA, **self.model_dump(mode="json")}

    def canonical(self) -> bytes:
        return canonical_json(self.document())

    @property
    def record_id(self) -> str:
        return case_record_id(self.loan_id, self.case_ref)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> PreservationCase:
        if document.get("schema") != PRESERVATION_SCHEMA:
            raise ValueError(f"not a preservation case (schema {document.get('schema')!r})")
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})


def case_record_id(loan_id: str, case_ref: str) -> str:
    return "0x" + keccak(canonical_json({"case_ref": case_ref, "loan_id": loan_id})).hex()
