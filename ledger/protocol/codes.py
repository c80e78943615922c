"""The contract's codes and limits as Python knows them: roles, loan status, risk class, event kinds,
inspection kinds, and the bounds the contract enforces.

One place: every other module (the chain client, monitoring, the API's messages and dashboard labels)
imports these instead of writing the numbers again. The values mirror the contract
(`contracts/interfaces/IFundFlowLedger.sol`, `contracts/FundFlowLedger.sol`); tests/test_protocol.py checks
them against its source and a deployed instance. Purpose codes have their own module,
`ledger.protocol.purposes`.
"""

from __future__ import annotations

from enum import IntEnum

from sha3 import keccak_256

__all__ = [
    "AUDITOR_ROLE",
    "DEFAULT_ADMIN_ROLE",
    "ENTERPRISE_ROLE",
    "LENDER_ROLE",
    "MAX_AMOUNT",
    "MAX_BATCH",
    "MAX_INSPECTION_KIND",
    "MAX_MATURITY",
    "MAX_PURPOSE",
    "MAX_RECORD_KIND",
    "OPERATOR_ROLE",
    "EventKind",
    "FileRecordKind",
    "InspectionKind",
    "LoanStatus",
    "PartState",
    "RiskClass",
    "VoucherEventKind",
    "role_id",
]

# ---------------------------------------------------------------------------------------------- roles


def role_id(name: str) -> str:
    """The role id the contract computes, `keccak256(name)`, as 0x-hex."""
    return "0x" + keccak_256(name.encode("utf-8")).hexdigest()


DEFAULT_ADMIN_ROLE = "0x" + "00" * 32
"""OpenZeppelin AccessControl's admin role (bytes32(0)); the deployer holds it."""
OPERATOR_ROLE = role_id("OPERATOR_ROLE")
"""Registers organisations and grants the three business roles."""
LENDER_ROLE = role_id("LENDER_ROLE")
"""Opens and services loans for its organisation."""
ENTERPRISE_ROLE = role_id("ENTERPRISE_ROLE")
"""Spends lots it holds and confirms what it received."""
AUDITOR_ROLE = role_id("AUDITOR_ROLE")
"""Attests trails."""

# ---------------------------------------------------------------------------------------------- limits

MAX_BATCH = 500
"""FundFlowLedger.MAX_BATCH: the contract refuses larger payment batches (LedgerBatchTooLarge)."""
MAX_PURPOSE = 31
"""Purpose codes run 0-31 (a loan's allowed purposes are a uint32 bit set; LedgerInvalidPurpose)."""
MAX_INSPECTION_KIND = 2
"""The highest inspection kind the contract accepts (LedgerInvalidInspectionKind); see `InspectionKind`."""
MAX_AMOUNT = 2**64 - 1
"""Every amount must fit in a uint64 of minor units (LedgerAmountTooLarge)."""
MAX_MATURITY = 2**40 - 1
"""The contract stores a loan's maturity (unix seconds) as a uint40."""

# ---------------------------------------------------------------------------------------------- enums


class LoanStatus(IntEnum):
    """`IFundFlowLedger.LoanStatus`. A loan opens `OPEN`; its lender closes it as `REPAID` or `WRITTEN_OFF`.
    `NONE` is what the contract reports for a loan that does not exist."""

    NONE = 0
    OPEN = 1  # 存续
    REPAID = 2  # 已结清
    WRITTEN_OFF = 3  # 已核销

    @property
    def en(self) -> str:
        return _STATUS_LABELS[self][0]

    @property
    def zh(self) -> str:
        return _STATUS_LABELS[self][1]


_STATUS_LABELS = {
    LoanStatus.NONE: ("unknown", "未知"),
    LoanStatus.OPEN: ("open", "存续"),
    LoanStatus.REPAID: ("repaid", "已结清"),
    LoanStatus.WRITTEN_OFF: ("written off", "已核销"),
}


class RiskClass(IntEnum):
    """`IFundFlowLedger.RiskClass`: the five-category loan classification (五级分类)."""

    NORMAL = 0  # 正常
    SPECIAL_MENTION = 1  # 关注
    SUBSTANDARD = 2  # 次级
    DOUBTFUL = 3  # 可疑
    LOSS = 4  # 损失

    @property
    def en(self) -> str:
        return _RISK_LABELS[self][0]

    @property
    def zh(self) -> str:
        return _RISK_LABELS[self][1]


