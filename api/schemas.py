"""Request and response bodies of the API, with the parsing rules a bank expects: money sent as a decimal
string in yuan (a JSON number is refused, see `ledger.protocol.money.parse_yuan`), 32-byte hashes as 0x-hex,
addresses checksummed. Answers keep amounts in fen (`amount`) and add the yuan string beside each
(`amount_yuan`) with the `currency`; every block number (`block_number`) gets its time (`block_time`, ISO
8601 in the bank's zone)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from ledger.mirror.models import LoanBase, LotBase
from ledger.protocol.codes import MAX_BATCH, MAX_MATURITY, MAX_PURPOSE, RiskClass
from ledger.protocol.money import Amount, YuanAmount, parse_amount, parse_yuan
from ledger.protocol.terms import Address, LoanTerms

__all__ = [
    "Address",
    "Amount",
    "Hash32",
    "LoanTerms",
    "WriteResult",
    "YuanAmount",
    "parse_amount",
    "parse_maturity",
]

ZERO_HASH = "0x" + "00" * 32
T = TypeVar("T")
_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
LOAN_NUMBER = re.compile(r"LN-[0-9]{4}-[0-9]{4,8}")  # ASCII digits only: no look-alike numbers


def _hash32(value: Any) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise ValueError("expected a 32-byte hash as 0x followed by 64 hex digits")
    return value.lower()


def parse_maturity(value: Any) -> int:
    """Unix seconds, or an ISO date (midnight UTC) such as "2027-06-30"."""
    if isinstance(value, bool | float):
        raise ValueError('maturity is unix seconds (an integer) or an ISO date like "2027-06-30"')
    if isinstance(value, int):
        return _maturity_in_range(value)
    if isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError('maturity is unix seconds or an ISO date like "2027-06-30"') from None
        return _maturity_in_range(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()))
    raise ValueError('maturity is unix seconds or an ISO date like "2027-06-30"')


def _maturity_in_range(seconds: int) -> int:
    if not 0 <= seconds <= MAX_MATURITY:  # the contract stores maturity as uint40
        raise ValueError(f"maturity must be between 1970-01-01 and unix second {MAX_MATURITY:,}")
    return seconds


Hash32 = Annotated[
    str,
    BeforeValidator(_hash32),
    WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{64}$", "examples": [ZERO_HASH]}),
]
Maturity = Annotated[
    int,
    BeforeValidator(parse_maturity),
    WithJsonSchema(
        {"anyOf": [{"type": "integer"}, {"type": "string", "format": "date"}], "examples": ["2027-06-30"]}
    ),
]
Purpose = Annotated[
    int, Field(ge=0, le=MAX_PURPOSE, description="purpose code 0-31, see ledger.protocol.purposes")
]

_EX_HASH = "0x9c22ff5f21f0b81b113e63f7db6da94fedef11b2119b4088b89664fb9a3cb658"
_EX_LOT = "0x5f1c3b0a3d7c2e4b9a8f6e5d4c3b2a1908f7e6d5c4b3a29180f7e6d5c4b3a291"
_EX_ADDR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


# ---------------------------------------------------------------------------------------------- terms

# LoanTerms is the protocol's (ledger.protocol.terms): the API validates a lender's terms with the same model
# whose document it hashes and monitoring reads.

_TERMS_EXAMPLE: dict[str, Any] = {
    "repayment_schedule": [{"due": "2027-03-31", "amount": "2500000.00"}],
    "inspection_schedule": [{"due": "2026-09-30", "kind": "site_visit"}],
    "inspection_interval_days": 90,
    "counterparties": [_EX_ADDR],
    "approval_threshold": "500000.00",
}

# ---------------------------------------------------------------------------------------------- writes


def _terms_amounts_in_yuan(data: Any) -> Any:
    """The amounts inside a request's terms follow the API's rule too (decimal strings in yuan): a number
    there is refused before LoanTerms (which also reads stored documents) sees it."""
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, dict):
        return data
    if "approval_threshold" in terms and terms["approval_threshold"] is not None:
        parse_yuan(terms["approval_threshold"], "approval_threshold")
    schedule = terms.get("repayment_schedule")
    for item in schedule if isinstance(schedule, list) else []:
        if isinstance(item, dict) and "amount" in item:
            parse_yuan(item["amount"], "amount")
    return data


class OpenLoanRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loan_number": "LN-2026-0001",
                    "borrower": _EX_ADDR,
                    "borrower_id": "91330100MA2DEMO001X",
                    "principal": "5000000.00",
                    "currency": "CNY",
                    "allowed_purposes": [1, 3, 9],
                    "maturity": "2027-06-30",
                    "terms": _TERMS_EXAMPLE,
                }
            ]
        }
    )

    loan_number: str | None = Field(
        None,
        pattern=LOAN_NUMBER.pattern,
        description='Human loan number, e.g. "LN-2026-0001"; assigned if absent.',
    )
    borrower: Address
    borrower_id: str | None = Field(
        None,
        max_length=200,
        description="The borrower's registration number; only a salted hash goes on chain.",
    )
    principal: YuanAmount
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    allowed_purposes: list[Purpose] | None = Field(
        None,
        min_length=1,
        description="purpose codes the loan allows; left out, the default set of the terms' loan_type "
        "(the bank's setting)",
    )
    maturity: Maturity
    terms: LoanTerms = Field(default_factory=LoanTerms)

    @model_validator(mode="before")
    @classmethod
    def _yuan_terms(cls, data: Any) -> Any:
        return _terms_amounts_in_yuan(data)

    @model_validator(mode="after")
    def _purposes_or_type(self) -> OpenLoanRequest:
        if self.allowed_purposes is None and self.terms.loan_type is None:
            raise ValueError("give allowed_purposes, or a terms.loan_type whose default purposes apply")
        return self


class DisburseRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"payee": _EX_ADDR, "amount": "2000000.00", "purpose": 1, "evidence_hash": _EX_HASH}]
        }
    )

    payee: Address
    amount: YuanAmount
    purpose: Purpose
    evidence_hash: Hash32 = ZERO_HASH


class PaymentItem(BaseModel):
    from_lot: Hash32
    payee: Address
    amount: YuanAmount
    purpose: Purpose
    evidence_hash: Hash32 = ZERO_HASH


class PayRequest(PaymentItem):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loan": "LN-2026-0001",
                    "from_lot": _EX_LOT,
                    "payee": _EX_ADDR,
                    "amount": "120000.00",
                    "purpose": 1,
                    "evidence_hash": _EX_HASH,
                }
            ]
        }
    )

    loan: str = Field(description="Loan id (0x…) or loan number (LN-…)")


class PayBatchRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loan": "LN-2026-0001",
                    "payments": [
                        {"from_lot": _EX_LOT, "payee": _EX_ADDR, "amount": "1200.00", "purpose": 1},
                        {"from_lot": _EX_LOT, "payee": _EX_ADDR, "amount": "80.00", "purpose": 7},
                    ],
                }
            ]
        }
    )

    loan: str
    payments: list[PaymentItem] = Field(min_length=1, max_length=MAX_BATCH)


class ConfirmRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"evidence_hash": _EX_HASH},
                {"note": "Goods received in full, delivery note DN-2026-0042.", "evidence_hash": _EX_HASH},
            ]
        }
    )

    loan: str | None = Field(None, description="Only needed while the lot is not mirrored yet.")
    evidence_hash: Hash32 = Field(
        ZERO_HASH, description="An uploaded document (POST /v1/documents answers its hash), or none."
    )
    note: str | None = Field(
        None,
        min_length=1,
        max_length=8000,
        description="Your words, kept off chain as a document; keccak256 of that document goes on chain as "
        "the confirmation's evidence (with `evidence_hash`'s document named in it).",
    )


class DisputeRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reason": "Invoice INV-7731 was for CNY 12,000.00, not 15,000.00.",
                    "evidence_hash": _EX_HASH,
                },
                {"reason_hash": _EX_HASH},
            ]
        }
    )

    loan: str | None = None
    reason: str | None = Field(
        None,
        min_length=1,
        max_length=8000,
        description="Why you dispute it, in your words: kept off chain as a document, its keccak256 goes on "
        "chain as the reason hash. Give this or `reason_hash`.",
    )
    reason_hash: Hash32 | None = Field(None, description="keccak256 of a reason you keep yourself")
    evidence_hash: Hash32 = Field(
        ZERO_HASH, description="With `reason`: an uploaded document named in the dispute statement"
    )

    @model_validator(mode="after")
    def _one_reason(self) -> DisputeRequest:
        if (self.reason is None) == (self.reason_hash is None):
            raise ValueError(
                'give the reason as text ("reason": "...") or its hash ("reason_hash"), not both'
            )
        if self.reason is None and int(self.evidence_hash, 16) != 0:
            raise ValueError('evidence_hash goes with "reason" (both are named in the dispute statement)')
        return self


class RepayRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": "250000.00", "evidence_hash": _EX_HASH}]}
    )

    amount: YuanAmount
    evidence_hash: Hash32 = ZERO_HASH


RISK_CLASSES = {c.name.lower(): int(c) for c in RiskClass}


def _risk_name(value: Any) -> Any:
    """'substandard' (any case) or the RiskClass number; the range is checked by the field."""
    return RISK_CLASSES.get(value.lower(), value) if isinstance(value, str) else value


class ClassificationWithReason(BaseModel):
    """A class applied with a written reason: the text stays off chain, its keccak256 goes on chain."""

    risk_class: Annotated[
        int,
        Field(ge=0, le=4),
        BeforeValidator(_risk_name),
        WithJsonSchema({"anyOf": [{"type": "string", "enum": list(RISK_CLASSES)}, {"type": "integer"}]}),
    ]
    reason: str | None = Field(
        None, max_length=8000, description="required when the class differs from the suggestion"
    )


# ---- loan servicing (issue 18)


class ClassificationProposalRequest(ClassificationWithReason):
    """A class change proposed by one lender account; a second account of the same bank approves it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "risk_class": "substandard",
                    "reason": "Main customer filed for bankruptcy on 3 March; receivables at risk.",
                }
            ]
        }
    )

    capacity_assessed: bool = Field(
        False,
        description="upgrading a non-performing loan: the lender assessed that the debtor can keep paying "
        "(say how in the reason)",
    )
    credit_impaired: bool = Field(
        False, description="the asset is credit-impaired (puts it at 次级 or below)"
    )


