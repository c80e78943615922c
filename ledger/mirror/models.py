"""SQL models of the mirror: processed block headers, raw events, the checkpoint, and the projections built
from the events (participants, loans, lots, each loan's records, and the events' document references).
Readers use the `...Public` models through `ledger.mirror.read.Mirror`.

Every projection row says which event made it (`block_number`, `log_index`), so a reorg can undo it: the
indexer deletes the rows orphaned blocks made and puts back, from `undo_images`, the rows they changed as
they were before (`ledger.mirror.projections`); it rebuilds the affected loans from the raw events that
remain only when the images do not reach back far enough. Amounts are exact (`Uint64`), ids and hashes
are 0x-prefixed lower-case hex, addresses checksummed.
Status and risk class are the contract enum values (see `ledger.chain.contract.LoanStatus`/`RiskClass`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

__all__ = [
    "Account",
    "Attestation",
    "AttestationPublic",
    "Block",
    "Checkpoint",
    "Classification",
    "CreditLine",
    "CreditLinePublic",
    "ClassificationPublic",
    "CollateralValuation",
    "CollateralValuationPublic",
    "Confirmation",
    "ConfirmationPublic",
    "DocumentRef",
    "Event",
    "hash_key",
    "Inspection",
    "InspectionPublic",
    "Loan",
    "LoanBase",
    "LoanPublic",
    "Lot",
    "lot_key",
    "LotBase",
    "LotPublic",
    "lots_by_id",
    "Organization",
    "Repayment",
    "RepaymentPublic",
    "Restructuring",
    "RestructuringPublic",
    "FileRecord",
    "FileRecordPublic",
    "RoleGrant",
    "Uint64",
    "UndoImage",
    "Voucher",
    "VoucherFinancing",
    "VoucherFinancingPublic",
    "VoucherPart",
    "VoucherPartPublic",
    "VoucherPublic",
    "VoucherSettlement",
    "VoucherSettlementPublic",
    "VOUCHER_TABLES",
    "uint64",
    "uint64_text",
    "CONFIRMATION_STATES",
    "LOAN_RECORD_TABLES",
    "PARTICIPANT_TABLES",
]

CONFIRMATION_STATES = ("unconfirmed", "confirmed", "disputed")


class Uint64(sa.types.TypeDecorator[int]):
    """An exact unsigned 64-bit integer (every ledger amount fits one).

    NUMERIC(20,0) on PostgreSQL (BIGINT is signed and stops at 2^63-1). On SQLite, INTEGER is signed 64-bit
    and NUMERIC silently turns larger values into floats, so the value is stored as 20-digit zero-padded
    text: exact, and it still sorts and compares correctly.
    """

    impl = sa.Numeric(20, 0)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(20))
        return dialect.type_descriptor(sa.Numeric(20, 0))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self.storage(dialect)(value)

    @staticmethod
    def storage(dialect: Dialect) -> Callable[[Any], Any]:
        """The function from an amount to what `dialect` stores (also the indexer's bulk writes' path)."""
        return uint64_text if dialect.name == "sqlite" else uint64

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


def uint64(value: Any) -> int:
    """`value` as an exact unsigned 64-bit integer, or ValueError."""
    number = int(value)
    if not 0 <= number < 1 << 64:
        raise ValueError(f"{number} does not fit an unsigned 64-bit amount")
    return number


def uint64_text(value: Any) -> str:
    """An amount as SQLite stores it: 20-digit zero-padded text."""
    return f"{uint64(value):020d}"


# Plain `json` on PostgreSQL too: stored as written, never queried inside (jsonb would parse every event).
_JSON = sa.JSON()


def _hex(length: int = 66, **kwargs: Any) -> Any:
    return Field(sa_type=sa.String(length), **kwargs)  # type: ignore[call-overload]


def _amount(**kwargs: Any) -> Any:
    return Field(sa_type=Uint64, **kwargs)  # type: ignore[call-overload]


def _bigint(**kwargs: Any) -> Any:
    return Field(sa_type=sa.BigInteger, **kwargs)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------- raw mirror


class Block(SQLModel, table=True):
    """Every block the indexer processed, with or without events: the reorg detector compares these."""

    __tablename__ = "blocks"

    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    number: int = Field(primary_key=True, sa_type=sa.BigInteger)
    hash: str = _hex(unique=True)
    parent_hash: str = _hex()
    timestamp: int = _bigint()


class Event(SQLModel, table=True):
    """One raw log of the ledger contract (or of the voucher contract beside it: `voucher_id` set), keyed
    naturally; `args` holds the decoded arguments as JSON, integers wider than 53 bits as decimal
    strings."""

    __tablename__ = "events"
    __table_args__ = (
        sa.Index("ix_events_loan", "loan_id", "block_number", "log_index"),
        sa.Index("ix_events_voucher", "voucher_id", "block_number", "log_index"),
    )

    chain_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    block_hash: str = Field(primary_key=True, sa_type=sa.String(66))
    log_index: int = Field(primary_key=True)
    block_number: int = _bigint()
    transaction_hash: str = _hex()
    transaction_index: int = 0
    address: str = _hex(42)
    name: str = Field(sa_type=sa.String(64), index=True)
    loan_id: str | None = _hex(default=None)
    voucher_id: str | None = _hex(default=None, description="the voucher contract's events: the voucher")
    args: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    topics: list[str] = Field(default_factory=list, sa_type=_JSON)
    data: str = Field(default="0x", sa_type=sa.Text)


class Checkpoint(SQLModel, table=True):
    """Where the mirror stands and what it was built from (one row). Committed with the rows it covers."""

    __tablename__ = "checkpoint"

    id: int = Field(default=1, primary_key=True)
    chain_id: int = _bigint()
    genesis_hash: str = _hex()
    contract_address: str = _hex(42)
    abi_hash: str = _hex()
    start_block: int = _bigint()
    block_number: int = _bigint()
    block_hash: str = _hex()
    updated_at: datetime = Field(sa_type=sa.DateTime(timezone=True))


# ---------------------------------------------------------------------------------------------- participants


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"

    org_id: str = _hex(primary_key=True)
    profile_hash: str = _hex()
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()


class Account(SQLModel, table=True):
    """An account's current organisation; `active` false once removed (a later AccountAdded revives it)."""

    __tablename__ = "accounts"

    address: str = _hex(42, primary_key=True)
    org_id: str = _hex(index=True)
    active: bool = True
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()


