"""The collateral register (押品登记簿) and third-party engagements in the post-loan file: one model each.

An item is `RecordFiled(loan, COLLATERAL_ITEM, itemId, contentHash)` with `itemId` = keccak256 of the loan id
and the bank's item reference: registering it, a change of status (seized, released) or haircut, and a
substitution each file a new content under the same id, so the latest one is the item and the chain keeps
every change of terms. A valuation is signed by an appraiser its firm was engaged for (`fileAppraisal`,
record kind 9: the contract refuses anyone else); a lender's own estimate stays the older
`valueCollateral` and is shown as such.

Effective cover = Σ value × (1 − haircut) / outstanding principal, over the items not released, each item at
its latest valuation. Haircuts are basis points (0-9999); each item's effective value is rounded down to the
fen (floor(value × (10000 − haircut_bp) / 10000)), so rounding never adds cover.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.money import YuanAmount

__all__ = [
    "APPRAISAL_SCHEMA",
    "ENGAGEMENT_SCHEMA",
    "ITEM_SCHEMA",
    "Appraisal",
    "AppraisalDetails",
    "CollateralItem",
    "CollateralItemDetails",
    "CollateralStatus",
    "CollateralType",
    "Engagement",
    "EngagementDetails",
    "PartyRole",
    "effective_value",
    "item_record_id",
]

ITEM_SCHEMA = "fundflow.collateral-item/1"
APPRAISAL_SCHEMA = "fundflow.collateral-appraisal/1"
ENGAGEMENT_SCHEMA = "fundflow.engagement/1"
_HASH = r"^0x[0-9a-f]{64}$"
BP = 10_000


class CollateralType(StrEnum):
    REAL_ESTATE = "real_estate"
    LAND_USE_RIGHT = "land_use_right"
    EQUIPMENT = "equipment"
    VEHICLE = "vehicle"
    INVENTORY = "inventory"
    RECEIVABLES = "receivables"
    DEPOSIT = "deposit"
    EQUITY = "equity"
    OTHER = "other"

    @property
    def zh(self) -> str:
        return _TYPE_ZH[self]


_TYPE_ZH = {
    CollateralType.REAL_ESTATE: "房产",
    CollateralType.LAND_USE_RIGHT: "土地使用权",
    CollateralType.EQUIPMENT: "机器设备",
    CollateralType.VEHICLE: "车辆",
    CollateralType.INVENTORY: "存货",
    CollateralType.RECEIVABLES: "应收账款",
    CollateralType.DEPOSIT: "存单",
    CollateralType.EQUITY: "股权",
    CollateralType.OTHER: "其他",
}


class CollateralStatus(StrEnum):
    REGISTERED = "registered"  # 已登记: the charge is registered, the item counts as cover
    SEIZED = "seized"  # 已查封: seized by a court; still the bank's security, still counts
    RELEASED = "released"  # 已解押: released (or substituted): no longer cover

    @property
    def zh(self) -> str:
        return {"registered": "已登记", "seized": "已查封", "released": "已解押"}[self.value]


class PartyRole(StrEnum):
    APPRAISER = "appraiser"  # 评估机构
    LAW_FIRM = "law_firm"  # 律师事务所
    COLLECTION_AGENCY = "collection_agency"  # 催收机构

    @property
    def record_kind(self) -> FileRecordKind:
        return {
            "appraiser": FileRecordKind.APPRAISER_ENGAGED,
            "law_firm": FileRecordKind.LAW_FIRM_ENGAGED,
            "collection_agency": FileRecordKind.COLLECTION_AGENCY_ENGAGED,
        }[self.value]

    @property
    def zh(self) -> str:
        names = {"appraiser": "评估机构", "law_firm": "律师事务所", "collection_agency": "催收机构"}
        return names[self.value]

    @classmethod
    def of_kind(cls, kind: int) -> PartyRole | None:
        for role in cls:
            if int(role.record_kind) == kind:
                return role
        return None


class CollateralItemDetails(BaseModel):
    """An item as the lender registers or changes it (the API's request body)."""

    model_config = ConfigDict(extra="forbid")

    item_ref: str = Field(min_length=1, max_length=100, description="the bank's reference for the item")
    type: CollateralType
    description: str = Field(min_length=1, max_length=500)
    registration_number: str = Field(
        min_length=1, max_length=100, description="the charge's registration number (抵押登记证明号)"
    )
    status: CollateralStatus = CollateralStatus.REGISTERED
    haircut_bp: int = Field(ge=0, lt=BP, description="haircut in basis points: 3000 = 30%")
    revaluation_days: int | None = Field(
        None, gt=0, le=3660, description="revalue at least this often (else FUNDFLOW_COLLATERAL_STALE_DAYS)"
    )
    substitutes: str | None = Field(
        None, min_length=1, max_length=100, description="the item_ref of the item this one replaces"
    )
    change_reason: str | None = Field(
        None, max_length=2000, description="why the terms change (required for a release or a substitution)"
    )

    @model_validator(mode="after")
    def _checks(self) -> CollateralItemDetails:
        if (self.status is CollateralStatus.RELEASED or self.substitutes) and not self.change_reason:
            raise ValueError("a release or a substitution changes the loan's terms: give its change_reason")
        if self.substitutes == self.item_ref:
            raise ValueError("an item cannot substitute itself: substitutes names the item it replaces")
        return self


class CollateralItem(CollateralItemDetails):
    loan_id: str = Field(pattern=_HASH)

    def document(self) -> dict[str, Any]:
        return {"schema": ITEM_SCHEMA, **self.model_dump(mode="json")}

    @property
    def record_id(self) -> str:
        return item_record_id(self.loan_id, self.item_ref)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CollateralItem:
        if document.get("schema") != ITEM_SCHEMA:
            raise ValueError(f"not a collateral item (schema {document.get('schema')!r})")
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})