class RepayAllocatedRequest(BaseModel):
    """A repayment in yuan; the API applies it to penalty, interest and principal in the configured order from
    the loan's schedule and records the split on chain."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"amount": "12500.00", "evidence_hash": _EX_HASH}]}
    )

    amount: Amount
    evidence_hash: Hash32 = ZERO_HASH


TERMS_CHANGES = {
    "extension": 0,
    "grace_period": 1,
    "other": 2,
    "collateral_released": 3,
    "collateral_substituted": 4,
}
"""`TermsChanged.change`: what a change of terms changed (collateral release or substitution counts too)."""


class CollateralRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"collateral_id": _EX_HASH, "value": "3500000.00", "evidence_hash": _EX_HASH}]
        }
    )

    collateral_id: Hash32
    value: YuanAmount
    evidence_hash: Hash32 = ZERO_HASH


class AttestRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"report_hash": _EX_HASH}]})

    head: Hash32 | None = Field(None, description="The head you verified; default: the chain's current head.")
    report_hash: Hash32


class RestructureRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"maturity": "2028-06-30", "terms": _TERMS_EXAMPLE, "financial_difficulty": False}]
        }
    )

    maturity: Maturity
    terms: LoanTerms
    # ---- issue 18: a change of terms says what changed and whether the debtor is in financial difficulty
    change: Literal["extension", "grace_period", "other", "collateral_released", "collateral_substituted"] = (
        Field(
            "extension",
            description="what changed; releasing or substituting collateral is a change of terms too",
        )
    )
    financial_difficulty: bool = Field(
        description="whether the debtor is in financial difficulty: then the loan becomes a restructured "
        "asset (at least 关注, observation period; days past due are never reset)"
    )

    @model_validator(mode="before")
    @classmethod
    def _yuan_terms(cls, data: Any) -> Any:
        return _terms_amounts_in_yuan(data)


class EventOut(BaseModel):
    name: str
    log_index: int
    args: dict[str, Any]


class WriteResult(BaseModel):
    """What a write recorded. `mirrored` is true when the indexer had mirrored the block before answering
    (only waited for with ?wait=true)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "tx_hash": "0x8a7e…",
                    "block_number": 42,
                    "block_hash": "0x1f3d…",
                    "gas_used": 78213,
                    "events": [
                        {"name": "Paid", "log_index": 0, "args": {"lotId": _EX_LOT, "amount": 12000000}}
                    ],
                    "mirrored": True,
                    "loan_id": "0x2b…",
                    "lot_ids": [_EX_LOT],
                }
            ]
        }
    )

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    events: list[EventOut]
    mirrored: bool = False
    loan_id: str | None = None
    loan_number: str | None = None
    lot_ids: list[str] = Field(default_factory=list)
    terms_hash: str | None = None


