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
from enum import StrEnum
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
    model_validator,
)

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import InspectionKind
from ledger.protocol.money import Amount
from ledger.protocol.servicing import DayCount, DueItem, ScheduleMethod, build_schedule

__all__ = [
    "Address",
    "CarriedArrears",
    "Installment",
    "InterestTerms",
    "LoanType",
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


class LoanType(StrEnum):
    """The loan's type, chosen at opening (loan types in DOMAIN.md); personal ones are retail."""

    PERSONAL = "personal"  # 个人贷款
    PERSONAL_BUSINESS = "personal_business"  # 个人经营贷款
    WORKING_CAPITAL = "working_capital"  # 流动资金贷款
    FIXED_ASSET = "fixed_asset"  # 固定资产贷款
    PROJECT = "project"  # 项目贷款
    SUPPLY_CHAIN = "supply_chain"  # 供应链融资

    @property
    def retail(self) -> bool:
        return self in (LoanType.PERSONAL, LoanType.PERSONAL_BUSINESS)


class InterestTerms(BaseModel):
    """The interest and principal schedule (see `ledger.protocol.servicing` for the arithmetic and rounding).
    With `method` "explicit" the principal dates and amounts are the terms' `repayment_schedule`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: ScheduleMethod = Field(
        description="equal_instalments (等额本息), equal_principal (等额本金), interest_only (先息后本, "
        "principal at the end) or explicit (the repayment_schedule table)"
    )
    annual_rate: Decimal = Field(
        ge=0, lt=1, description='annual interest rate as a fraction, "0.0435" = 4.35%'
    )
    day_count: DayCount = Field(DayCount.ACT_365, description="ACT/365 or ACT/360")
    start_date: date = Field(description="value date (起息日): interest accrues from it")
    first_due_date: date | None = Field(None, description="first repayment date (not for explicit)")
    periods: int | None = Field(
        None, ge=1, le=600, description="number of repayment periods (not for explicit)"
    )
    period_months: int = Field(1, ge=1, le=12, description="months between repayment dates (1, 3, 6, 12)")
    grace_days: int = Field(0, ge=0, le=90, description="宽限期: delays penalty interest, not days past due")
    penalty_rate: Decimal | None = Field(
        None, ge=0, lt=1, description="annual penalty rate on overdue amounts; default: the bank's setting"
    )

    @model_validator(mode="after")
    def _complete(self) -> InterestTerms:
        if self.method is not ScheduleMethod.EXPLICIT and (
            self.first_due_date is None or self.periods is None
        ):
            raise ValueError(f"method {self.method.value} needs first_due_date and periods")
        if self.first_due_date is not None and self.first_due_date <= self.start_date:
            raise ValueError("first_due_date must come after start_date")
        return self


class CarriedArrears(BaseModel):
    """Past-due amounts a change of terms carries over: they stay past due from `since` until repaid after the
    change, so restructuring never resets days past due (written by the API when it changes terms)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: date = Field(description="due date of the oldest unpaid amount before the change")
    amount: Amount = Field(description="principal and interest past due at the change")


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
    # ---- loan servicing (issue 18)
    loan_type: LoanType | None = Field(None, description="chosen at opening; personal types are retail")
    interest: InterestTerms | None = Field(None, description="rate, day count and schedule method")
    total_investment: Amount | None = Field(
        None,
        description="fixed-asset and project loans: the project's total investment (the entrusted-payment "
        "5% rule)",
    )
    carried_arrears: CarriedArrears | None = Field(
        None, description="set by a change of terms: arrears that stay past due (never reset)"
    )

    def schedule(self, principal: int) -> list[DueItem]:
        """The principal and interest schedule for `principal` fen: from `interest` when given, else the
        principal-only `repayment_schedule` (no interest known)."""
        explicit = [(i.due_date, i.amount) for i in self.repayment_schedule]
        if self.interest is None:
            return [DueItem(d, a, 0) for d, a in explicit]
        it = self.interest
        return build_schedule(
            principal=principal,
            method=it.method,
            annual_rate=it.annual_rate,
            day_count=it.day_count,
            start_date=it.start_date,
            first_due_date=it.first_due_date or it.start_date,
            periods=it.periods or len(explicit),
            period_months=it.period_months,
            explicit=explicit,
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
