"""Structured loan terms: what monitoring checks the chain's facts against.

The terms live off chain (the API stores them in `loan_metadata.terms`); the loan's on-chain `termsHash` is
keccak256 of their canonical JSON (sorted keys, no whitespace, UTF-8), so anyone holding the JSON can check
that the terms a rule used are the terms the lender committed to. Rules take a `TermsProvider`, a plain
callable `loan_id -> LoanTerms | None`; `None` means "no structured terms known", and the rules that need
them (schedule, inspections, named counterparties, approval threshold, collateral cover) stay silent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from eth_utils import keccak, to_checksum_address
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Installment",
    "LoanTerms",
    "ScheduledInspection",
    "TermsProvider",
    "db_terms_provider",
    "mapping_terms_provider",
]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Installment(BaseModel):
    """One scheduled principal repayment (stored as `{"due": ..., "amount": ...}`, the API's shape)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    due_date: date = Field(validation_alias=AliasChoices("due", "due_date"), serialization_alias="due")
    amount: int = Field(gt=0, lt=1 << 64, description="minor units (fen, cents)")


class ScheduledInspection(BaseModel):
    """One inspection the contract schedules (the API's `inspection_schedule` items)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    due_date: date = Field(validation_alias=AliasChoices("due", "due_date"), serialization_alias="due")
    kind: str = "site_visit"


class LoanTerms(BaseModel):
    """The parts of a loan contract monitoring needs. Addresses are normalised to checksum form."""

    model_config = ConfigDict(frozen=True, extra="allow")

    repayment_schedule: list[Installment] = Field(default_factory=list)
    inspection_interval_days: int | None = Field(
        None, gt=0, description="a post-loan inspection is due this often (e.g. 90 = quarterly)"
    )
    inspection_schedule: list[ScheduledInspection] = Field(
        default_factory=list, description="or: inspections due on given dates"
    )
    counterparties: list[str] = Field(
        default_factory=list, description="payees named in the loan contract (suppliers, contractors)"
    )
    approval_threshold: int | None = Field(
        None, gt=0, description="payments at or above this amount (minor units) need the lender's approval"
    )
    required_collateral_cover: Decimal | None = Field(
        None, gt=0, description="collateral value / outstanding principal must stay at or above this"
    )
    linked_parties: list[str] = Field(
        default_factory=list, description="accounts linked to the borrower (shareholders, affiliates)"
    )

    @field_validator("counterparties", "linked_parties", mode="before")
    @classmethod
    def _checksum(cls, values: Any) -> list[str]:
        """Addresses, or the API's counterparty objects (`{"name", "role", "address"}`; no address = skip)."""
        out: list[str] = []
        for v in values or []:
            address = v.get("address") if isinstance(v, Mapping) else v
            if address:
                out.append(to_checksum_address(str(address)))
        return out

    @field_validator("repayment_schedule", "inspection_schedule")
    @classmethod
    def _sorted(cls, values: list[Any]) -> list[Any]:
        return sorted(values, key=lambda i: i.due_date)

    def document(self) -> dict[str, Any]:
        """The JSON document whose canonical form is hashed (decimals as strings, dates ISO 8601)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)

    def canonical_json(self) -> bytes:
        return _canonical(self.document())

    def hash(self) -> str:
        """keccak256 of the canonical JSON, 0x-hex: the loan's on-chain `termsHash`."""
        return "0x" + keccak(self.canonical_json()).hex()


TermsProvider = Callable[[str], LoanTerms | None]


def mapping_terms_provider(terms: Mapping[str, LoanTerms]) -> TermsProvider:
    """Terms from an in-memory mapping loan id -> terms (tests, scripts)."""
    return lambda loan_id: terms.get(loan_id)


def db_terms_provider(conn: sa.Connection) -> TermsProvider:
    """Terms the API stored in `loan_metadata`, used only when they hash to the loan's current on-chain terms
    hash (after a restructuring the old document no longer counts). Unusable documents count as unknown."""
    metadata = sa.table(
        "loan_metadata", sa.column("loan_id"), sa.column("terms", sa.JSON()), sa.column("terms_hash")
    )
    loans = sa.table("loans", sa.column("loan_id"), sa.column("terms_hash"))
    have_table = sa.inspect(conn).has_table("loan_metadata")

    def lookup(loan_id: str) -> LoanTerms | None:
        if not have_table:
            return None
        row = conn.execute(
            sa.select(metadata.c.terms, metadata.c.terms_hash)
            .select_from(metadata.join(loans, loans.c.loan_id == metadata.c.loan_id))
            .where(metadata.c.loan_id == loan_id, metadata.c.terms_hash == loans.c.terms_hash)
        ).first()
        if row is None or not isinstance(row.terms, dict):
            return None
        if "0x" + keccak(_canonical(row.terms)).hex() != row.terms_hash:
            return None  # edited after the fact: not what the lender committed to
        try:
            return LoanTerms.model_validate(row.terms)
        except ValueError:
            return None

    return lookup