class RoleGrant(SQLModel, table=True):
    """An OpenZeppelin role held (or once held: `active` false after RoleRevoked) by an account."""

    __tablename__ = "role_grants"

    role: str = _hex(primary_key=True)
    account: str = _hex(42, primary_key=True)
    role_name: str = Field(sa_type=sa.String(32))
    active: bool = True
    sender: str = _hex(42)
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()


PARTICIPANT_TABLES = ("organizations", "accounts", "role_grants")

# ------------------------------------------------------------------------------------------ loans and lots


class LoanBase(SQLModel):
    loan_id: str = _hex(primary_key=True)
    lender_org: str = _hex(index=True)
    borrower: str = _hex(42, index=True)
    borrower_ref: str = _hex()
    principal: int = _amount()
    currency: str = Field(sa_type=sa.String(3))
    allowed_purposes: int = _bigint()
    maturity: int = _bigint()
    terms_hash: str = _hex()
    disbursed: int = _amount()
    repaid: int = _amount()
    status: int = Field(description="LoanStatus: 1 open, 2 repaid, 3 written off")
    risk_class: int = Field(description="RiskClass: 0 normal .. 4 loss")
    closing_reason_hash: str | None = _hex(default=None)
    head: str = _hex()
    event_count: int = Field(
        default=0,
        description="every event of the loan, attestations included: what verification lists and counts",
    )
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()
    updated_block: int = _bigint()


class Loan(LoanBase, table=True):
    """A loan as its events left it; `head` is its hash-chain head, checkable with one `headOf` call."""

    __tablename__ = "loans"


class LoanPublic(LoanBase):
    pass


class LotBase(SQLModel):
    loan_id: str = _hex()
    lot_id: str = _hex()
    parent_lot_id: str | None = _hex(default=None)
    holder: str = _hex(42, index=True)
    amount: int = _amount()
    remaining: int = _amount()
    purpose: int
    declared_use: bool
    entrusted: bool | None = Field(default=None, description="disbursements only: paid to a non-borrower")
    evidence_hash: str = _hex()
    confirmation: str = Field(default="unconfirmed", sa_type=sa.String(12))
    confirmation_hash: str | None = _hex(default=None)
    confirmation_block: int | None = _bigint(default=None)
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()


class Lot(LotBase, table=True):
    """Money of one loan held by one payee: a disbursement (no parent) or a payment out of `parent_lot_id`.

    Keyed by the event that made it, so a loan's lots are one range of the key, in chain order, and a new
    lot lands at the end of its loan's range. A lot is found by its id through `lot_key` (`lots_by_id`): lot
    ids are hashes, and an index keyed by them takes each new lot to a random page, so every batch of the
    indexer rewrote most of a 140-byte-per-lot index; the 8-byte key's index is a sixth of that.
    """

    __tablename__ = "lots"
    __table_args__ = (
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
        sa.Index("ix_lots_key", "lot_key"),
    )

    lot_key: int = Field(sa_type=sa.BigInteger, description="lot_key(lot_id): the lookup key of lot_id")


