"""Online verification: prove a loan's mirrored trail against the chain, pinned at one block.

The mirror is not trusted. At block N (the mirror's checkpoint unless told otherwise) this module

1. recomputes the loan's hash chain from the mirrored event rows and compares the result with `headOf(loan)`
   read at block N (one `eth_call`): a single changed, missing or added chained event breaks it;
2. fetches the loan's logs from the node (`eth_getLogs` on the loan's topic up to N) and compares each with
   its mirrored row: block hash, block number, transaction hash, log index and every decoded field, so the
   row that differs is named; a `TrailAttested` must attest the trail's head at its point;
3. compares **every column** of the loan's row, of each lot's row and of each of the loan's records
   (repayments, classifications, ...) with its chain source at block N, as `ledger.audit.facts` declares it
   (`getLoan`, `getLot`, the events): nothing the API serves about a loan or a lot goes unchecked;
4. re-hashes every off-chain document the loan's events reference (evidence, reasons, reports, terms) that
   the document store holds;
5. re-hashes every terms version kept for the loan (`terms_versions`) against the `LoanOpened` /
   `TermsChanged` event that named its hash; a kept version whose hash no event names is reported.

The chain reads of one verification go in two JSON-RPC batches (the header, heads and logs; then `getLoan`
and `getLot` of what the logs show exists, since both revert for what does not). The result says per event,
per lot and per document whether it was verified and why not; `Verification.to_dict()` is its JSON form
(snake_case, like every API answer).

Counts: `events` lists every event of the loan up to N, attestations included (each with its head: the
head it produced, or for `TrailAttested` the head it attests); the loan row's `event_count` counts the same
thing, and verification checks that it does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from eth_utils import keccak, to_checksum_address
from sqlalchemy.engine import Engine

from ledger.audit.facts import (
    LOAN_FACTS,
    LOAN_VIEW_FIELDS,
    LOT_FACTS,
    RECORD_FACTS,
    LoanTruth,
    LotTruth,
    replay_before,
)
from ledger.chain.contract import LedgerContract, as_bytes32
from ledger.errors import NotFoundError, VerificationError
from ledger.mirror.models import LoanPublic, LotPublic
from ledger.mirror.projections import document_arguments
from ledger.mirror.read import LoanRecords, Mirror
from ledger.protocol.events import DecodedEvent, EventDecoder
from ledger.protocol.hashchain import CHAINED_EVENTS, LOT_CREATING_EVENTS, ZERO_HEAD, event_head
from ledger.store.offchain import TermsVersion, terms_hash

__all__ = [
    "DOCUMENT_FIELDS",
    "DocumentCheck",
    "DocumentSource",
    "EventCheck",
    "LotCheck",
    "Verification",
    "directory_documents",
    "verify_loan",
]

# Event fields that carry the hash of an off-chain document (the verification itself reads them from the ABI,
# `ledger.mirror.projections.document_arguments`; this list names them for readers of a `Verification`).
DOCUMENT_FIELDS = ("evidenceHash", "reasonHash", "reportHash", "termsHash", "contentHash")
ZERO = ZERO_HEAD

DocumentLike = bytes | Path | Callable[[], bytes]
DocumentSource = Mapping[str, DocumentLike]
"""Document hash (0x-hex keccak256 of the bytes) -> the stored bytes, a path to them, or a loader."""


def directory_documents(directory: Path) -> dict[str, Path]:
    """The document store of the API: one file per document, named by its keccak256 (with or without 0x)."""
    out: dict[str, Path] = {}
    if not directory.is_dir():
        return out
    for path in directory.iterdir():
        name = path.name.lower()
        key = name if name.startswith("0x") else "0x" + name
        if path.is_file() and len(key) == 66:
            out[key] = path
    return out


@dataclass
class EventCheck:
    """One event of the trail: a chain log, its mirrored row, or both."""

    name: str
    block_number: int
    log_index: int
    transaction_hash: str
    block_hash: str
    head: str | None
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name} at block {self.block_number} log {self.log_index}"

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


@dataclass
class LotCheck:
    lot_id: str
    parent_lot_id: str | None
    holder: str | None
    amount: int | None
    remaining: int | None
    ok: bool = True
    problems: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


@dataclass
class DocumentCheck:
    hash: str
    referenced_by: list[str]
    present: bool
    ok: bool
    problem: str | None = None
    kind: str = "document"
    """"document" (the document store) or "terms version" (`terms_versions`)."""


@dataclass
class Verification:
    """The outcome of `verify_loan`. `ok` is True only if every check passed."""

    loan_id: str
    chain_id: int
    contract: str
    block_number: int
    block_hash: str
    head_on_chain: str
    head_recomputed: str
    head_now: str | None
    events: list[EventCheck]
    lots: list[LotCheck]
    documents: list[DocumentCheck]
    loan_problems: list[str]
    chain_problems: list[str]
    record_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.head_on_chain == self.head_recomputed
            and not self.loan_problems
            and not self.chain_problems
            and not self.record_problems
            and all(e.ok for e in self.events)
            and all(lot.ok for lot in self.lots)
            and all(d.ok for d in self.documents)
        )

    @property
    def trail_grew_since(self) -> bool:
        """The loan changed on chain after the block verified at (the mirror has catching up to do)."""
        return self.head_now is not None and self.head_now != self.head_on_chain

    def problems(self) -> list[str]:
        """Every failure, one line each, naming the row, lot or document."""
        out = list(self.chain_problems) + list(self.loan_problems) + list(self.record_problems)
        if self.head_on_chain != self.head_recomputed:
            out.append(
                f"head recomputed from the mirror {self.head_recomputed} differs from headOf at block "
                f"{self.block_number}: {self.head_on_chain}"
            )
        out += [f"event {e.ref}: {p}" for e in self.events for p in e.problems]
        out += [f"lot {lot.lot_id}: {p}" for lot in self.lots for p in lot.problems]
        out += [f"{d.kind} {d.hash}: {d.problem}" for d in self.documents if not d.ok]
        return out

    @property
    def attestation_count(self) -> int:
        return sum(1 for e in self.events if e.name == "TrailAttested")

    @property
    def summary(self) -> str:
        verdict = "VERIFIED" if self.ok else "FAILED"
        bad_events = sum(1 for e in self.events if not e.ok)
        bad_lots = sum(1 for lot in self.lots if not lot.ok)
        docs = [d for d in self.documents if d.present]
        bad_docs = sum(1 for d in docs if not d.ok)
        attested = self.attestation_count
        noun = "attestation" if attested == 1 else "attestations"
        kinds = f" ({len(self.events) - attested} chained, {attested} {noun})" if attested else ""
        return (
            f"{verdict} at block {self.block_number}: {len(self.events) - bad_events}/{len(self.events)} "
            f"events{kinds}, {len(self.lots) - bad_lots}/{len(self.lots)} lots, {len(docs) - bad_docs}/"
            f"{len(docs)} stored documents verified; head {self.head_on_chain}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer (API, `fundflow verify --json`, the JSON export): snake_case members."""
        return {
            "loan_id": self.loan_id,
            "ok": self.ok,
            "summary": self.summary,
            "chain_id": self.chain_id,
            "contract": self.contract,
            "block": {"number": self.block_number, "hash": self.block_hash},
            "head_on_chain": self.head_on_chain,
            "head_recomputed": self.head_recomputed,
            "head_now": self.head_now,
            "trail_grew_since": self.trail_grew_since,
            "event_count": len(self.events),
            "attestation_count": self.attestation_count,
            "problems": self.problems(),
            "loan_problems": list(self.loan_problems),
            "record_problems": list(self.record_problems),
            "events": [
                {
                    "name": e.name,
                    "block_number": e.block_number,
                    "block_hash": e.block_hash,
                    "log_index": e.log_index,
                    "transaction_hash": e.transaction_hash,
                    "head": e.head,
                    "ok": e.ok,
                    "problems": e.problems,
                }
                for e in self.events
            ],
            "lots": [
                {
                    "lot_id": lot.lot_id,
                    "parent_lot_id": lot.parent_lot_id,
                    "holder": lot.holder,
                    "amount": None if lot.amount is None else str(lot.amount),
                    "remaining": None if lot.remaining is None else str(lot.remaining),
                    "ok": lot.ok,
                    "problems": lot.problems,
                }
                for lot in self.lots
            ],
            "documents": [
                {
                    "hash": d.hash,
                    "kind": d.kind,
                    "referenced_by": d.referenced_by,
                    "present": d.present,
                    "ok": d.ok,
                    "problem": d.problem,
                }
                for d in self.documents
            ],
        }


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class _Mirror:
    chain_id: int
    contract: str
    checkpoint_block: int
    checkpoint_hash: str
    start_block: int
    events: list[DecodedEvent]
    lots: dict[str, LotPublic]
    loan: LoanPublic | None
    records: LoanRecords
    terms: dict[str, Any]


