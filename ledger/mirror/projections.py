"""Projections: turn ordered ledger events into participants, loans, lots, each loan's records, and the
document references (`document_refs`: which event argument names which document hash).

Forward, `Projector.apply` loads the state a batch touches, applies the events in memory (checking every
loan's hash chain and the lot arithmetic) and writes with one executemany per table.

Undo costs what the orphaned blocks changed, not what the loans hold (issue 24). Events change projection
rows in two ways only, and each has one generic undo:
- they append rows (a loan's opening, lots, each loan's records, document refs) that carry the event's
  `block_number`: `Projector.undo` deletes those above the common ancestor;
- they change a row in place (a loan's totals and head, a lot's remaining and confirmation, participants):
  before the first change an event of block b makes to a row, `_Batch.image` keeps the row as it was in
  `undo_images` (for the newest `max_reorg_depth` blocks only), and the undo puts back, for each row, its
  image from the lowest orphaned block.
A new event kind fits by doing exactly that: rows it adds carry its `block_number` (and `loan_id`, in a table
listed in `LOAN_RECORD_TABLES`); rows it changes are changed through `image(...)` first. Nothing in the undo
names an event.
`Projector.rebuild` (delete a loan's rows, replay its remaining raw events through `apply`) remains for
`rebuild_projections` and for an undo below the oldest image (a mirror indexed before migration 0010).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

import ledger.mirror.models  # noqa: F401  (registers the tables)
from ledger.errors import MirrorIntegrityError
from ledger.mirror.bulk import insert_rows, insert_values, update_rows
from ledger.mirror.models import (
    LOAN_RECORD_TABLES,
    PARTICIPANT_TABLES,
    VOUCHER_TABLES,
    hash_key,
    lot_key,
    lots_by_id,
)
from ledger.mirror.read import event_from_row
from ledger.protocol.codes import (
    AUDITOR_ROLE,
    DEFAULT_ADMIN_ROLE,
    ENTERPRISE_ROLE,
    LENDER_ROLE,
    OPERATOR_ROLE,
    PartState,
)
from ledger.protocol.eventjson import ArgsCodec
from ledger.protocol.events import DecodedEvent, EventDecoder
from ledger.protocol.hashchain import (
    CHAINED_EVENTS,
    VOUCHER_EVENTS,
    ZERO_HEAD,
    HashChain,
    HeadMismatch,
    event_head,
    part_id_of,
)

__all__ = [
    "LOAN_EVENTS",
    "document_arguments",
    "PARTICIPANT_EVENTS",
    "ROLE_NAMES",
    "Projector",
    "chunks",
]

LOAN_EVENTS = frozenset(CHAINED_EVENTS | {"TrailAttested"})
PARTICIPANT_EVENTS = frozenset(
    {"OrganizationRegistered", "AccountAdded", "AccountRemoved", "RoleGranted", "RoleRevoked"}
)
ROLE_NAMES = {
    DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE",
    OPERATOR_ROLE: "OPERATOR_ROLE",
    LENDER_ROLE: "LENDER_ROLE",
    ENTERPRISE_ROLE: "ENTERPRISE_ROLE",
    AUDITOR_ROLE: "AUDITOR_ROLE",
}

_LOAN_MUTABLE = (
    "disbursed",
    "repaid",
    "status",
    "risk_class",
    "maturity",
    "terms_hash",
    "closing_reason_hash",
    "head",
    "event_count",
    "updated_block",
)
_LOT_MUTABLE = ("remaining", "confirmation", "confirmation_hash", "confirmation_block")
_VOUCHER_MUTABLE = ("settled", "head", "event_count", "updated_block")
_PART_MUTABLE = (
    "holder",
    "remaining",
    "state",
    "bank_org",
    "discount_rate_bps",
    "settled_amount",
    "settled_block",
    "updated_block",
)
_LINE_MUTABLE = (
    "bank_org",
    "line_limit",
    "outstanding",
    "expiry",
    "terms_hash",
    "block_number",
    "log_index",
    "transaction_hash",
    "updated_block",
)
_DOCUMENT_REF_COLUMNS = ("digest_key", "digest", "loan_id", "block_number", "log_index", "event", "argument")
_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def document_arguments(decoder: EventDecoder) -> dict[str, tuple[str, ...]]:
    """Event name -> its arguments that carry an off-chain document's hash: by the ABI's convention, the
    bytes32 arguments named `...Hash` (evidenceHash, reasonHash, reportHash, termsHash, profileHash)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, spec in decoder.by_name.items():
        fields = tuple(n for n, abi_type, _ in spec.inputs if abi_type == "bytes32" and n.endswith("Hash"))
        if fields:
            out[name] = fields
    return out


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Projector:
    """Applies ledger events to the projection tables inside the caller's transaction."""

    def __init__(
        self, hash_chain: HashChain, decoder: EventDecoder, voucher_chain: HashChain | None = None
    ) -> None:
        self.hash_chain = hash_chain
        self.voucher_chain = voucher_chain
        self.codec = ArgsCodec(decoder)
        self.documents = document_arguments(decoder)

    def apply(
        self,
        conn: sa.Connection,
        events: Sequence[DecodedEvent],
        checked_after: Sequence[str | None] | None = None,
        *,
        journal: range | None = None,
    ) -> None:
        """Apply `events` (in chain order, all newer than what the projections hold). `checked_after[i]`,
        if given and not None, is the previous head event i's head was already checked against (by
        `ledger.mirror.decoding.RangeDecoder`); the hash chain is recomputed here for every other event.
        `journal`: the blocks whose changes `undo` must be able to reverse (their images are kept)."""
        if journal is not None and len(journal):
            insert_rows(
                conn,
                _table("undo_images"),
                [{"block_number": b, "table_name": "", "row_key": {}, "image": None} for b in journal],
            )
        if not events:
            return
        batch = _Batch(conn, self.hash_chain, self.documents, journal, self.voucher_chain)
        batch.load(events)
        afters = checked_after if checked_after is not None else [None] * len(events)
        for event, after in zip(events, afters, strict=True):
            batch.apply(event, after)
        batch.write()

    def undo(self, conn: sa.Connection, number: int, top: int, loan_ids: Iterable[str]) -> bool:
        """Reverse what the events of blocks `number`+1 .. `top` did to the projections (`loan_ids`: the
        loans they touched), from the images kept for those blocks. False, with nothing changed, when the
        images do not reach back to block `number`+1: then only `rebuild` can undo."""
        images = _table("undo_images")
        orphaned = images.c.block_number > number
        marked = conn.execute(
            sa.select(sa.func.count(sa.distinct(images.c.block_number))).where(
                orphaned, images.c.block_number <= top, images.c.table_name == ""
            )
        ).scalar_one()
        if marked != top - number:
            return False
        # Newest first, so the image of each row from the lowest orphaned block is put back last and stands.
        for row in conn.execute(
            sa.select(images.c.table_name, images.c.row_key, images.c.image)
            .where(orphaned, images.c.table_name != "")
            .order_by(images.c.block_number.desc(), images.c.id.desc())
        ):
            table = _table(row.table_name)
            conn.execute(sa.delete(table).where(*(table.c[k] == v for k, v in row.row_key.items())))
            if row.image is not None:
                conn.execute(sa.insert(table).values(**row.image))
        for name in VOUCHER_TABLES:  # the voucher rows the orphaned blocks appended (each carries its block)
            table = _table(name)
            conn.execute(sa.delete(table).where(table.c.block_number > number))
        ids = sorted(set(loan_ids))
        for name in LOAN_RECORD_TABLES:  # the rows the orphaned blocks appended
            table = _table(name)
            if name == "document_refs":  # also the participant events' (no loan); indexed by block
                conn.execute(sa.delete(table).where(table.c.block_number > number))
                continue
            for part in chunks(ids, _IN_CHUNK):
                conn.execute(sa.delete(table).where(table.c.loan_id.in_(part), table.c.block_number > number))
        conn.execute(sa.delete(images).where(orphaned))
        return True

    def rebuild(
        self,
        conn: sa.Connection,
        loan_ids: Iterable[str],
        *,
        participants: bool,
        vouchers: bool = False,
        chunk: int = 20_000,
    ) -> None:
        """Recompute the projections of `loan_ids` (and of participants, and of every voucher and credit
        line) from the raw events table."""
        ids = sorted(set(loan_ids))
        for name in LOAN_RECORD_TABLES:
            table = _table(name)
            for part in chunks(ids, _IN_CHUNK):
                conn.execute(sa.delete(table).where(table.c.loan_id.in_(part)))
        refs = _table("document_refs")
        if participants:
            for name in PARTICIPANT_TABLES:
                conn.execute(sa.delete(_table(name)))
            conn.execute(sa.delete(refs).where(refs.c.event.in_(sorted(PARTICIPANT_EVENTS))))
        if vouchers:
            for name in VOUCHER_TABLES:
                conn.execute(sa.delete(_table(name)))
            conn.execute(sa.delete(refs).where(refs.c.event.in_(sorted(VOUCHER_EVENTS))))
        events = _table("events")
        queries = []
        for part in chunks(ids, _IN_CHUNK):
            queries.append(events.c.loan_id.in_(part))
        if participants:
            queries.append(events.c.name.in_(sorted(PARTICIPANT_EVENTS)))
        if vouchers:
            queries.append(events.c.name.in_(sorted(VOUCHER_EVENTS)))
        if not queries:
            return
        select = (
            sa.select(
                events.c.name,
                events.c.args,
                events.c.address,
                events.c.block_number,
                events.c.block_hash,
                events.c.transaction_hash,
                events.c.log_index,
                events.c.transaction_index,
            )
            .where(sa.or_(*queries))
            .order_by(events.c.block_number, events.c.log_index)
        )
        pending: list[DecodedEvent] = []
        for row in conn.execute(select).all():
            pending.append(event_from_row(row, self.codec))
            if len(pending) >= chunk:
                self.apply(conn, pending)
                pending = []
        self.apply(conn, pending)