class LotPublic(LotBase):
    pass


def hash_key(value: str) -> int:
    """The lookup key of a 0x-prefixed 32-byte hash: its first 8 bytes as a signed 64-bit integer. Not unique
    (a hash could be chosen to collide), so a lookup by key also compares the hash itself."""
    key = int(value[2:18], 16)
    return key - (1 << 64) if key >= 1 << 63 else key


def lot_key(lot_id: str) -> int:
    """The lookup key of a lot id (`hash_key`); a lookup by key also compares the id (`lots_by_id`)."""
    return hash_key(lot_id)


def lots_by_id(table: sa.Table, lot_ids: Collection[str]) -> sa.ColumnElement[bool]:
    """WHERE clause: the rows of `table` (lots) whose id is one of `lot_ids` (0x-prefixed, lower-case),
    through the lot key's index."""
    ids = sorted(set(lot_ids))
    keys = sorted({lot_key(i) for i in ids})
    if len(ids) == 1:
        return sa.and_(table.c.lot_key == keys[0], table.c.lot_id == ids[0])
    return sa.and_(table.c.lot_key.in_(keys), table.c.lot_id.in_(ids))


class _LoanRecord(SQLModel):
    """Fields every per-loan record shares: which loan, and the event that made it."""

    loan_id: str = _hex(primary_key=True)
    block_number: int = Field(primary_key=True, sa_type=sa.BigInteger)
    log_index: int = Field(primary_key=True)
    transaction_hash: str = _hex()


class ConfirmationBase(_LoanRecord):
    lot_id: str = _hex(index=True)
    state: str = Field(sa_type=sa.String(12))
    evidence_hash: str = _hex()


class Confirmation(ConfirmationBase, table=True):
    """Every LotConfirmed / LotDisputed; the lot row carries the latest."""

    __tablename__ = "confirmations"


class ConfirmationPublic(ConfirmationBase):
    pass


class RepaymentBase(_LoanRecord):
    amount: int = _amount()  # the part applied to principal
    outstanding: int = _amount()
    evidence_hash: str = _hex()
    # issue 18: the rest of the split a `RepaymentApplied` records (0 for a principal-only `Repaid`)
    interest: int = _amount(default=0)
    penalty: int = _amount(default=0)


class Repayment(RepaymentBase, table=True):
    __tablename__ = "repayments"


class RepaymentPublic(RepaymentBase):
    pass


class ClassificationBase(_LoanRecord):
    risk_class: int
    reason_hash: str = _hex()


class Classification(ClassificationBase, table=True):
    __tablename__ = "classifications"


class ClassificationPublic(ClassificationBase):
    pass


class CollateralValuationBase(_LoanRecord):
    collateral_id: str = _hex(index=True)
    value: int = _amount()
    evidence_hash: str = _hex()


class CollateralValuation(CollateralValuationBase, table=True):
    __tablename__ = "collateral_valuations"


class CollateralValuationPublic(CollateralValuationBase):
    pass


class InspectionBase(_LoanRecord):
    kind: int = Field(description="0 site visit, 1 document review, 2 interview")
    report_hash: str = _hex()


class Inspection(InspectionBase, table=True):
    __tablename__ = "inspections"


class InspectionPublic(InspectionBase):
    pass


class FileRecordBase(_LoanRecord):
    """A record in the loan's post-loan file (`RecordFiled`); its content is off chain (`content_hash`)."""

    record_kind: int = Field(description="FileRecordKind: 0 guarantee given, 1 guarantee released")
    record_id: str = _hex(index=True)
    content_hash: str = _hex()
    actor: str = _hex(42)


class FileRecord(FileRecordBase, table=True):
    __tablename__ = "file_records"


class FileRecordPublic(FileRecordBase):
    pass


class RestructuringBase(_LoanRecord):
    maturity: int = _bigint()
    terms_hash: str = _hex()
    # issue 18 (`TermsChanged`): what changed (TermsChange) and whether the debtor is in financial difficulty;
    # None for a `LoanRestructured`, which said neither
    change_kind: int | None = Field(default=None)
    financial_difficulty: bool | None = Field(default=None)
    # the maturity before the change and the principal outstanding at it (TermsChanged carries both; for a
    # LoanRestructured, the loan's state before it): days past due are never reset, so a maturity already
    # passed keeps counting until that principal is repaid
    previous_maturity: int | None = _bigint(default=None)
    outstanding: int | None = _amount(default=None)