# ---------------------------------------------------------------------------------------------- reads


class ScoreReasonOut(BaseModel):
    feature: str
    value: float | str | None = Field(
        description="the loan's value of the feature (null: none recorded, the feature does not apply)"
    )
    points_lost: float = Field(description="points below the feature's best bin")
    en: str = Field(description='e.g. "days past due now: 45"')
    zh: str = Field(description='e.g. "当前逾期天数：45"')


class BehaviourScoreOut(BaseModel):
    score: float = Field(description="points; higher is better (600 = odds 50:1, +20 doubles the odds)")
    band: str = Field(description="A (lowest risk) .. E (highest risk)")
    band_en: str
    band_zh: str
    pd: float = Field(description="probability of 90+ days past due within 12 months, per the model")
    reasons: list[ScoreReasonOut] = Field(description="the top three reasons, worst first")
    as_of: str = Field(description="the chain time the features were computed at (bank's time zone)")
    scored_at: str
    model_id: int
    model_card: str = Field(description="where the model card is")


class LoanOut(LoanBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "loan_id": "0x2b…",
                    "loan_number": "LN-2026-0001",
                    "principal": 500000000,
                    "disbursed": 350000000,
                    "repaid": 25000000,
                    "outstanding": 325000000,
                    "currency": "CNY",
                    "status": 1,
                    "risk_class": 1,
                }
            ]
        }
    )

    loan_number: str | None = None
    # The borrower's risk file (api.policy): null for a caller who only takes part in the trail (a supplier).
    repaid: int | None = Field(description="null for a supplier: repayments are the borrower's risk file")  # type: ignore[assignment]
    outstanding: int | None = 0
    risk_class: int | None = Field(  # type: ignore[assignment]
        description="RiskClass: 0 normal .. 4 loss; null for a supplier (the borrower's risk file)"
    )
    # In a person's terms (api.services.human): yuan strings beside the fen, times beside the blocks.
    principal_yuan: str | None = Field(None, description='principal in yuan, e.g. "5000000.00"')
    disbursed_yuan: str | None = None
    repaid_yuan: str | None = None
    outstanding_yuan: str | None = None
    block_time: str | None = Field(
        None, description="when the loan was opened: its block's time, ISO 8601 in the bank's time zone"
    )
    updated_time: str | None = Field(None, description="time of the block of the loan's latest event")
    maturity_date: str | None = Field(None, description='the maturity as a calendar day, "2027-06-30"')
    behaviour_score: BehaviourScoreOut | None = Field(
        None,
        description="the latest behaviour score (issue 21): only for the loan's lender and auditors; for "
        "anyone else, and before a loan is scored, the answer has no such field",
        exclude_if=lambda value: value is None,
    )