class AppraisalDetails(BaseModel):
    """A valuation as the appraiser signs it (the API's request body; `value` in yuan)."""

    model_config = ConfigDict(extra="forbid")

    value: YuanAmount = Field(description="appraised value")
    valued_on: date
    method: str = Field(min_length=1, max_length=200, description="e.g. market comparison (市场比较法)")
    report_hash: str | None = Field(None, pattern=_HASH, description="hash of the appraisal report")


class Appraisal(BaseModel):
    """The stored valuation: bound to one loan and item, value in fen."""

    model_config = ConfigDict(extra="forbid")

    loan_id: str = Field(pattern=_HASH)
    item_id: str = Field(pattern=_HASH)
    value: int = Field(gt=0)
    valued_on: date
    method: str
    report_hash: str | None = None

    def document(self) -> dict[str, Any]:
        return {"schema": APPRAISAL_SCHEMA, **self.model_dump(mode="json")}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Appraisal:
        if document.get("schema") != APPRAISAL_SCHEMA:
            raise ValueError(f"not a collateral appraisal (schema {document.get('schema')!r})")
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})


class EngagementDetails(BaseModel):
    """A third party engaged on a loan (the API's request body)."""

    model_config = ConfigDict(extra="forbid")

    participant: str = Field(min_length=1, max_length=200, description="the firm's participant name")
    role: PartyRole
    engaged_on: date
    scope: str = Field(min_length=1, max_length=1000, description="what the engagement covers, in words")


class Engagement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    loan_id: str = Field(pattern=_HASH)
    org_id: str = Field(pattern=_HASH)
    role: PartyRole | None = Field(description="None: every engagement of the firm on the loan ended")
    on: date
    scope: str = Field(max_length=1000)

    def document(self) -> dict[str, Any]:
        return {"schema": ENGAGEMENT_SCHEMA, **self.model_dump(mode="json")}

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Engagement:
        if document.get("schema") != ENGAGEMENT_SCHEMA:
            raise ValueError(f"not an engagement (schema {document.get('schema')!r})")
        return cls.model_validate({k: v for k, v in document.items() if k != "schema"})


def item_record_id(loan_id: str, item_ref: str) -> str:
    return "0x" + keccak(canonical_json({"item_ref": item_ref, "loan_id": loan_id})).hex()


def effective_value(value: int, haircut_bp: int) -> int:
    """value × (1 − haircut), in fen, rounded down (rounding never adds cover)."""
    return value * (BP - haircut_bp) // BP