class Restructuring(RestructuringBase, table=True):
    __tablename__ = "restructurings"


class RestructuringPublic(RestructuringBase):
    pass


class AttestationBase(_LoanRecord):
    auditor_org: str = _hex(index=True)
    head: str = _hex()
    report_hash: str = _hex()


class Attestation(AttestationBase, table=True):
    __tablename__ = "attestations"


class AttestationPublic(AttestationBase):
    pass


# --------------------------------------------------------------------------- supply-chain vouchers (issue 22)
# Mirrored from the SupplyChainVouchers contract beside the ledger (`ledger.chain.vouchers`). Rows carry the
# event that made them, like loans and lots: a reorg deletes the rows the orphaned blocks appended (by
# `block_number`) and puts back, from `undo_images`, the rows they changed in place.


class CreditLineBase(SQLModel):
    """A core enterprise's credit line: set by its bank (`CreditLineSet`), used by each voucher it issues
    (确权) and freed by each part it settles. `block_number`/`log_index` are of the latest CreditLineSet."""

    core_org: str = _hex(primary_key=True)
    bank_org: str = _hex(index=True)
    line_limit: int = _amount()
    outstanding: int = _amount()
    expiry: int = _bigint()
    terms_hash: str = _hex()
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()
    updated_block: int = _bigint()


class CreditLine(CreditLineBase, table=True):
    __tablename__ = "credit_lines"


class CreditLinePublic(CreditLineBase):
    pass


class VoucherBase(SQLModel):
    """A core enterprise's acknowledged payable (确权) as its events left it; `head` is its hash-chain head,
    checkable with one `headOf` call on the voucher contract. `bank_org` is the bank whose line it was
    issued under (the line's bank at issue)."""

    voucher_id: str = _hex(primary_key=True)
    core_org: str = _hex(index=True)
    bank_org: str = _hex(index=True)
    holder: str = _hex(42, description="the supplier the voucher was issued to (root part 1)")
    face_value: int = _amount()
    settled: int = _amount()
    maturity: int = _bigint()
    currency: str = Field(sa_type=sa.String(3))
    invoice_hash: str = _hex()
    head: str = _hex()
    event_count: int = Field(default=0, description="every event of the voucher")
    block_number: int = _bigint()
    log_index: int
    transaction_hash: str = _hex()
    updated_block: int = _bigint()


class Voucher(VoucherBase, table=True):
    __tablename__ = "vouchers"


class VoucherPublic(VoucherBase):
    pass


class VoucherPartBase(SQLModel):
    """One part of a voucher: the root (part 1, the whole face value at issue) or a piece split off
    `parent_part_id` and transferred to `holder`. `amount` is its face value when created, `remaining` what
    it still has (less what was split off it). `state` is `PartState` (1 held, 2 financing requested,
    3 financed, 4 settled); the requested bank and rate stay on the row once financed."""

    voucher_id: str = _hex(primary_key=True)
    part_id: int = Field(primary_key=True, sa_type=sa.BigInteger)
    parent_part_id: int | None = _bigint(default=None)
    holder: str = _hex(42, index=True)
    amount: int = _amount()
    remaining: int = _amount()
    state: int = Field(description="PartState: 1 held, 2 financing requested, 3 financed, 4 settled")
    bank_org: str | None = _hex(default=None, description="the bank asked to finance it")
    discount_rate_bps: int | None = Field(default=None)
    settled_amount: int | None = _amount(default=None)
    settled_block: int | None = _bigint(default=None)
    block_number: int = _bigint(index=True)
    log_index: int
    transaction_hash: str = _hex()
    updated_block: int = _bigint()


class VoucherPart(VoucherPartBase, table=True):
    __tablename__ = "voucher_parts"


class VoucherPartPublic(VoucherPartBase):
    pass


class _VoucherRecord(SQLModel):
    """Fields every per-voucher record shares: which voucher and part, and the event that made it."""

    voucher_id: str = _hex(primary_key=True)
    block_number: int = Field(primary_key=True, sa_type=sa.BigInteger)
    log_index: int = Field(primary_key=True)
    transaction_hash: str = _hex()
    part_id: int = Field(sa_type=sa.BigInteger)


class VoucherFinancingBase(_VoucherRecord):
    """A part financed at a discount (贴现, `PartFinanced`): interest = face × rate × days / 360, half up."""

    bank: str = _hex(42, index=True)
    bank_org: str = _hex(index=True)
    seller: str = _hex(42)
    face: int = _amount()
    discount_rate_bps: int
    discount_days: int
    interest: int = _amount()
    paid: int = _amount()
    payment_ref: str = _hex()