def _read_mirror(engine: Engine, loan_id: str, decoder: EventDecoder) -> _Mirror:
    with engine.connect() as conn:
        mirror = Mirror(conn, decoder=decoder)
        cp = mirror.checkpoint()
        if cp is None:
            raise VerificationError(
                "the mirror is empty: nothing to verify", hint="run `fundflow index` first"
            )
        events = mirror.events(loan_id, chain_id=cp.chain_id)
        lots = {lot.lot_id: lot for lot in mirror.lots(loan_id)}
        loan = mirror.loan(loan_id)
        records = mirror.records(loan_id, list(RECORD_FACTS))
        terms = _terms_versions(conn, loan_id)
    return _Mirror(
        chain_id=cp.chain_id,
        contract=cp.contract_address,
        checkpoint_block=cp.block_number,
        checkpoint_hash=cp.block_hash,
        start_block=cp.start_block,
        events=events,
        lots=lots,
        loan=loan,
        records=records,
        terms=terms,
    )


def _terms_versions(conn: Any, loan_id: str) -> dict[str, Any]:
    """The terms versions kept for the loan: hash -> document (none before migration 0017)."""
    if not sa.inspect(conn).has_table("terms_versions"):
        return {}
    table: sa.Table = TermsVersion.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(table.c.terms_hash, table.c.terms).where(table.c.loan_id == loan_id))
    return {str(h).lower(): doc for h, doc in rows}