class LotOut(LotBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra={
            "examples": [
                {
                    "loan_id": "0x2b…",
                    "lot_id": _EX_LOT,
                    "holder": _EX_ADDR,
                    "amount": 200000000,
                    "remaining": 50000000,
                    "purpose": 1,
                    "declared_use": True,
                    "confirmation": "confirmed",
                }
            ]
        }
    )

    purpose_label: str = ""
    holder_name: str | None = None
    amount_yuan: str | None = Field(None, description='amount in yuan, e.g. "2000000.00"')
    remaining_yuan: str | None = None
    currency: str | None = Field(None, description="the loan's currency (ISO 4217)")
    block_time: str | None = Field(
        None, description="when the lot was recorded: its block's time, ISO 8601 in the bank's time zone"
    )
    confirmation_time: str | None = Field(None, description="when the payee confirmed or disputed it")
    paid_by: str | None = Field(
        None, description="the account that signed the payment (payments received); null if not known"
    )
    paid_by_name: str | None = None


class TrailLot(LotOut):
    depth: int = Field(0, description="0 for a disbursement, parent's depth + 1 for a payment")
    children: list[TrailLot] = Field(default_factory=list)


class Trail(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "loan": {"loan_id": "0x2b…", "loan_number": "LN-2026-0001"},
                    "head": "0x77…",
                    "lots": [{"lot_id": _EX_LOT, "amount": 200000000, "children": []}],
                    "undeclared_use": 1,
                    "disputed": 1,
                }
            ]
        }
    )

    loan: LoanOut
    head: str
    format: Literal["tree", "flat"] = "tree"
    lots: list[TrailLot]
    lot_count: int
    undeclared_use: int
    disputed: int
    partial: bool = Field(False, description="True when the caller only sees the lots it holds or paid out")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