_RISK_LABELS = {
    RiskClass.NORMAL: ("normal", "正常"),
    RiskClass.SPECIAL_MENTION: ("special mention", "关注"),
    RiskClass.SUBSTANDARD: ("substandard", "次级"),
    RiskClass.DOUBTFUL: ("doubtful", "可疑"),
    RiskClass.LOSS: ("loss", "损失"),
}


class EventKind(IntEnum):
    """`IFundFlowLedger.EventKind`, in the contract's order: the value is mixed into each hash-chain step.
    (The contract's `None` = 0 tags no event and has no member here.)"""

    LoanOpened = 1
    Disbursed = 2
    Paid = 3
    LotConfirmed = 4
    LotDisputed = 5
    Repaid = 6
    LoanClosed = 7
    RiskClassified = 8
    CollateralValued = 9
    InspectionRecorded = 10
    LoanRestructured = 11
    RecordFiled = 12  # the post-loan file (issue 19)
    # ---- loan servicing (issue 18)
    RepaymentApplied = 13
    TermsChanged = 14


class VoucherEventKind(IntEnum):
    """`ISupplyChainVouchers.VoucherEventKind`: the tag mixed into each step of a voucher's hash chain."""

    VoucherIssued = 1
    PartTransferred = 2
    FinancingRequested = 3
    PartFinanced = 4
    PartSettled = 5


class PartState(IntEnum):
    """`ISupplyChainVouchers.PartState`: where a voucher part stands."""

    NONE = 0
    HELD = 1
    FINANCING_REQUESTED = 2
    FINANCED = 3
    SETTLED = 4

    @property
    def label(self) -> str:
        return _PART_STATE_LABELS[self][0]

    @property
    def label_zh(self) -> str:
        return _PART_STATE_LABELS[self][1]


_PART_STATE_LABELS = {
    PartState.NONE: ("none", "无"),
    PartState.HELD: ("held", "持有"),
    PartState.FINANCING_REQUESTED: ("financing requested", "融资申请中"),
    PartState.FINANCED: ("financed", "已融资"),
    PartState.SETTLED: ("settled", "已兑付"),
}


class InspectionKind(IntEnum):
    """The `kind` of `recordInspection` / `InspectionRecorded` (IFundFlowLedger's NatSpec). The loan terms
    name scheduled inspections by the lower-case member name (`"site_visit"`)."""

    SITE_VISIT = 0
    DOCUMENT_REVIEW = 1
    INTERVIEW = 2


# ------------------------------------------------------------------------------------- the post-loan file


class FileRecordKind(IntEnum):
    """The `recordKind` of `fileRecord` / `RecordFiled` (IFundFlowLedger's NatSpec): what a record in the
    loan's post-loan file is. Its details are off chain (canonical JSON, keccak256 = `contentHash`)."""

    GUARANTEE = 0  # a guarantee given (保证, 抵押, 质押)
    GUARANTEE_RELEASED = 1  # that guarantee released
    RECOVERY = 2  # money recovered after write-off (核销后清收)
    PRESERVATION_CASE = 3  # an asset-preservation case (财产保全) filed or updated; the latest is the case
    # -- issue 19, second half: third parties and the collateral register
    APPRAISER_ENGAGED = 4  # `recordId` = the org id; the contract then lets its accounts sign valuations
    LAW_FIRM_ENGAGED = 5
    COLLECTION_AGENCY_ENGAGED = 6
    ENGAGEMENT_ENDED = 7  # every engagement of the org (`recordId`) on the loan ends
    COLLATERAL_ITEM = 8  # a collateral item registered or changed; the latest record with its id is the item
    APPRAISAL = 9  # a valuation signed by an engaged appraiser (`fileAppraisal`, not `fileRecord`)


MAX_RECORD_KIND = FileRecordKind.COLLATERAL_ITEM
"""The highest record kind `fileRecord` accepts (LedgerInvalidRecordKind); APPRAISAL is `fileAppraisal`'s."""