def _norm(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return value


def _check_document(data: DocumentLike) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, Path):
        return data.read_bytes()
    return data()


# ---------------------------------------------------------------------------------------------- verify


def verify_loan(
    engine: Engine,
    ledger: LedgerContract,
    loan_id: str,
    *,
    block: int | None = None,
    documents: DocumentSource | None = None,
) -> Verification:
    """Verify the mirrored trail of `loan_id` against the chain at `block` (default: the mirror's
    checkpoint, the block up to which the mirror claims to be complete)."""
    loan_id = "0x" + as_bytes32(loan_id).hex()
    mirror = _read_mirror(engine, loan_id, ledger.events)
    client = ledger.client
    if mirror.loan is None and not mirror.events:
        raise NotFoundError(f"loan {loan_id} is not in the mirror")
    at = mirror.checkpoint_block if block is None else block
    chain_problems: list[str] = []
    if mirror.chain_id != client.chain_id:
        raise VerificationError(
            f"the mirror is of chain {mirror.chain_id}, the node is chain {client.chain_id}",
            hint="point FUNDFLOW_RPC_URL at the chain the mirror was built from",
        )
    if mirror.contract.lower() != ledger.address.lower():
        raise VerificationError(
            f"the mirror is of contract {mirror.contract}, the deployment is {ledger.address}",
            hint="use the deployment record the mirror was built from",
        )

    # First round trip: the pinned header, headOf at N and now, the loan's logs up to N.
    tag = hex(at)
    key = as_bytes32(loan_id)
    head_call = {"to": ledger.address, "data": ledger.encode("headOf", key)}
    log_filter = {
        "address": ledger.address,
        "fromBlock": hex(mirror.start_block),
        "toBlock": tag,
        "topics": [None, loan_id],
    }
    header, head_at, head_now, logs = client.batch(
        [
            ("eth_getBlockByNumber", [tag, False]),
            ("eth_call", [head_call, tag]),
            ("eth_call", [head_call, "latest"]),
            ("eth_getLogs", [log_filter]),
        ]
    )
    if header is None:
        raise VerificationError(
            f"block {at} does not exist on the node", hint="the node is behind the mirror"
        )
    if block is None and header["hash"] != mirror.checkpoint_hash:
        chain_problems.append(
            f"the mirror's checkpoint block {at} has hash {mirror.checkpoint_hash}, the node has "
            f"{header['hash']}: the mirror is on an orphaned branch (`fundflow index` follows the reorg)"
        )
    head_on_chain = "0x" + str(head_at)[2:].rjust(64, "0")[-64:]
    head_latest = "0x" + str(head_now)[2:].rjust(64, "0")[-64:]
    chain_events = [
        e for e in ledger.events.decode_all(logs) if str(e.args.get("loanId", "")).lower() == loan_id
    ]

    # Second round trip: getLoan and every lot's getLot at N, for what the logs show exists (both revert
    # for a loan or lot that does not).
    created = [e for e in chain_events if e.name in LOT_CREATING_EVENTS]
    opened = any(e.name == "LoanOpened" for e in chain_events)
    calls: list[tuple[str, list[Any]]] = []
    if opened:
        calls.append(("eth_call", [{"to": ledger.address, "data": ledger.encode("getLoan", key)}, tag]))
    for e in created:
        data = ledger.encode("getLot", key, as_bytes32(str(e.args["lotId"])))
        calls.append(("eth_call", [{"to": ledger.address, "data": data}, tag]))
    answers = client.batch(calls)
    loan_truth = None
    if opened:
        loan_truth = LoanTruth(loan_id, _loan_view(ledger, answers.pop(0)), chain_events)
    lot_truths: dict[str, LotTruth] = {}
    answer_of: dict[str, DecodedEvent] = {}
    for e in chain_events:
        if e.name in ("LotConfirmed", "LotDisputed"):
            answer_of[str(e.args["lotId"]).lower()] = e
    for e, raw in zip(created, answers, strict=True):
        lot = str(e.args["lotId"]).lower()
        word = str(raw)[2:]  # (address holder, uint64 remaining, uint32 allowed): three static words
        lot_truths[lot] = LotTruth(
            loan_id=loan_id,
            lot_id=lot,
            created=e,
            holder=to_checksum_address("0x" + word[24:64]),
            remaining=int(word[64:128], 16),
            answer=answer_of.get(lot),
        )

    events = _compare_events(ledger, mirror.events, chain_events, at)
    head_recomputed = _recompute(ledger, mirror.events, events)
    lots = _compare_lots(lot_truths, mirror.lots)
    loan_problems = _compare_loan(loan_id, mirror.loan, loan_truth)
    record_problems = _compare_records(chain_events, mirror.records)
    docs = _check_documents(ledger, chain_events, documents) if documents is not None else []
    docs += _check_terms(chain_events, mirror.terms, at, grew=head_latest != head_on_chain)
    return Verification(
        loan_id=loan_id,
        chain_id=mirror.chain_id,
        contract=ledger.address,
        block_number=at,
        block_hash=str(header["hash"]),
        head_on_chain=head_on_chain,
        head_recomputed=head_recomputed,
        head_now=head_latest,
        events=events,
        lots=lots,
        documents=docs,
        loan_problems=loan_problems,
        chain_problems=chain_problems,
        record_problems=record_problems,
    )


