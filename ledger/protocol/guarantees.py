"""Guarantees (担保) in the post-loan file: the one model of a guarantee record and of its release, and their
hashes.

On chain a guarantee is a `RecordFiled(loan, GUARANTEE, recordId, contentHash, actor)` event hash-chained into
the loan's trail (so trail verification and the proof bundle cover it); its release is a `RecordFiled` of
kind `GUARANTEE_RELEASED` with the same `recordId`. The details are off chain as canonical JSON whose
keccak256 is `contentHash`; the guarantee's `recordId` is that hash (`Guarantee.record_id`), so an id names
one content for good. A guarantor is a participant (its account address) or a party off the ledger named
only by a salted reference (`guarantor_ref`, keccak256 of its registration number and a salt kept off
chain): no personal data on chain, and none in the content either.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.protocol.canonical import canonical_json
from ledger.protocol.money import Amount
from ledger.protocol.terms import Address

__all__ = [
    "GUARANTEE_SCHEMA",
    "RELEASE_SCHEMA",
    "Guarantee",
    "GuaranteeDetails",
    "GuaranteeKind",
    "GuaranteeRelease",
    "content_hash",
]

GUARANTEE_SCHEMA = "fundflow.guarantee/1"
RELEASE_SCHEMA = "fundflow.guarantee-release/1"
_HASH = r"^0x[0-9a-f]{64}$"


class GuaranteeKind(StrEnum):
    JOINT_SURETY = "joint_surety"  # 连带责任保证
    GENERAL_SURETY = "general_surety"  # 一般保证
    MORTGAGE = "mortgage"  # 抵押
    PLEDGE = "pledge"  # 质押

    @property
    def en(self) -> str:
        return _LABELS[self][0]

    @property
    def zh(self) -> str:
        return _LABELS[self][1]


_LABELS = {
    GuaranteeKind.JOINT_SURETY: ("joint-liability guarantee", "连带责任保证"),
    GuaranteeKind.GENERAL_SURETY: ("general guarantee", "一般保证"),
    GuaranteeKind.MORTGAGE: ("mortgage", "抵押"),
    GuaranteeKind.PLEDGE: ("pledge", "质押"),
}


def content_hash(data: bytes) -> str:
    return "0x" + keccak(data).hex()


class GuaranteeDetails(BaseModel):
    """A guarantee as the lender records it (the API's request body). Amounts are fen (the API converts)."""

    model_config = ConfigDict(extra="forbid")

    guarantor: Address | None = Field(None, description="the guarantor's account, if it is a participant")
    guarantor_ref: str | None = Field(
        None, pattern=_HASH, description="else a salted reference to a party off the ledger"
    )
    kind: GuaranteeKind
    amount: Amount = Field(description="amount guaranteed (fen, or a yuan decimal string)")
    start: date
    expiry: date
    capacity: Amount | None = Field(
        None, description="the guarantor's declared guarantee capacity across all loans (fen or yuan string)"
    )
    contract_hash: str | None = Field(None, pattern=_HASH, description="hash of the guarantee contract")

    @model_validator(mode="after")
    def _checks(self) -> GuaranteeDetails:
        if (self.guarantor is None) == (self.guarantor_ref is None):
            raise ValueError("name the guarantor by its account (guarantor) or by a salted reference "
                             "(guarantor_ref), exactly one")  # fmt: skip
        if self.expiry <= self.start:
            raise ValueError(f"the guarantee expires ({self.expiry}) on or before it starts ({self.start})")
        return self

    @property
    def party(self) -> str:
        """The guarantor as a graph node: its address, or its reference."""
        return str(self.guarantor or self.guarantor_ref)


class Guarantee(GuaranteeDetails):
    """The stored record: the details bound to one loan."""

    loan_id: str = Field(pattern=_HASH)

    def document(self) -> dict[str, Any]:
        return {"schema": GUARANTEE_SCHEMA, **self.model_dump(mode="json")}

    def canonical(self) -> bytes:
        return canonical_json(self.document())

    @property
    def record_id(self) -> str:
        return content_hash(self.canonical())

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Guarantee:
        if document.get("schema") != GUARANTEE_SCHEMA:
            raise ValueError(f"not a guarantee (schema {document.get('schema')!r})")
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})


class GuaranteeRelease(BaseModel):
    """The release of a guarantee (its `record_id`), with the date and why."""

    model_config = ConfigDict(extra="forbid")

    loan_id: str = Field(pattern=_HASH)
    record_id: str = Field(pattern=_HASH)
    released_on: date
    reason: str = Field(min_length=1, max_length=2000)

    def document(self) -> dict[str, Any]:
        return {"schema": RELEASE_SCHEMA, **self.model_dump(mode="json")}

    def canonical(self) -> bytes:
        return canonical_json(self.document())
