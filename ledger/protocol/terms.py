"""Structured loan terms: the one model of them, and their hash.

The terms live off chain (the API stores `LoanTerms.document()` in `loan_metadata.terms`); the loan's
on-chain `termsHash` is keccak256 of that document's canonical JSON (`terms_hash`: sorted keys, no
whitespace, UTF-8), so anyone holding the JSON can check that the terms a rule used are the terms the lender
committed to. The API validates a lender's terms with this model; monitoring reads stored documents back with
`LoanTerms.from_document`. Rules take a `TermsProvider`, a plain callable `loan_id -> LoanTerms | None`;
`None` means "no structured terms known", and the rules that need them (schedule, inspections, named
counterparties, approval threshold, collateral cover) stay silent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from eth_utils import is_address, keccak, to_checksum_address
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
)

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import InspectionKind
from ledger.protocol.money import Amount

__all__ = [
    "Address",
    "Installment",
    "LoanTerms",
    "ScheduledInspection",
    "TermsProvider",
    "mapping_terms_provider",
    "terms_hash",
]


def terms_hash(document: Any) -> str:
    """keccak256 of a terms document's canonical JSON (the UTF-8 form), 0x-hex: the loan's `termsHash`."""
    return "0x" + keccak(canonical_json(document)).hex()


def _address(value: Any) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise ValueError("expected an account address (0x followed by 40 hex digits)")
    checksummed = str(to_checksum_address(value))
    body = value[2:]
    if body != body.lower() and body != body.upper() and value != checksummed:
        raise ValueError(
            "the address's mixed-case checksum (EIP-55) is wrong: check for a typo, or send it lowercase"
        )
    return checksummed


Address = Annotated[
    str,
    BeforeValidator(_address),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^0x[0-9a-fA-F]{40}$",
            "examples": ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
        }
    ),
]
"""An account address, returned in EIP-55 checksum form; a mixed-case address with a wrong checksum is
refused (it is most likely a typo)."""

_KINDS = [k.name.lower() for k in InspectionKind]

_DUE_KEYS = AliasChoices("due", "due_date")
"""A schedule item's date is `due` in the document, `due_date` in Python (accepted as a key too)."""


class Installment(BaseModel):
    """One scheduled principal repayment (`{"due": ..., "amount": ...}` in the document)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    due_date: date = Field(validation_alias=_DUE_KEYS, serialization_alias="due", title="Due")
    amount: Amount


class ScheduledInspection(BaseModel):
    """One inspection the loan contract schedules (`{"due": ..., "kind": ...}` in the document)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    due_date: date = Field(validation_alias=_DUE_KEYS, serialization_alias="due", title="Due")
    kind: str = Field("site_visit", description=f"{', '.join(_KINDS[:-1])} or {_KINDS[-1]}")


class LoanTerms(BaseModel):
    """The loan's terms kept off chain: the parts of the loan contract monitoring checks the chain's facts
    against, plus anything else the lender adds. keccak256 of their canonical JSON (None fields left out) is
    the on-chain terms hash."""

    model_config = ConfigDict(frozen=True, extra="allow")

    repayment_schedule: list[Installment] = Field(default_factory=list)
    inspection_interval_days: int | None = Field(
        None, gt=0, description="a post-loan inspection is due this often (e.g. 90 = quarterly)"
    )
    inspection_schedule: list[ScheduledInspection] = Field(
        default_factory=list, description="or: inspections due on given dates"
    )
    counterparties: list[Address] = Field(
        default_factory=list, description="payees named in the loan contract (suppliers, contractors)"
    )
    approval_threshold: Amount | None = Field(
        None, description="Payments at or above this need the lender's approval (entrusted payment)."
    )
    required_collateral_cover: Decimal | None = Field(
        None, gt=0, description="collateral value / outstanding principal must stay at or above this"
    )
    linked_parties: list[Address] = Field(
        default_factory=list, description="accounts linked to the borrower (shareholders, affiliates)"
    )

    @field_validator("repayment_schedule")
    @classmethod
    def _by_due_date(cls, values: list[Installment]) -> list[Installment]:
        """Repayments are kept in due-date order, so the same schedule hashes the same however it was
        listed. (The inspection schedule keeps the order it was given in: the API always hashed it so.)"""
        return sorted(values, key=lambda i: i.due_date)

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> LoanTerms:
        """Terms read back from storage. Besides today's shape this reads what earlier API versions stored:
        counterparties as objects `{"name", "role", "address"}` (one without an address names no account)
        and schedule items with keys other than `due`, `amount` and `kind` (left out)."""
        return cls.model_validate(_current_shape(document))

    def document(self) -> dict[str, Any]:
        """The JSON document whose canonical form is hashed (amounts in minor units, decimals as strings,
        dates ISO 8601, None fields left out)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def canonical_json(self) -> bytes:
        return canonical_json(self.document())

    def hash(self) -> str:
        """keccak256 of the canonical JSON, 0x-hex: the loan's on-chain `termsHash`."""
        return terms_hash(self.document())


_ITEM_KEYS = {
    "repayment_schedule": {"due", "due_date", "amount"},
    "inspection_schedule": {"due", "due_date", "kind"},
}


def _current_shape(document: Mapping[str, Any]) -> dict[str, Any]:
    """An older stored document in today's shape (see `LoanTerms.from_document`)."""
    out = dict(document)
    for name in ("counterparties", "linked_parties"):
        if isinstance(out.get(name), list):
            out[name] = [
                (v.get("address") if isinstance(v, Mapping) else v)
                for v in out[name]
                if not isinstance(v, Mapping) or v.get("address")
            ]
    for name, keys in _ITEM_KEYS.items():
        if isinstance(out.get(name), list):
            out[name] = [
                {k: v for k, v in item.items() if k in keys} if isinstance(item, Mapping) else item
                for item in out[name]
            ]
    return out


TermsProvider = Callable[[str], LoanTerms | None]


def mapping_terms_provider(terms: Mapping[str, LoanTerms]) -> TermsProvider:
    """Terms from an in-memory mapping loan id -> terms (tests, scripts)."""
    return lambda loan_id: terms.get(loan_id)