def _loan_view(ledger: LedgerContract, raw: Any) -> dict[str, Any]:
    """getLoan's answer by LoanView member, in the mirror's forms (0x-hex, the currency's letters)."""
    (view,) = ledger.decode_result("getLoan", str(raw))
    out: dict[str, Any] = {}
    for name, value in zip(LOAN_VIEW_FIELDS, view, strict=True):
        if name == "currency":
            out[name] = bytes(value).decode("ascii", "replace")
        elif isinstance(value, bytes):
            out[name] = "0x" + value.hex()
        else:
            out[name] = value
    return out


def _compare_events(
    ledger: LedgerContract, mirrored: list[DecodedEvent], chain: list[DecodedEvent], at: int
) -> list[EventCheck]:
    by_position = {(e.block_hash.lower(), e.log_index): e for e in chain}
    seen: set[tuple[str, int]] = set()
    checks: list[EventCheck] = []
    for row in mirrored:
        key = (row.block_hash.lower(), row.log_index)
        check = EventCheck(
            name=row.name,
            block_number=row.block_number,
            log_index=row.log_index,
            transaction_hash=row.transaction_hash,
            block_hash=row.block_hash,
            head=_safe_head(row),
            args=dict(row.args),
        )
        checks.append(check)
        if row.block_number > at:
            check.fail(f"mirrored row is from block {row.block_number}, after the block verified at ({at})")
            continue
        truth = by_position.get(key)
        if truth is None:
            check.fail(
                "mirrored row has no log on chain at this block hash and log index (inserted, or moved)"
            )
            continue
        seen.add(key)
        if truth.name != row.name:
            check.fail(f"event name: mirror {row.name}, chain {truth.name}")
            continue
        if truth.block_number != row.block_number:
            check.fail(f"block number: mirror {row.block_number}, chain {truth.block_number}")
        if truth.transaction_hash.lower() != row.transaction_hash.lower():
            check.fail(f"transaction hash: mirror {row.transaction_hash}, chain {truth.transaction_hash}")
        for name, value in truth.args.items():
            mine = row.args.get(name, "<missing>")
            if _norm(mine) != _norm(value):
                check.fail(f"field {name}: mirror {mine}, chain {value}")
        for name in sorted(set(row.args) - set(truth.args)):
            check.fail(f"field {name}: in the mirror only")
    for truth in chain:
        key = (truth.block_hash.lower(), truth.log_index)
        if key in seen:
            continue
        check = EventCheck(
            name=truth.name,
            block_number=truth.block_number,
            log_index=truth.log_index,
            transaction_hash=truth.transaction_hash,
            block_hash=truth.block_hash,
            head=_safe_head(truth),
            args=dict(truth.args),
        )
        check.fail("on chain but missing from the mirror (deleted row, or the indexer skipped it)")
        checks.append(check)
    checks.sort(key=lambda c: (c.block_number, c.log_index))
    return checks


