"""The mirror's read model: every question the rest of the system asks of the mirrored tables, in one place.

`Mirror(conn)` wraps a SQLAlchemy Connection or Session (the caller owns the transaction) and answers with
typed values: `LoanPublic`, `LotPublic` and the record families of `ledger.mirror.models`, `DecodedEvent`s
for raw events, frozen dataclasses for the rest. Readers (the API, the dashboard, the monitor, verification,
status, the audit report) never write mirror SQL of their own; the indexer's write path (`projections`,
`indexer`) keeps its specialised SQL.

Rules it keeps:
- Lists come in chain order (block, log index) unless a method says otherwise.
- Ids are compared as stored: 0x-prefixed lower-case hex; addresses checksummed as the events carry them.
- A mirrored event row becomes a `DecodedEvent` only through `event_from_row`, here.
- Who may see which loan is the caller's policy, passed in as a `LoanScope`; the read model only applies it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlmodel import SQLModel

import ledger.mirror.models  # noqa: F401  (registers the tables)
from ledger.mirror.models import (
    AttestationPublic,
    ClassificationPublic,
    CollateralValuationPublic,
    ConfirmationPublic,
    FileRecordPublic,
    InspectionPublic,
    LoanPublic,
    LotPublic,
    RepaymentPublic,
    RestructuringPublic,
    hash_key,
    lots_by_id,
)
from ledger.protocol.codes import FileRecordKind
from ledger.protocol.collateral import PartyRole
from ledger.protocol.eventjson import ArgsCodec
from ledger.protocol.events import DecodedEvent, EventDecoder

__all__ = [
    "RECORD_KINDS",
    "DocumentReference",
    "LoanRecords",
    "LoanScope",
    "Mirror",
    "MirrorCheckpoint",
    "MirrorCounts",
    "event_from_row",
]

_HASH = re.compile(r"0x[0-9a-f]{64}")
_IN_CHUNK = 500  # values per IN (...) list: well under SQLite's and PostgreSQL's parameter limits

# The per-loan record tables, by the name `records()` takes, and the public model of each.
RECORD_KINDS: dict[str, type[SQLModel]] = {
    "confirmations": ConfirmationPublic,
    "repayments": RepaymentPublic,
    "classifications": ClassificationPublic,
    "collateral_valuations": CollateralValuationPublic,
    "inspections": InspectionPublic,
    "restructurings": RestructuringPublic,
    "attestations": AttestationPublic,
    "file_records": FileRecordPublic,
}

_M = TypeVar("_M", bound=SQLModel)


def _t(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def _model(cls: type[_M], row: Any) -> _M:
    """A public model from a row the database typed already (exact amounts, booleans), without pydantic's
    validation: what `model_construct` does, at a quarter of its cost (a trail lists every lot of a loan).
    tests/test_mirror_read.py checks the result equals `model_validate` of the same values."""
    mapping = row._mapping
    names = _fields(cls)
    model = cls.__new__(cls)
    object.__setattr__(model, "__dict__", {name: mapping[name] for name in names})
    object.__setattr__(model, "__pydantic_fields_set__", set(names))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


@cache
def _fields(cls: type[SQLModel]) -> tuple[str, ...]:
    return tuple(cls.model_fields)


def _mirrored_chain() -> sa.ScalarSelect[Any]:
    """The checkpoint's chain id, as a subquery: with it a lookup of blocks by number uses the blocks' key
    (chain_id, number) instead of scanning every block."""
    checkpoint = _t("checkpoint")
    return sa.select(checkpoint.c.chain_id).where(checkpoint.c.id == 1).scalar_subquery()


def event_from_row(row: Any, codec: ArgsCodec) -> DecodedEvent:
    """A row of the raw `events` table (name, args, address, block_number, block_hash, transaction_hash,
    log_index and, if selected, transaction_index) as the `DecodedEvent` it was decoded to."""
    mapping = row._mapping
    return DecodedEvent(
        name=row.name,
        args=codec.from_json(row.name, row.args),
        address=row.address,
        block_number=row.block_number,
        block_hash=row.block_hash,
        transaction_hash=row.transaction_hash,
        log_index=row.log_index,
        transaction_index=mapping.get("transaction_index", 0),
    )


# ---------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class MirrorCheckpoint:
    """Where the mirror stands and what it was built from."""

    chain_id: int
    genesis_hash: str
    contract_address: str
    abi_hash: str
    start_block: int
    block_number: int
    block_hash: str
    updated_at: datetime


@dataclass(frozen=True)
class MirrorCounts:
    """How much the mirror holds."""

    blocks: int
    loans: int
    lots: int
    event_counts: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.event_counts.values())


@dataclass(frozen=True)
class LoanScope:
    """Which loans a reader may see: all of them (`LoanScope()`), one lender organisation's
    (`lender_org`), or those a set of accounts borrowed or holds a lot of (`accounts`)."""

    lender_org: str | None = None
    accounts: frozenset[str] | None = None
    loans: frozenset[str] | None = None  # a third party: the loans it is engaged on (issue 19)

    @classmethod
    def of_lender(cls, org_id: str) -> LoanScope:
        return cls(lender_org=org_id)

    @classmethod
    def of_accounts(cls, accounts: Iterable[str]) -> LoanScope:
        return cls(accounts=frozenset(accounts))

    @classmethod
    def of_loans(cls, loan_ids: Iterable[str]) -> LoanScope:
        return cls(loans=frozenset(loan_ids))

    @property
    def everything(self) -> bool:
        return self.lender_org is None and self.accounts is None and self.loans is None

    def condition(self) -> sa.ColumnElement[bool] | None:
        """WHERE clause on `loans` (None: every loan)."""
        loans, lots = _t("loans"), _t("lots")
        parts: list[sa.ColumnElement[bool]] = []
        if self.lender_org is not None:
            parts.append(loans.c.lender_org == self.lender_org)
        if self.accounts is not None:
            accounts = sorted(self.accounts)
            holds = sa.select(lots.c.loan_id).where(lots.c.holder.in_(accounts))
            parts.append(sa.or_(loans.c.borrower.in_(accounts), loans.c.loan_id.in_(holds)))
        if self.loans is not None:
            parts.append(loans.c.loan_id.in_(sorted(self.loans)) if self.loans else sa.false())
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def loan_ids(self) -> sa.Select[Any]:
        """SELECT of the ids of the loans in scope, to filter tables outside the mirror that name loans
        (alerts, loan metadata): `alerts.c.loan_id.in_(scope.loan_ids())`."""
        loans = _t("loans")
        query = sa.select(loans.c.loan_id)
        condition = self.condition()
        return query if condition is None else query.where(condition)


@dataclass(frozen=True)
class LoanRecords:
    """A loan's records in chain order; kinds not asked for are empty."""

    confirmations: tuple[ConfirmationPublic, ...] = ()
    repayments: tuple[RepaymentPublic, ...] = ()
    classifications: tuple[ClassificationPublic, ...] = ()
    collateral_valuations: tuple[CollateralValuationPublic, ...] = ()
    inspections: tuple[InspectionPublic, ...] = ()
    restructurings: tuple[RestructuringPublic, ...] = ()
    attestations: tuple[AttestationPublic, ...] = ()
    file_records: tuple[FileRecordPublic, ...] = ()

    def of(self, kind: str) -> tuple[SQLModel, ...]:
        """The records of one kind, by its table name (a key of `RECORD_KINDS`)."""
        if kind not in RECORD_KINDS:
            raise KeyError(f"{kind!r} is not a kind of loan record ({', '.join(RECORD_KINDS)})")
        records: tuple[SQLModel, ...] = getattr(self, kind)
        return records