def _check_outstanding(event: DecodedEvent, loan: dict[str, Any], stated: int) -> None:
    """The principal an event states outstanding must be what the mirror's loan row leaves outstanding."""
    if loan["disbursed"] - loan["repaid"] != stated:
        raise _integrity(
            event, f"states {stated} outstanding, the mirror has {loan['disbursed'] - loan['repaid']}"
        )


def _integrity(event: DecodedEvent, problem: str) -> MirrorIntegrityError:
    return MirrorIntegrityError(
        f"{event.name} in block {event.block_number} (tx {event.transaction_hash}, log {event.log_index}): "
        f"{problem}"
    )


class _Batch:
    """The state one `apply` call touches, loaded once, changed in memory, written once."""

    def __init__(
        self,
        conn: sa.Connection,
        hash_chain: HashChain,
        documents: dict[str, tuple[str, ...]],
        journal: range | None = None,
        voucher_chain: HashChain | None = None,
    ) -> None:
        self.conn = conn
        self.voucher_chain = voucher_chain
        self.vouchers: dict[str, dict[str, Any]] = {}
        self.new_vouchers: dict[str, dict[str, Any]] = {}
        self.dirty_vouchers: set[str] = set()
        self.parts: dict[tuple[str, int], dict[str, Any]] = {}
        self.new_parts: list[dict[str, Any]] = []
        self.dirty_parts: set[tuple[str, int]] = set()
        self.lines: dict[str, dict[str, Any]] = {}
        self.new_lines: dict[str, dict[str, Any]] = {}
        self.dirty_lines: set[str] = set()
        self.journal = journal if journal is not None and len(journal) else None
        self.images: list[dict[str, Any]] = []
        self._imaged: set[tuple[str, tuple[Any, ...], int]] = set()
        self.participant_rows: dict[tuple[str, tuple[Any, ...]], dict[str, Any] | None] = {}
        self.hash_chain = hash_chain
        self.documents = documents
        self.document_refs: list[tuple[Any, ...]] = []  # rows of _DOCUMENT_REF_COLUMNS, driver-ready
        self.loans: dict[str, dict[str, Any]] = {}
        self.new_loans: dict[str, dict[str, Any]] = {}
        self.dirty_loans: set[str] = set()
        self.lots: dict[tuple[str, str], dict[str, Any]] = {}
        self.new_lots: list[dict[str, Any]] = []
        self.dirty_lots: set[tuple[str, str]] = set()
        self.records: dict[str, list[dict[str, Any]]] = {}
        self.participants: list[tuple[str, dict[str, Any], tuple[str, ...]]] = []

    # ------------------------------------------------------------------ load

    def load(self, events: Sequence[DecodedEvent]) -> None:
        loan_ids: set[str] = set()
        created: set[str] = set()
        wanted: set[str] = set()
        for event in events:
            if event.name not in LOAN_EVENTS:
                continue
            args = event.args
            loan_ids.add(args["loanId"])
            if event.name == "Disbursed":
                created.add(args["lotId"])
            elif event.name == "Paid":
                created.add(args["lotId"])
                wanted.add(args["parentLotId"])
            elif event.name in ("LotConfirmed", "LotDisputed"):
                wanted.add(args["lotId"])
        self._load_vouchers(events)
        loans = _table("loans")
        for part in chunks(sorted(loan_ids), _IN_CHUNK):
            for row in self.conn.execute(sa.select(loans).where(loans.c.loan_id.in_(part))):
                self.loans[row.loan_id] = dict(row._mapping)
        lots = _table("lots")
        for part in chunks(sorted(wanted - created), _IN_CHUNK):
            for row in self.conn.execute(sa.select(lots).where(lots_by_id(lots, part))):
                if row.loan_id in loan_ids:
                    self.lots[(row.loan_id, row.lot_id)] = dict(row._mapping)

    def _load_vouchers(self, events: Sequence[DecodedEvent]) -> None:
        """The vouchers, parts and credit lines the batch's voucher events touch."""
        voucher_ids: set[str] = set()
        cores: set[str] = set()
        wanted: dict[str, set[int]] = {}
        for event in events:
            if event.name not in VOUCHER_EVENTS:
                continue
            args = event.args
            if event.name == "CreditLineSet":
                cores.add(args["coreOrg"])
                continue
            voucher_ids.add(args["voucherId"])
            if event.name == "VoucherIssued":
                cores.add(args["coreOrg"])
            elif event.name == "PartTransferred":
                wanted.setdefault(args["voucherId"], set()).add(args["parentPartId"])
            else:
                wanted.setdefault(args["voucherId"], set()).add(args["partId"])
        if not voucher_ids and not cores:
            return
        vouchers = _table("vouchers")
        for part in chunks(sorted(voucher_ids), _IN_CHUNK):
            for row in self.conn.execute(sa.select(vouchers).where(vouchers.c.voucher_id.in_(part))):
                self.vouchers[row.voucher_id] = dict(row._mapping)
                cores.add(row.core_org)  # a settlement frees its core enterprise's line
        parts = _table("voucher_parts")
        for voucher_id, part_ids in wanted.items():
            for chunk in chunks(sorted(part_ids), _IN_CHUNK):
                query = sa.select(parts).where(parts.c.voucher_id == voucher_id, parts.c.part_id.in_(chunk))
                for row in self.conn.execute(query):
                    self.parts[(row.voucher_id, row.part_id)] = dict(row._mapping)
        lines = _table("credit_lines")
        for part in chunks(sorted(cores), _IN_CHUNK):
            for row in self.conn.execute(sa.select(lines).where(lines.c.core_org.in_(part))):
                self.lines[row.core_org] = dict(row._mapping)

    # ------------------------------------------------------------------ apply

    def apply(self, event: DecodedEvent, checked_after: str | None) -> None:
        name = event.name
        arguments = self.documents.get(name)
        if arguments is not None:
            self._document_refs(event, arguments)
        if name in LOAN_EVENTS:
            self._loan_event(event, checked_after)
        elif name in VOUCHER_EVENTS:
            self._voucher_event(event, checked_after)
        elif name in PARTICIPANT_EVENTS:
            self._participant_event(event)
        # Paused/Unpaused/RoleAdminChanged and unknown logs live in the raw events table only.

    def _document_refs(self, event: DecodedEvent, arguments: tuple[str, ...]) -> None:
        args = event.args
        loan_id = args.get("loanId")
        for argument in arguments:
            digest = args[argument]  # 0x-prefixed lower-case hex, as the decoder writes every bytes32
            if digest == ZERO_HEAD:
                continue  # the zero hash names no document (a payment without evidence)
            self.document_refs.append(
                (hash_key(digest), digest, loan_id, event.block_number, event.log_index, event.name, argument)
            )

    def _record(self, table: str, event: DecodedEvent, **fields: Any) -> None:
        self.records.setdefault(table, []).append(
            {
                "loan_id": event.args["loanId"],
                "block_number": event.block_number,
                "log_index": event.log_index,
                "transaction_hash": event.transaction_hash,
                **fields,
            }
        )

    def image(self, table: str, key: dict[str, Any], row: dict[str, Any] | None, block: int) -> None:
        """Call before an event of `block` changes `row` of `table` in place (`row` None: before it creates
        a row that an upsert may also change, e.g. a participant's). The first call per row and block keeps
        the row as it is, for `Projector.undo`; outside the journaled blocks it does nothing."""
        if self.journal is None or block not in self.journal:
            return
        mark = (table, tuple(key.values()), block)
        if mark in self._imaged:
            return
        self._imaged.add(mark)
        image = None if row is None else {k: v for k, v in row.items() if not k.startswith("_")}
        self.images.append({"block_number": block, "table_name": table, "row_key": key, "image": image})

    def _lot_image(self, lot: dict[str, Any], block: int) -> None:
        key = {"loan_id": lot["loan_id"], "block_number": lot["block_number"], "log_index": lot["log_index"]}
        self.image("lots", key, lot, block)

    def _loan_event(self, event: DecodedEvent, checked_after: str | None) -> None:
        name, args = event.name, event.args
        loan_id = args["loanId"]
        if name == "LoanOpened":
            if loan_id in self.loans:
                raise _integrity(event, f"loan {loan_id} is opened a second time")
            head = self._verify(event, ZERO_HEAD, checked_after)
            opened: dict[str, Any] = {
                "loan_id": loan_id,
                "lender_org": args["lenderOrg"],
                "borrower": args["borrower"],
                "borrower_ref": args["borrowerRef"],
                "principal": args["principal"],
                "currency": bytes.fromhex(args["currency"][2:]).decode("ascii", "replace"),
                "allowed_purposes": args["allowedPurposes"],
                "maturity": args["maturity"],
                "terms_hash": args["termsHash"],
                "disbursed": 0,
                "repaid": 0,
                "status": 1,
                "risk_class": 0,
                "closing_reason_hash": None,
                "head": head,
                "event_count": 1,
                "block_number": event.block_number,
                "log_index": event.log_index,
                "transaction_hash": event.transaction_hash,
                "updated_block": event.block_number,
            }
            self.loans[loan_id] = opened
            self.new_loans[loan_id] = opened
            return
        loan = self.loans.get(loan_id)
        if loan is None:
            raise _integrity(event, f"loan {loan_id} was never opened in the mirror")
        # Every event of a loan after its opening may change the loan's row (totals, head, counts): imaged.
        self.image("loans", {"loan_id": loan_id}, loan, event.block_number)
        if name == "TrailAttested":
            if args["head"] != loan["head"]:
                raise _integrity(event, f"attests head {args['head']} but the loan's head is {loan['head']}")
            self._record(
                "attestations",
                event,
                auditor_org=args["auditorOrg"],
                head=args["head"],
                report_hash=args["reportHash"],
            )
            # event_count counts every event of the loan, attestations included (what verification lists);
            # an attestation changes nothing else, so updated_block stays the last change's block.
            loan["event_count"] += 1
            if loan_id not in self.new_loans:
                self.dirty_loans.add(loan_id)
            return
        loan["head"] = self._verify(event, loan["head"], checked_after)
        loan["event_count"] += 1
        loan["updated_block"] = event.block_number
        if loan_id not in self.new_loans:
            self.dirty_loans.add(loan_id)
        if name == "Disbursed":
            loan["disbursed"] += args["amount"]
            if loan["disbursed"] > loan["principal"]:
                raise _integrity(
                    event, f"disbursed {loan['disbursed']} exceeds principal {loan['principal']}"
                )
            self._new_lot(event, parent=None, entrusted=args["entrusted"])
        elif name == "Paid":
            key = (loan_id, args["parentLotId"])
            parent = self.lots.get(key)
            if parent is None:
                raise _integrity(event, f"parent lot {args['parentLotId']} is not in the mirror")
            if parent["remaining"] < args["amount"]:
                raise _integrity(event, f"pays {args['amount']} out of a lot with {parent['remaining']} left")
            self._lot_image(parent, event.block_number)
            parent["remaining"] -= args["amount"]
            if not parent.get("_new"):
                self.dirty_lots.add(key)
            self._new_lot(event, parent=args["parentLotId"], entrusted=None)
        elif name in ("LotConfirmed", "LotDisputed"):
            key = (loan_id, args["lotId"])
            lot = self.lots.get(key)
            if lot is None:
                raise _integrity(event, f"lot {args['lotId']} is not in the mirror")
            self._lot_image(lot, event.block_number)
            state = "confirmed" if name == "LotConfirmed" else "disputed"
            evidence = args["evidenceHash"] if name == "LotConfirmed" else args["reasonHash"]
            lot["confirmation"] = state
            lot["confirmation_hash"] = evidence
            lot["confirmation_block"] = event.block_number
            if not lot.get("_new"):
                self.dirty_lots.add(key)
            self._record("confirmations", event, lot_id=args["lotId"], state=state, evidence_hash=evidence)
        elif name in ("Repaid", "RepaymentApplied"):
            # A principal-only Repaid, or RepaymentApplied with its interest and penalty parts (issue 18).
            principal = args["amount"] if name == "Repaid" else args["principal"]
            loan["repaid"] += principal
            _check_outstanding(event, loan, args["outstanding"])
            self._record(
                "repayments",
                event,
                amount=principal,
                interest=args.get("interest", 0),
                penalty=args.get("penalty", 0),
                outstanding=args["outstanding"],
                evidence_hash=args["evidenceHash"],
            )
        elif name == "TermsChanged":
            _check_outstanding(event, loan, args["outstanding"])
            loan["maturity"] = args["maturity"]
            loan["terms_hash"] = args["termsHash"]
            self._record(
                "restructurings",
                event,
                maturity=args["maturity"],
                terms_hash=args["termsHash"],
                change_kind=args["change"],
                financial_difficulty=args["financialDifficulty"],
                previous_maturity=args["previousMaturity"],
                outstanding=args["outstanding"],
            )
        elif name == "LoanClosed":
            loan["status"] = args["status"]
            loan["closing_reason_hash"] = args["reasonHash"]
        elif name == "RiskClassified":
            loan["risk_class"] = args["riskClass"]
            self._record(
                "classifications", event, risk_class=args["riskClass"], reason_hash=args["reasonHash"]
            )
        elif name == "CollateralValued":
            self._record(
                "collateral_valuations",
                event,
                collateral_id=args["collateralId"],
                value=args["value"],
                evidence_hash=args["evidenceHash"],
            )
        elif name == "InspectionRecorded":
            self._record("inspections", event, kind=args["kind"], report_hash=args["reportHash"])
        elif name == "RecordFiled":
            self._record(
                "file_records",
                event,
                record_kind=args["recordKind"],
                record_id=args["recordId"],
                content_hash=args["contentHash"],
                actor=args["actor"],
            )
        elif name == "LoanRestructured":
            previous = loan["maturity"]
            loan["maturity"] = args["maturity"]
            loan["terms_hash"] = args["termsHash"]
            self._record(
                "restructurings",
                event,
                maturity=args["maturity"],
                terms_hash=args["termsHash"],
                change_kind=None,
                financial_difficulty=None,
                previous_maturity=previous,
                outstanding=loan["disbursed"] - loan["repaid"],
            )

    # ------------------------------------------------------------------ vouchers (issue 22)

    def _where(self, event: DecodedEvent) -> dict[str, Any]:
        return {
            "block_number": event.block_number,
            "log_index": event.log_index,
            "transaction_hash": event.transaction_hash,
        }

    def _line(self, event: DecodedEvent, core: str) -> dict[str, Any]:
        line = self.lines.get(core)
        if line is None:
            raise _integrity(event, f"core enterprise {core} has no credit line in the mirror")
        self.image("credit_lines", {"core_org": core}, line, event.block_number)
        if core not in self.new_lines:
            self.dirty_lines.add(core)
        line["updated_block"] = event.block_number
        return line

    def _part(self, event: DecodedEvent, voucher_id: str, part_id: int) -> dict[str, Any]:
        key = (voucher_id, part_id)
        part = self.parts.get(key)
        if part is None:
            raise _integrity(event, f"part {part_id} of voucher {voucher_id} is not in the mirror")
        self.image("voucher_parts", {"voucher_id": voucher_id, "part_id": part_id}, part, event.block_number)
        if not part.get("_new"):
            self.dirty_parts.add(key)
        part["updated_block"] = event.block_number
        return part

    def _new_part(
        self, event: DecodedEvent, part_id: int, parent: int | None, holder: str, amount: int
    ) -> None:
        voucher_id = event.args["voucherId"]
        if (voucher_id, part_id) in self.parts:
            raise _integrity(event, f"part {part_id} of voucher {voucher_id} is created a second time")
        part = {
            "voucher_id": voucher_id,
            "part_id": part_id,
            "parent_part_id": parent,
            "holder": holder,
            "amount": amount,
            "remaining": amount,
            "state": int(PartState.HELD),
            "bank_org": None,
            "discount_rate_bps": None,
            "settled_amount": None,
            "settled_block": None,
            **self._where(event),
            "updated_block": event.block_number,
            "_new": True,
        }
        self.parts[(voucher_id, part_id)] = part
        self.new_parts.append(part)

    def _voucher_record(self, table: str, event: DecodedEvent, **fields: Any) -> None:
        self.records.setdefault(table, []).append(
            {
                "voucher_id": event.args["voucherId"],
                **self._where(event),
                "part_id": event.args["partId"],
                **fields,
            }
        )

    def _voucher_event(self, event: DecodedEvent, checked_after: str | None) -> None:
        """A voucher contract event: credit lines, vouchers and parts, checked as the contract keeps them
        (face conserved, the line's outstanding as each event states it, the voucher's hash chain)."""
        name, args = event.name, event.args
        if name == "CreditLineSet":
            core = args["coreOrg"]
            line = self.lines.get(core)
            self.image("credit_lines", {"core_org": core}, line, event.block_number)
            held = 0 if line is None else line["outstanding"]
            if held != args["outstanding"]:
                raise _integrity(event, f"states {args['outstanding']} outstanding, the mirror has {held}")
            row = {
                "core_org": core,
                "bank_org": args["bankOrg"],
                "line_limit": args["limit"],
                "outstanding": held,
                "expiry": args["expiry"],
                "terms_hash": args["termsHash"],
                **self._where(event),
                "updated_block": event.block_number,
            }
            if line is None:
                self.lines[core] = row
                self.new_lines[core] = row
            else:
                line.update(row)
                if core not in self.new_lines:
                    self.dirty_lines.add(core)
            return
        voucher_id = args["voucherId"]
        if name == "VoucherIssued":
            if voucher_id in self.vouchers:
                raise _integrity(event, f"voucher {voucher_id} is issued a second time")
            head = self._verify_voucher(event, ZERO_HEAD, checked_after)
            line = self._line(event, args["coreOrg"])
            line["outstanding"] += args["faceValue"]
            if line["outstanding"] != args["lineOutstanding"]:
                raise _integrity(
                    event,
                    f"states {args['lineOutstanding']} outstanding, the mirror has {line['outstanding']}",
                )
            issued: dict[str, Any] = {
                "voucher_id": voucher_id,
                "core_org": args["coreOrg"],
                "bank_org": line["bank_org"],
                "holder": args["holder"],
                "face_value": args["faceValue"],
                "settled": 0,
                "maturity": args["maturity"],
                "currency": bytes.fromhex(args["currency"][2:]).decode("ascii", "replace"),
                "invoice_hash": args["invoiceHash"],
                "head": head,
                "event_count": 1,
                **self._where(event),
                "updated_block": event.block_number,
            }
            self.vouchers[voucher_id] = issued
            self.new_vouchers[voucher_id] = issued
            self._new_part(event, 1, None, args["holder"], args["faceValue"])
            return
        voucher = self.vouchers.get(voucher_id)
        if voucher is None:
            raise _integrity(event, f"voucher {voucher_id} was never issued in the mirror")
        self.image("vouchers", {"voucher_id": voucher_id}, voucher, event.block_number)
        voucher["head"] = self._verify_voucher(event, voucher["head"], checked_after)
        voucher["event_count"] += 1
        voucher["updated_block"] = event.block_number
        if voucher_id not in self.new_vouchers:
            self.dirty_vouchers.add(voucher_id)
        if name == "PartTransferred":
            parent = self._part(event, voucher_id, args["parentPartId"])
            if parent["remaining"] < args["amount"]:
                raise _integrity(event, f"splits {args['amount']} off a part with {parent['remaining']} left")
            parent["remaining"] -= args["amount"]
            self._new_part(event, part_id_of(args["head"]), args["parentPartId"], args["to"], args["amount"])
        elif name == "FinancingRequested":
            part = self._part(event, voucher_id, args["partId"])
            part["state"] = int(PartState.FINANCING_REQUESTED)
            part["bank_org"] = args["bankOrg"]
            part["discount_rate_bps"] = args["discountRateBps"]
        elif name == "PartFinanced":
            part = self._part(event, voucher_id, args["partId"])
            if part["remaining"] != args["face"] or part["state"] != PartState.FINANCING_REQUESTED:
                raise _integrity(event, f"finances {args['face']} of a part the mirror has {part}")
            part["holder"] = args["bank"]
            part["state"] = int(PartState.FINANCED)
            self._voucher_record(
                "voucher_financings",
                event,
                bank=args["bank"],
                bank_org=part["bank_org"],
                seller=args["seller"],
                face=args["face"],
                discount_rate_bps=args["discountRateBps"],
                discount_days=args["discountDays"],
                interest=args["interest"],
                paid=args["paid"],
                payment_ref=args["paymentRef"],
            )
        elif name == "PartSettled":
            part = self._part(event, voucher_id, args["partId"])
            if part["remaining"] != args["amount"]:
                raise _integrity(event, f"settles {args['amount']} of a part with {part['remaining']} left")
            part["remaining"] = 0
            part["state"] = int(PartState.SETTLED)
            part["settled_amount"] = args["amount"]
            part["settled_block"] = event.block_number
            voucher["settled"] += args["amount"]
            line = self._line(event, voucher["core_org"])
            line["outstanding"] -= args["amount"]
            self._voucher_record(
                "voucher_settlements",
                event,
                holder=args["holder"],
                amount=args["amount"],
                payment_ref=args["paymentRef"],
            )

    def _verify_voucher(self, event: DecodedEvent, previous: str, checked_after: str | None) -> str:
        if self.voucher_chain is None:
            raise _integrity(
                event, "a voucher event, but the indexer was not given the voucher contract's ABI"
            )
        if checked_after is not None and checked_after == previous:
            return str(event.args["head"]).lower()  # checked while decoding
        try:
            log = (event.raw_topics, event.raw_data) if event.raw_topics else None
            return self.voucher_chain.verify(previous, event.name, event.args, log)
        except HeadMismatch as exc:
            raise MirrorIntegrityError(
                f"hash chain of voucher {event.args['voucherId']} breaks at {event.name} "
                f"in block {event.block_number} "
                f"(tx {event.transaction_hash}, log {event.log_index}): {exc.message}",
            ) from exc

    def _verify(self, event: DecodedEvent, previous: str, checked_after: str | None) -> str:
        if checked_after is not None and checked_after == previous:
            return str(event_head(event.name, event.args)).lower()  # checked while decoding
        try:
            log = (event.raw_topics, event.raw_data) if event.raw_topics else None
            return self.hash_chain.verify(previous, event.name, event.args, log)
        except HeadMismatch as exc:
            raise MirrorIntegrityError(
                f"hash chain of loan {event.args['loanId']} breaks at {event.name} "
                f"in block {event.block_number} "
                f"(tx {event.transaction_hash}, log {event.log_index}): {exc.message}",
            ) from exc

    def _new_lot(self, event: DecodedEvent, *, parent: str | None, entrusted: bool | None) -> None:
        args = event.args
        lot = {
            "loan_id": args["loanId"],
            "lot_id": args["lotId"],
            "lot_key": lot_key(args["lotId"]),
            "parent_lot_id": parent,
            "holder": args["payee"],
            "amount": args["amount"],
            "remaining": args["amount"],
            "purpose": args["purpose"],
            "declared_use": args["declaredUse"],
            "entrusted": entrusted,
            "evidence_hash": args["evidenceHash"],
            "confirmation": "unconfirmed",
            "confirmation_hash": None,
            "confirmation_block": None,
            "block_number": event.block_number,
            "log_index": event.log_index,
            "transaction_hash": event.transaction_hash,
            "_new": True,
        }
        self.lots[(lot["loan_id"], lot["lot_id"])] = lot
        self.new_lots.append(lot)

    def _participant_event(self, event: DecodedEvent) -> None:
        args = event.args
        where = {
            "block_number": event.block_number,
            "log_index": event.log_index,
            "transaction_hash": event.transaction_hash,
        }
        if event.name == "OrganizationRegistered":
            row = {"org_id": args["orgId"], "profile_hash": args["profileHash"], **where}
            self.participants.append(("organizations", row, ("org_id",)))
        elif event.name in ("AccountAdded", "AccountRemoved"):
            row = {
                "address": args["account"],
                "org_id": args["orgId"],
                "active": event.name == "AccountAdded",
                **where,
            }
            self.participants.append(("accounts", row, ("address",)))
        else:  # RoleGranted / RoleRevoked
            row = {
                "role": args["role"],
                "account": args["account"],
                "role_name": ROLE_NAMES.get(args["role"], "UNKNOWN_ROLE"),
                "active": event.name == "RoleGranted",
                "sender": args["sender"],
                **where,
            }
            self.participants.append(("role_grants", row, ("role", "account")))
        # Upserts: the row as this batch left it so far, else as the database holds it, is the image.
        name, row, keys = self.participants[-1]
        key = {k: row[k] for k in keys}
        marker = (name, tuple(key.values()))
        if self.journal is not None and event.block_number in self.journal:
            if marker not in self.participant_rows:
                table = _table(name)
                found = self.conn.execute(sa.select(table).where(*(table.c[k] == v for k, v in key.items())))
                current = found.first()
                self.participant_rows[marker] = None if current is None else dict(current._mapping)
            self.image(name, key, self.participant_rows[marker], event.block_number)
        self.participant_rows[marker] = row

    # ------------------------------------------------------------------ write

    def write(self) -> None:
        conn = self.conn
        insert_rows(conn, _table("loans"), list(self.new_loans.values()))
        update_rows(
            conn,
            _table("loans"),
            ("loan_id",),
            _LOAN_MUTABLE,
            [self.loans[i] for i in sorted(self.dirty_loans)],
        )
        lots = _table("lots")
        insert_rows(conn, lots, self.new_lots, lots.columns.keys())  # every column; not the "_new" mark
        update_rows(
            conn,
            lots,
            ("loan_id", "block_number", "log_index"),  # the key
            _LOT_MUTABLE,
            [self.lots[k] for k in sorted(self.dirty_lots)],
        )
        for name, rows in self.records.items():
            insert_rows(conn, _table(name), rows)
        self._write_vouchers()
        insert_values(conn, _table("document_refs"), _DOCUMENT_REF_COLUMNS, self.document_refs)
        insert_rows(conn, _table("undo_images"), self.images)
        for name, row, keys in self.participants:
            self._upsert(name, row, keys)

    def _write_vouchers(self) -> None:
        conn = self.conn
        lines = _table("credit_lines")
        insert_rows(conn, lines, list(self.new_lines.values()))
        update_rows(
            conn, lines, ("core_org",), _LINE_MUTABLE, [self.lines[k] for k in sorted(self.dirty_lines)]
        )
        vouchers = _table("vouchers")
        insert_rows(conn, vouchers, list(self.new_vouchers.values()))
        update_rows(
            conn,
            vouchers,
            ("voucher_id",),
            _VOUCHER_MUTABLE,
            [self.vouchers[k] for k in sorted(self.dirty_vouchers)],
        )
        parts = _table("voucher_parts")
        insert_rows(conn, parts, self.new_parts, parts.columns.keys())  # every column; not the "_new" mark
        update_rows(
            conn,
            parts,
            ("voucher_id", "part_id"),
            _PART_MUTABLE,
            [self.parts[k] for k in sorted(self.dirty_parts)],
        )

    def _upsert(self, name: str, row: dict[str, Any], keys: tuple[str, ...]) -> None:
        table = _table(name)
        dialect = postgresql if self.conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(table).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=list(keys), set_={k: v for k, v in row.items() if k not in keys}
        )
        self.conn.execute(statement)