# ---------------------------------------------------------------------------------------------- vouchers
# Supply-chain vouchers (issue 22): the core enterprise's acknowledged payable (确权), split down its supply
# chain, financed at a discount (贴现) and settled at maturity (到期兑付).


def _day(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError('a date is written "YYYY-MM-DD", e.g. "2027-06-30"')


Day = Annotated[date, BeforeValidator(_day)]


class CreditLineRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"core": "Huaxin Motors", "limit": "50000000.00", "expiry": "2027-12-31"}]
        }
    )

    core: str = Field(
        min_length=1, max_length=200, description="the core enterprise: participant name or org id"
    )
    limit: YuanAmount
    expiry: Day = Field(description="the line's last day")
    terms_hash: Hash32 = Field(ZERO_HASH, description="hash of the credit agreement")


class IssueVoucherRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "holder": _EX_ADDR,
                    "face_value": "1000000.00",
                    "maturity": "2027-06-30",
                    "invoice_hash": _EX_HASH,
                }
            ]
        }
    )

    holder: Address = Field(description="the tier-1 supplier's account")
    face_value: YuanAmount
    maturity: Maturity = Field(
        description='when the core enterprise pays (到期日): "2027-06-30" or unix seconds'
    )
    currency: Literal["CNY"] = "CNY"
    invoice_hash: Hash32 = Field(
        description="hash of the invoice or contract behind the payable (upload it: POST /v1/documents)"
    )
    voucher_id: Hash32 | None = Field(None, description="the voucher's id; one is made when left out")


class Transfer(BaseModel):
    to: Address
    amount: YuanAmount


class SplitRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"transfers": [{"to": _EX_ADDR, "amount": "300000.00"}]}]}
    )

    transfers: list[Transfer] = Field(
        min_length=1, max_length=50, description="who gets how much of the part"
    )


class FinancingRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"bank": "Bank A", "discount_rate_bps": 350}]})

    bank: str = Field(min_length=1, max_length=200, description="the bank: participant name or org id")
    discount_rate_bps: int = Field(
        ge=1, le=10_000, description="annual discount rate, basis points (350 = 3.5%)"
    )


class PaymentRefRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"payment_ref": _EX_HASH}]})

    payment_ref: Hash32 = Field(ZERO_HASH, description="hash of the bank transfer's reference (off chain)")