def _safe_head(event: DecodedEvent) -> str | None:
    """The head an event produced, or for a TrailAttested the head it attests."""
    try:
        if event.name == "TrailAttested":
            return str(event.args["head"]).lower()
        return event_head(event.name, event.args) if event.name in CHAINED_EVENTS else None
    except KeyError:
        return None


def _recompute(ledger: LedgerContract, mirrored: list[DecodedEvent], checks: list[EventCheck]) -> str:
    """Walk the hash chain over the mirrored rows; name the first row whose stated head does not follow."""
    by_position = {(c.block_hash.lower(), c.log_index): c for c in checks}
    chain = ledger.hash_chain
    head = ZERO
    broken = False
    for row in mirrored:
        check = by_position[(row.block_hash.lower(), row.log_index)]
        if row.name == "TrailAttested":
            if not broken and str(row.args.get("head", "")).lower() != head:
                check.fail(
                    f"attests head {row.args.get('head')} but the trail's head at that point is {head}"
                )
            continue
        if not chain.is_chained(row.name):
            continue
        try:
            expected = chain.step(head, row.name, row.args)
        except (KeyError, ValueError, TypeError) as exc:
            check.fail(f"cannot hash the mirrored payload: {exc!r}")
            broken = True
            continue
        stated = str(event_head(row.name, row.args)).lower()
        if expected != stated and not broken:
            check.fail(
                f"hash chain breaks here: previous head {head} and this payload give {expected}, the row "
                f"states {stated}"
            )
            broken = True
        head = expected
    return head


def _differs(mine: Any, chain: Any) -> bool:
    if isinstance(mine, bool) or isinstance(chain, bool) or mine is None or chain is None:
        return _norm(mine) != _norm(chain)
    if isinstance(chain, int):
        try:
            return int(mine) != chain
        except (TypeError, ValueError):
            return True
    return _norm(mine) != _norm(chain)


def _compare_lots(truths: Mapping[str, LotTruth], mirrored: Mapping[str, Any]) -> list[LotCheck]:
    checks: list[LotCheck] = []
    order = sorted(set(truths) | set(mirrored), key=lambda i: _lot_order(truths.get(i)))
    for lot_id in order:
        row = mirrored.get(lot_id)
        truth = truths.get(lot_id)
        check = LotCheck(
            lot_id=lot_id,
            parent_lot_id=row.parent_lot_id if row is not None else None,
            holder=row.holder if row is not None else None,
            amount=row.amount if row is not None else None,
            remaining=row.remaining if row is not None else None,
        )
        checks.append(check)
        if truth is None:
            check.fail(
                "lot_id: in the mirror, but no Disbursed/Paid event of this loan created it (inserted row, "
                "or its lot_id or loan_id was changed)"
            )
            continue
        if row is None:
            check.fail(
                f"created on chain by {truth.created.name} in block {truth.created.block_number}, but the "
                "mirror has no row with this loan_id and lot_id (deleted, or its key was changed)"
            )
            continue
        for column, fact in LOT_FACTS.items():
            mine = getattr(row, column)
            value = fact.value(truth)
            if _differs(mine, value):
                check.fail(f"{column}: mirror {mine}, {fact.source} {value}")
    return checks


def _lot_order(truth: LotTruth | None) -> tuple[int, int]:
    return (truth.created.block_number, truth.created.log_index) if truth is not None else (1 << 62, 0)


def _compare_loan(loan_id: str, loan: Any, truth: LoanTruth | None) -> list[str]:
    if truth is None:
        return [f"loan {loan_id}: no LoanOpened on chain up to the block verified at"]
    if loan is None:
        return [f"loan_id: the mirror has no loan row with loan_id {loan_id} (deleted, or its key changed)"]
    problems = []
    for column, fact in LOAN_FACTS.items():
        mine = getattr(loan, column)
        value = fact.value(truth)
        if _differs(mine, value):
            problems.append(f"loan {column}: mirror {mine}, {fact.source} {value}")
    return problems