class VoucherFinancing(VoucherFinancingBase, table=True):
    __tablename__ = "voucher_financings"


class VoucherFinancingPublic(VoucherFinancingBase):
    pass


class VoucherSettlementBase(_VoucherRecord):
    """A part paid at maturity by the core enterprise to whoever held it (`PartSettled`)."""

    holder: str = _hex(42)
    amount: int = _amount()
    payment_ref: str = _hex()


class VoucherSettlement(VoucherSettlementBase, table=True):
    __tablename__ = "voucher_settlements"


class VoucherSettlementPublic(VoucherSettlementBase):
    pass


# Tables the voucher events fill: a reorg deletes the rows orphaned blocks appended (by block_number), a
# voucher rebuild empties and refills them all.
VOUCHER_TABLES = ("voucher_financings", "voucher_settlements", "voucher_parts", "vouchers", "credit_lines")


# ---------------------------------------------------------------------------------------------- documents


class DocumentRef(SQLModel, table=True):
    """One event argument that names an off-chain document by its hash (evidence, reasons, reports, terms,
    profiles): which digest, which event (by chain position) and which argument; the zero hash names no
    document and has no row. Written by the projections with the rest of a batch and, like them, deleted
    and rebuilt by loan on a reorg (`loan_id` is None for the participant events, which a reorg rebuilds as
    a whole).

    Rows are numbered as written (`id`: SQLite's rowid, so new rows land at the end of the table) and found
    by digest through `digest_key` (`hash_key(digest)`, 8 bytes; a lookup also compares `digest`, as a
    lot's compares its id). That one small index is all the table keeps: its rows come one per event, and
    a wider or second random index cost SQLite more per row the bigger the table grew (a key of digest and
    position: 14 µs a row at 200,000 rows, against 7 µs for this one). So a rebuild's delete by loan scans
    the table: rebuilds are rare, an index by loan would cost every event. A reorg undo deletes by block.
    """

    __tablename__ = "document_refs"
    __table_args__ = (
        sa.Index("ix_document_refs_key", "digest_key"),
        # A reorg undo deletes the orphaned blocks' rows by block (migration 0010). Block numbers only grow,
        # so new entries land at the index's end: not the random pages the note above is about.
        sa.Index("ix_document_refs_block", "block_number"),
    )

    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),  # type: ignore[call-overload]
    )
    digest_key: int = Field(sa_type=sa.BigInteger, description="hash_key(digest): the lookup key of digest")
    digest: str = _hex()
    loan_id: str | None = _hex(default=None)
    block_number: int = _bigint()
    log_index: int
    event: str = Field(sa_type=sa.String(64), description="the event's name")
    argument: str = Field(sa_type=sa.String(32), description="the event argument's name")


# Tables whose rows belong to one loan: a reorg deletes the affected loans' rows from all of them.
# (`document_refs` also holds rows of participant events, with no loan: a participants rebuild deletes those.)
LOAN_RECORD_TABLES = (
    "lots",
    "confirmations",
    "repayments",
    "classifications",
    "collateral_valuations",
    "inspections",
    "restructurings",
    "attestations",
    "file_records",
    "document_refs",
    "loans",
)


# ---------------------------------------------------------------------------------------------- reorg undo


class UndoImage(SQLModel, table=True):
    """A projection row as it was before an event of `block_number` first changed it in place (`image`;
    None: the row did not exist), for undoing that block in a reorg without replaying the loan's history.

    Rows that events only append (lots, records, document refs, a loan's opening) need no image: an undo
    deletes those with a `block_number` above the common ancestor. A row with `table_name` "" marks the
    block as journaled, so an undo knows the images reach back to its ancestor. The indexer keeps images of
    the newest `max_reorg_depth` blocks only (`ledger.mirror.projections`).
    """

    __tablename__ = "undo_images"
    __table_args__ = (sa.Index("ix_undo_images_block", "block_number"),)

    id: int | None = Field(
        default=None,
        primary_key=True,
        sa_type=sa.BigInteger().with_variant(sa.Integer(), "sqlite"),  # type: ignore[call-overload]
    )
    block_number: int = _bigint()
    table_name: str = Field(sa_type=sa.String(64), description='the projection table; "" marks the block')
    row_key: dict[str, Any] = Field(sa_type=_JSON, description="the row's primary key: column -> value")
    image: dict[str, Any] | None = Field(default=None, sa_type=_JSON)