@dataclass(frozen=True)
class DocumentReference:
    """An event argument that names a document: which event (with where it sits on chain) and which
    argument. `loan_id` is None for participant events (an organisation's profile)."""

    digest: str
    loan_id: str | None
    event: str
    argument: str
    block_number: int
    log_index: int
    block_hash: str
    transaction_hash: str


# ---------------------------------------------------------------------------------------------- the model


class Mirror:
    """Reads the mirror through `db` (a Connection or Session, in the caller's transaction).

    `decoder` (the ledger's `EventDecoder`, or an `ArgsCodec` built from one) is needed only by `events()`,
    to turn stored arguments back into their Python types."""

    def __init__(
        self, db: sa.Connection | Session, *, decoder: EventDecoder | ArgsCodec | None = None
    ) -> None:
        self.db = db
        self._codec = ArgsCodec(decoder) if isinstance(decoder, EventDecoder) else decoder

    def _rows(self, statement: sa.Executable) -> Sequence[Any]:
        return self.db.execute(statement).all()

    def _scalar(self, statement: sa.Executable) -> Any:
        return self.db.execute(statement).scalar()

    # ------------------------------------------------------------------ checkpoint and counts

    def exists(self) -> bool:
        """Whether the mirror's tables exist (the database was migrated)."""
        return bool(sa.inspect(self._connection()).has_table("checkpoint"))

    def checkpoint(self) -> MirrorCheckpoint | None:
        """None until the indexer wrote its first checkpoint."""
        t = _t("checkpoint")
        row = self.db.execute(sa.select(t).where(t.c.id == 1)).first()
        if row is None:
            return None
        mapping = row._mapping
        return MirrorCheckpoint(**{k: mapping[k] for k in MirrorCheckpoint.__dataclass_fields__})

    def counts(self) -> MirrorCounts:
        blocks, loans, lots, events = _t("blocks"), _t("loans"), _t("lots"), _t("events")

        def count(table: sa.Table) -> int:
            return int(self.db.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

        per_name = {
            str(name): int(n)
            for name, n in self._rows(
                sa.select(events.c.name, sa.func.count()).group_by(events.c.name).order_by(events.c.name)
            )
        }
        return MirrorCounts(blocks=count(blocks), loans=count(loans), lots=count(lots), event_counts=per_name)

    def _connection(self) -> sa.Connection:
        return self.db if isinstance(self.db, sa.Connection) else self.db.connection()

    # ------------------------------------------------------------------ blocks

    def tip(self) -> int | None:
        """The newest mirrored block's number."""
        blocks = _t("blocks")
        number = self._scalar(sa.select(sa.func.max(blocks.c.number)))
        return None if number is None else int(number)

    def latest_block_time(self) -> int | None:
        """The newest mirrored block's timestamp: the chain's clock as the mirror knows it."""
        blocks = _t("blocks")
        row = self.db.execute(
            sa.select(blocks.c.timestamp)
            .where(blocks.c.chain_id == _mirrored_chain())  # by the key; without it, every block is read
            .order_by(blocks.c.number.desc())
            .limit(1)
        ).first()
        return None if row is None else int(row[0])

    def block_times(self, numbers: Iterable[int]) -> dict[int, int]:
        """Timestamps of the mirrored blocks among `numbers` (blocks not mirrored are left out)."""
        blocks = _t("blocks")
        wanted = sorted({int(n) for n in numbers})
        out: dict[int, int] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            part = wanted[start : start + _IN_CHUNK]
            for number, timestamp in self._rows(
                sa.select(blocks.c.number, blocks.c.timestamp).where(
                    blocks.c.chain_id == _mirrored_chain(), blocks.c.number.in_(part)
                )
            ):
                out[int(number)] = int(timestamp)
        return out

    # ------------------------------------------------------------------ loans

    def loan(self, loan_id: str, scope: LoanScope | None = None) -> LoanPublic | None:
        """The loan, or None when it is not mirrored (or not in `scope`)."""
        loans = _t("loans")
        query = sa.select(loans).where(loans.c.loan_id == loan_id)
        condition = scope.condition() if scope is not None else None
        if condition is not None:
            query = query.where(condition)
        row = self.db.execute(query).first()
        return None if row is None else _model(LoanPublic, row)

    def _loans_query(
        self,
        scope: LoanScope | None,
        status: int | None,
        risk_class: int | None,
        borrower: str | None,
        loan_ids: Collection[str] | None,
    ) -> sa.Select[Any]:
        loans = _t("loans")
        query = sa.select(loans)
        condition = scope.condition() if scope is not None else None
        if condition is not None:
            query = query.where(condition)
        if status is not None:
            query = query.where(loans.c.status == status)
        if risk_class is not None:
            query = query.where(loans.c.risk_class == risk_class)
        if borrower is not None:
            query = query.where(
                sa.func.lower(loans.c.borrower) == borrower.lower()
            )  # ix_loans_borrower_lower
        if loan_ids is not None:
            query = query.where(loans.c.loan_id.in_(sorted(set(loan_ids))))
        return query

    def loans(
        self,
        *,
        scope: LoanScope | None = None,
        status: int | None = None,
        risk_class: int | None = None,
        borrower: str | None = None,
        loan_ids: Collection[str] | None = None,
        newest_first: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[LoanPublic]:
        """Loans matching every filter given, in the order they were opened (`newest_first`: by opening
        block, newest first; loans opened in one block stay in log order). `borrower` matches any case."""
        return [
            _model(LoanPublic, r)
            for r in self.loan_rows(
                scope=scope,
                status=status,
                risk_class=risk_class,
                borrower=borrower,
                loan_ids=loan_ids,
                newest_first=newest_first,
                offset=offset,
                limit=limit,
            )
        ]

    def loan_rows(
        self,
        *,
        scope: LoanScope | None = None,
        status: int | None = None,
        risk_class: int | None = None,
        borrower: str | None = None,
        loan_ids: Collection[str] | None = None,
        newest_first: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> Sequence[Any]:
        """`loans()` as plain rows (the same columns, by attribute): for lists served at volume, where a
        `LoanPublic` per row would cost more than the rest of the request (benchmarks: reads.loans_*)."""
        loans = _t("loans")
        query = self._loans_query(scope, status, risk_class, borrower, loan_ids)
        first = loans.c.block_number.desc() if newest_first else loans.c.block_number
        query = query.order_by(first, loans.c.log_index).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        return self._rows(query)

    def count_loans(
        self,
        *,
        scope: LoanScope | None = None,
        status: int | None = None,
        risk_class: int | None = None,
        borrower: str | None = None,
        loan_ids: Collection[str] | None = None,
    ) -> int:
        """How many loans `loans()` with the same filters lists, without offset and limit."""
        query = self._loans_query(scope, status, risk_class, borrower, loan_ids)
        return int(self.db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())

    def loan_ids(self, *, status: int | None = None) -> list[str]:
        """Ids of the mirrored loans (with `status`, only those), sorted."""
        loans = _t("loans")
        query = sa.select(loans.c.loan_id)
        if status is not None:
            query = query.where(loans.c.status == status)
        return sorted(str(r[0]) for r in self._rows(query))

    def visible_loan_ids(self, loan_ids: Collection[str], scope: LoanScope | None = None) -> set[str]:
        """Those of `loan_ids` that are mirrored and in `scope`."""
        loans = _t("loans")
        ids = sorted(set(loan_ids))
        out: set[str] = set()
        condition = scope.condition() if scope is not None else None
        for start in range(0, len(ids), _IN_CHUNK):
            query = sa.select(loans.c.loan_id).where(loans.c.loan_id.in_(ids[start : start + _IN_CHUNK]))
            if condition is not None:
                query = query.where(condition)
            out.update(str(r[0]) for r in self._rows(query))
        return out

    def lender_orgs(self, loan_ids: Collection[str]) -> dict[str, str]:
        """loan id -> the lender organisation that granted it, for the mirrored ones among `loan_ids`."""
        loans = _t("loans")
        ids = sorted(set(loan_ids))
        out: dict[str, str] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            part = ids[start : start + _IN_CHUNK]
            for loan_id, org in self._rows(
                sa.select(loans.c.loan_id, loans.c.lender_org).where(loans.c.loan_id.in_(part))
            ):
                out[str(loan_id)] = str(org)
        return out

    # ------------------------------------------------------------------ lots

    def lots(self, loan_id: str) -> list[LotPublic]:
        """The loan's lots in chain order: a parent always comes before its children."""
        return [_model(LotPublic, r) for r in self.lot_rows(loan_id)]

    def lot_rows(self, loan_id: str) -> Sequence[Any]:
        """`lots()` as plain rows: a trail serves every lot of a loan, and a `LotPublic` per lot (~6 us)
        would be a third of what serving a lot costs (benchmarks: reads.trail_1000_lots)."""
        lots = _t("lots")
        return self._rows(
            sa.select(lots).where(lots.c.loan_id == loan_id).order_by(lots.c.block_number, lots.c.log_index)
        )

    def lot(self, lot_id: str) -> LotPublic | None:
        """The lot `lot_id` (any case), or None."""
        return self.lots_by_id([lot_id]).get(lot_id.lower())

    def lots_by_id(self, lot_ids: Collection[str]) -> dict[str, LotPublic]:
        """lot id -> lot, for the mirrored ones among `lot_ids` (any case; keys lower-case)."""
        lots = _t("lots")
        ids = sorted({i.lower() for i in lot_ids})
        out: dict[str, LotPublic] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            for row in self._rows(sa.select(lots).where(lots_by_id(lots, ids[start : start + _IN_CHUNK]))):
                out[row.lot_id] = _model(LotPublic, row)
        return out

    def _held_query(self, accounts: Collection[str], confirmation: str | None) -> sa.Select[Any]:
        lots = _t("lots")
        query = sa.select(lots).where(lots.c.holder.in_(sorted(set(accounts))))
        if confirmation is not None:
            query = query.where(lots.c.confirmation == confirmation)
        return query

    def held_lots(
        self,
        accounts: Collection[str],
        *,
        confirmation: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[LotPublic]:
        """Lots held by any of `accounts` (payments they received), in chain order."""
        rows = self.held_lot_rows(accounts, confirmation=confirmation, offset=offset, limit=limit)
        return [_model(LotPublic, r) for r in rows]

    def held_lot_rows(
        self,
        accounts: Collection[str],
        *,
        confirmation: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> Sequence[Any]:
        """`held_lots()` as plain rows, for the payments-received list (benchmarks: reads.payments_*)."""
        lots = _t("lots")
        query = (
            self._held_query(accounts, confirmation)
            .order_by(lots.c.block_number, lots.c.log_index)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        return self._rows(query)

    def count_held_lots(self, accounts: Collection[str], *, confirmation: str | None = None) -> int:
        query = self._held_query(accounts, confirmation)
        return int(self.db.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one())

    # ------------------------------------------------------------------ records and events

    def records(self, loan_id: str, kinds: Collection[str] | None = None) -> LoanRecords:
        """The loan's records of `kinds` (keys of `RECORD_KINDS`; default all), in chain order."""
        wanted = list(RECORD_KINDS) if kinds is None else list(kinds)
        found: dict[str, tuple[SQLModel, ...]] = {}
        for kind in wanted:
            if kind not in RECORD_KINDS:
                raise KeyError(f"{kind!r} is not a kind of loan record ({', '.join(RECORD_KINDS)})")
            table = _t(kind)
            rows = self._rows(
                sa.select(table)
                .where(table.c.loan_id == loan_id)
                .order_by(table.c.block_number, table.c.log_index)
            )
            found[kind] = tuple(_model(RECORD_KINDS[kind], r) for r in rows)
        return LoanRecords(**found)  # type: ignore[arg-type]

    def events(self, loan_id: str, *, chain_id: int | None = None) -> list[DecodedEvent]:
        """The loan's raw events (chained ones and attestations) in chain order, as decoded; with `chain_id`,
        only that chain's (the checkpoint's chain is the only one an indexer writes)."""
        if self._codec is None:
            raise ValueError("Mirror.events needs the ledger's event decoder: Mirror(conn, decoder=...)")
        events = _t("events")
        query = sa.select(events).where(events.c.loan_id == loan_id)
        if chain_id is not None:
            query = query.where(events.c.chain_id == chain_id)
        rows = self._rows(query.order_by(events.c.block_number, events.c.log_index))
        return [event_from_row(r, self._codec) for r in rows]

    def opening(self, loan_id: str) -> Any | None:
        """The loan's `LoanOpened` event row (block_number, log_index, transaction_hash and its decoded
        `args` as stored: termsHash, maturity, ...), or None; no decoder needed."""
        events = _t("events")
        query = (
            sa.select(events.c.block_number, events.c.log_index, events.c.transaction_hash, events.c.args)
            .where(events.c.loan_id == loan_id, events.c.name == "LoanOpened")
            .order_by(events.c.block_number, events.c.log_index)
        )
        rows = self._rows(query.limit(1))
        return rows[0] if rows else None

    # ------------------------------------------------------------------ participants

    def org_accounts(self, org_id: str) -> list[str]:
        """Every account the chain ever added to organisation `org_id` (removed ones included), sorted."""
        accounts = _t("accounts")
        return sorted(
            str(r[0]) for r in self._rows(sa.select(accounts.c.address).where(accounts.c.org_id == org_id))
        )

    # ------------------------------------------------------------------ third parties (issue 19)

    def engagements(
        self, loan_id: str | None = None, org_id: str | None = None
    ) -> dict[str, dict[str, set[str]]]:
        """loan id -> org id -> the third-party roles (`PartyRole` values) engaged now, replayed from the
        post-loan file's record kinds in chain order (4-6 engage, 7 ends every engagement of the firm), as the
        contract keeps them: no off-chain content is needed to know who is engaged."""
        records = _t("file_records")
        first, ended = int(FileRecordKind.APPRAISER_ENGAGED), int(FileRecordKind.ENGAGEMENT_ENDED)
        query = sa.select(records.c.loan_id, records.c.record_kind, records.c.record_id).where(
            records.c.record_kind.between(first, ended)
        )
        if loan_id is not None:
            query = query.where(records.c.loan_id == loan_id)
        if org_id is not None:
            query = query.where(sa.func.lower(records.c.record_id) == org_id.lower())
        out: dict[str, dict[str, set[str]]] = {}
        for r in self._rows(query.order_by(records.c.block_number, records.c.log_index)):
            roles = out.setdefault(str(r.loan_id), {}).setdefault(str(r.record_id).lower(), set())
            role = PartyRole.of_kind(int(r.record_kind))
            if role is None:
                roles.clear()
            else:
                roles.add(role.value)
        return {loan: {o: rs for o, rs in orgs.items() if rs} for loan, orgs in out.items()}

    def engaged_loans(self, org_id: str, role: str) -> set[str]:
        """The loans `org_id` is engaged on now in `role` ("appraiser", "law_firm", "collection_agency")."""
        return {
            loan
            for loan, orgs in self.engagements(org_id=org_id).items()
            if role in orgs.get(org_id.lower(), ())
        }

    # ------------------------------------------------------------------ transactions (issue 20)

    def has_transaction(self, tx_hash: str, loan_id: str, block_number: int) -> bool:
        """Whether an event of transaction `tx_hash` (on loan `loan_id`, in block `block_number`) is on the
        mirrored chain; the loan and block narrow the search to the loan's event index."""
        events = _t("events")
        query = sa.select(events.c.transaction_hash).where(
            events.c.loan_id == loan_id,
            events.c.block_number == block_number,
            events.c.transaction_hash == tx_hash,
        )
        return bool(self._rows(query.limit(1)))

    # ------------------------------------------------------------------ documents

    def document_refs(self, digest: str) -> list[DocumentReference]:
        """Every event argument that names the document `digest` (0x-hex keccak256, any case), in chain
        order; from the `document_refs` projection."""
        digest = digest.lower()
        if not _HASH.fullmatch(digest):
            return []
        refs, blocks, events, checkpoint = _t("document_refs"), _t("blocks"), _t("events"), _t("checkpoint")
        chain = sa.select(checkpoint.c.chain_id).where(checkpoint.c.id == 1).scalar_subquery()
        query = (
            sa.select(refs, blocks.c.hash.label("block_hash"), events.c.transaction_hash)
            .select_from(
                refs.join(
                    blocks, sa.and_(blocks.c.chain_id == chain, blocks.c.number == refs.c.block_number)
                ).join(
                    events,
                    sa.and_(
                        events.c.chain_id == blocks.c.chain_id,
                        events.c.block_hash == blocks.c.hash,
                        events.c.log_index == refs.c.log_index,
                    ),
                )
            )
            .where(refs.c.digest_key == hash_key(digest), refs.c.digest == digest)
            .order_by(refs.c.block_number, refs.c.log_index, refs.c.argument)
        )
        return [
            DocumentReference(
                digest=r.digest,
                loan_id=r.loan_id,
                event=r.event,
                argument=r.argument,
                block_number=int(r.block_number),
                log_index=int(r.log_index),
                block_hash=r.block_hash,
                transaction_hash=r.transaction_hash,
            )
            for r in self._rows(query)
        ]

    # ------------------------------------------------------------------ slices of a loan (the monitor's)

    def loan_lot_rows(
        self,
        loan_id: str,
        *,
        blocks: tuple[int, int] | None = None,
        parent: str | None = None,
        holder: str | None = None,
        amounts: tuple[int, int] | None = None,
    ) -> Sequence[Any]:
        """Lots of one loan in chain order, only those in the block range `blocks` (inclusive), paid out of
        `parent`, held by `holder`, or with an amount in [low, high) `amounts`: what a monitoring rule needs
        of a big loan after a batch, without reading all of it (the key's block range is an index range)."""
        lots = _t("lots")
        query = sa.select(lots).where(lots.c.loan_id == loan_id)
        if blocks is not None:
            query = query.where(lots.c.block_number.between(*blocks))
        if parent is not None:
            query = query.where(lots.c.parent_lot_id == parent)
        if holder is not None:
            query = query.where(lots.c.holder == holder)
        if amounts is not None:
            query = query.where(lots.c.amount >= amounts[0], lots.c.amount < amounts[1])
        return self._rows(query.order_by(lots.c.block_number, lots.c.log_index))

    def last_block_by(self, timestamp: int, *, after: int, upto: int) -> int | None:
        """The newest mirrored block in [`after`, `upto`] stamped at or before `timestamp`."""
        blocks = _t("blocks")
        number = self._scalar(
            sa.select(sa.func.max(blocks.c.number)).where(
                blocks.c.chain_id == _mirrored_chain(),
                blocks.c.number.between(after, upto),
                blocks.c.timestamp <= timestamp,
            )
        )
        return None if number is None else int(number)