def _compare_records(chain: list[DecodedEvent], records: LoanRecords) -> list[str]:
    """Each record row against the event at its (block number, log index), column by column."""
    problems: list[str] = []
    before = replay_before(chain)
    for table, facts in RECORD_FACTS.items():
        made = {(e.block_number, e.log_index): e for e in chain if e.name in facts.events}
        rows = {(int(r.block_number), int(r.log_index)): r for r in records.of(table)}  # type: ignore[attr-defined]
        what = "/".join(facts.events)
        for key in sorted(set(made) | set(rows)):
            row, event = rows.get(key), made.get(key)
            where = f"{table} row at block {key[0]} log {key[1]}"
            if event is None:
                problems.append(
                    f"{where}: no {what} of this loan at this block_number and log_index (inserted row, or "
                    "its key was changed)"
                )
                continue
            if row is None:
                problems.append(
                    f"{where}: the {event.name} there has no row with this loan_id, block_number and "
                    "log_index (deleted, or its key was changed)"
                )
                continue
            for column, fact in facts.columns.items():
                mine = getattr(row, column)
                value = fact.value(event, before[key]) if fact.history else fact.value(event)
                if _differs(mine, value):
                    problems.append(f"{where}: {column}: mirror {mine}, {fact.source} {value}")
    return problems


def _check_documents(
    ledger: LedgerContract, chain: list[DecodedEvent], documents: DocumentSource
) -> list[DocumentCheck]:
    arguments = document_arguments(ledger.events)
    references: dict[str, list[str]] = {}
    for e in chain:
        for name in arguments.get(e.name, ()):
            value = e.args.get(name)
            if isinstance(value, str) and value.lower() != ZERO:
                references.setdefault(value.lower(), []).append(
                    f"{e.name}.{name} at block {e.block_number} log {e.log_index}"
                )
    store = {k.lower(): v for k, v in documents.items()}
    checks = []
    for digest, refs in references.items():
        stored = store.get(digest)
        if stored is None:
            checks.append(DocumentCheck(digest, refs, present=False, ok=True, problem=None))
            continue
        try:
            content = _check_document(stored)
        except OSError as exc:
            checks.append(DocumentCheck(digest, refs, True, False, f"stored document unreadable: {exc}"))
            continue
        actual = "0x" + keccak(content).hex()
        if actual != digest:
            checks.append(
                DocumentCheck(
                    digest,
                    refs,
                    True,
                    False,
                    f"stored document hashes to {actual}, not to the on-chain hash (altered or swapped)",
                )
            )
        else:
            checks.append(DocumentCheck(digest, refs, True, True))
    return checks


TERMS_EVENTS = ("LoanOpened", "TermsChanged", "LoanRestructured")
"""The events that name a loan's terms hash (`termsHash`): the opening's and each change of terms'."""


def _check_terms(
    chain: list[DecodedEvent], versions: Mapping[str, Any], at: int, *, grew: bool
) -> list[DocumentCheck]:
    """Each kept terms version against the event that named its hash: the document must hash to it (canonical
    JSON, keccak256). A version no event up to `at` names is a failure, unless the loan's trail grew after
    `at` (a change of terms mined since may name it: verify again at a later block)."""
    named: dict[str, list[str]] = {}
    for e in chain:
        value = e.args.get("termsHash") if e.name in TERMS_EVENTS else None
        if isinstance(value, str):
            named.setdefault(value.lower(), []).append(
                f"{e.name}.termsHash at block {e.block_number} log {e.log_index}"
            )
    checks = []
    for digest, document in sorted(versions.items()):
        refs = named.get(digest, [])
        check = DocumentCheck(digest, refs, present=True, ok=True, kind="terms version")
        actual = terms_hash(document) if isinstance(document, dict) else None
        if actual != digest:
            check.ok = False
            check.problem = (
                f"the kept terms hash to {actual}, not to the hash they are kept under (altered after the "
                "fact)"
                if actual
                else "the kept terms are not a JSON object (altered after the fact)"
            )
        elif not refs:
            check.ok = grew
            check.problem = f"no LoanOpened or TermsChanged event up to block {at} names this terms hash" + (
                " (the trail grew since: verify again at a later block)" if grew else ""
            )
        checks.append(check)
    return checks
