"""Online verification: prove a loan's mirrored trail against the chain, pinned at one block.

The mirror is not trusted. At block N (the mirror's checkpoint unless told otherwise) this module

1. recomputes the loan's hash chain from the mirrored event rows and compares the result with `headOf(loan)`
   read at block N (one `eth_call`): a single changed, missing or added chained event breaks it;
2. fetches the loan's logs from the node (`eth_getLogs` on the loan's topic up to N) and compares each with
   its mirrored row: block hash, block number, transaction hash, log index and every decoded field, so the
   row that differs is named;
3. compares each lot's projection with the events and with `getLot` at block N (holder, remaining);
4. re-hashes every off-chain document the loan's events reference (evidence, reasons, reports, terms) that
   the document store holds.

All chain reads of one verification go in one JSON-RPC batch. The result says per event, per lot and per
document whether it was verified and why not; `Verification.to_dict()` is its JSON form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import keccak, to_checksum_address
from sqlalchemy.engine import Engine

from ledger.chain.contract import LedgerContract, as_bytes32
from ledger.errors import NotFoundError, VerificationError
from ledger.mirror.models import LoanPublic, LotPublic
from ledger.mirror.projections import document_arguments
from ledger.mirror.read import Mirror
from ledger.protocol.events import DecodedEvent, EventDecoder
from ledger.protocol.hashchain import CHAINED_EVENTS, LOT_CREATING_EVENTS, ZERO_HEAD, event_head

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

    @property
    def ok(self) -> bool:
        return (
            self.head_on_chain == self.head_recomputed
            and not self.loan_problems
            and not self.chain_problems
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
        out = list(self.chain_problems) + list(self.loan_problems)
        if self.head_on_chain != self.head_recomputed:
            out.append(
                f"head recomputed from the mirror {self.head_recomputed} differs from headOf at block "
                f"{self.block_number}: {self.head_on_chain}"
            )
        out += [f"event {e.ref}: {p}" for e in self.events for p in e.problems]
        out += [f"lot {lot.lot_id}: {p}" for lot in self.lots for p in lot.problems]
        out += [f"document {d.hash}: {d.problem}" for d in self.documents if not d.ok]
        return out

    @property
    def summary(self) -> str:
        verdict = "VERIFIED" if self.ok else "FAILED"
        bad_events = sum(1 for e in self.events if not e.ok)
        bad_lots = sum(1 for lot in self.lots if not lot.ok)
        docs = [d for d in self.documents if d.present]
        bad_docs = sum(1 for d in docs if not d.ok)
        return (
            f"{verdict} at block {self.block_number}: {len(self.events) - bad_events}/{len(self.events)} "
            f"events, {len(self.lots) - bad_lots}/{len(self.lots)} lots, {len(docs) - bad_docs}/{len(docs)} "
            f"stored documents verified; head {self.head_on_chain}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "loanId": self.loan_id,
            "ok": self.ok,
            "summary": self.summary,
            "chainId": self.chain_id,
            "contract": self.contract,
            "block": {"number": self.block_number, "hash": self.block_hash},
            "headOnChain": self.head_on_chain,
            "headRecomputed": self.head_recomputed,
            "headNow": self.head_now,
            "trailGrewSince": self.trail_grew_since,
            "problems": self.problems(),
            "events": [
                {
                    "name": e.name,
                    "blockNumber": e.block_number,
                    "blockHash": e.block_hash,
                    "logIndex": e.log_index,
                    "transactionHash": e.transaction_hash,
                    "head": e.head,
                    "ok": e.ok,
                    "problems": e.problems,
                }
                for e in self.events
            ],
            "lots": [
                {
                    "lotId": lot.lot_id,
                    "parentLotId": lot.parent_lot_id,
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
                    "referencedBy": d.referenced_by,
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
    return _Mirror(
        chain_id=cp.chain_id,
        contract=cp.contract_address,
        checkpoint_block=cp.block_number,
        checkpoint_hash=cp.block_hash,
        start_block=cp.start_block,
        events=events,
        lots=lots,
        loan=loan,
    )


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

    # One round trip: the pinned header, headOf at N and now, the loan's logs up to N, every lot at N.
    tag = hex(at)
    key = as_bytes32(loan_id)
    head_call = {"to": ledger.address, "data": ledger.encode("headOf", key)}
    lot_ids = sorted(
        {str(e.args["lotId"]) for e in mirror.events if e.name in LOT_CREATING_EVENTS} | set(mirror.lots)
    )
    log_filter = {
        "address": ledger.address,
        "fromBlock": hex(mirror.start_block),
        "toBlock": tag,
        "topics": [None, loan_id],
    }
    calls: list[tuple[str, list[Any]]] = [
        ("eth_getBlockByNumber", [tag, False]),
        ("eth_call", [head_call, tag]),
        ("eth_call", [head_call, "latest"]),
        ("eth_getLogs", [log_filter]),
    ]
    for lot in lot_ids:
        data = ledger.encode("getLot", key, as_bytes32(lot))
        calls.append(("eth_call", [{"to": ledger.address, "data": data}, tag]))
    answers = client.batch(calls)
    header, head_at, head_now, logs = answers[:4]
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
    on_chain_lots: dict[str, tuple[str, int]] = {}
    for lot, raw in zip(lot_ids, answers[4:], strict=True):
        word = str(raw)[2:]  # (address holder, uint64 remaining, uint32 allowed): three static words
        on_chain_lots[lot] = ("0x" + word[24:64], int(word[64:128], 16))

    chain_events = [
        e for e in ledger.events.decode_all(logs) if str(e.args.get("loanId", "")).lower() == loan_id
    ]
    events = _compare_events(ledger, mirror.events, chain_events, at)
    head_recomputed = _recompute(ledger, mirror.events, events)
    lots = _compare_lots(chain_events, mirror.lots, on_chain_lots)
    loan_problems = _compare_loan(mirror.loan, head_on_chain, mirror.events)
    docs = _check_documents(ledger, chain_events, documents) if documents is not None else []
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
    )


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
    try:
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


def _compare_lots(
    chain: list[DecodedEvent], mirrored: Mapping[str, Any], on_chain: Mapping[str, tuple[str, int]]
) -> list[LotCheck]:
    created = {str(e.args["lotId"]): e for e in chain if e.name in LOT_CREATING_EVENTS}
    confirmation: dict[str, tuple[str, str]] = {}
    for e in chain:
        if e.name == "LotConfirmed":
            confirmation[str(e.args["lotId"])] = ("confirmed", str(e.args["evidenceHash"]))
        elif e.name == "LotDisputed":
            confirmation[str(e.args["lotId"])] = ("disputed", str(e.args["reasonHash"]))
    checks: list[LotCheck] = []
    for lot_id in sorted(set(created) | set(mirrored), key=lambda i: _lot_order(created.get(i))):
        row = mirrored.get(lot_id)
        event = created.get(lot_id)
        check = LotCheck(
            lot_id=lot_id,
            parent_lot_id=row.parent_lot_id if row is not None else None,
            holder=row.holder if row is not None else None,
            amount=row.amount if row is not None else None,
            remaining=row.remaining if row is not None else None,
        )
        checks.append(check)
        if event is None:
            check.fail("in the mirror, but no Disbursed/Paid event created it on chain (inserted row)")
            continue
        if row is None:
            check.fail(
                f"created on chain by {event.name} in block {event.block_number}, missing from the mirror"
            )
            continue
        args = event.args
        expected = {
            "holder": args["payee"],
            "amount": args["amount"],
            "parent_lot_id": args.get("parentLotId") if event.name == "Paid" else None,
            "purpose": args["purpose"],
            "declared_use": args["declaredUse"],
            "entrusted": args.get("entrusted") if event.name == "Disbursed" else None,
            "evidence_hash": args["evidenceHash"],
            "block_number": event.block_number,
            "log_index": event.log_index,
            "transaction_hash": event.transaction_hash,
        }
        for name, value in expected.items():
            mine = getattr(row, name)
            if _norm(mine) != _norm(value):
                check.fail(f"{name}: mirror {mine}, chain event {value}")
        state = on_chain.get(lot_id)
        if state is not None:
            holder, remaining = state
            if row.holder.lower() != holder:
                check.fail(f"holder: mirror {row.holder}, getLot {to_checksum_address(holder)}")
            if int(row.remaining) != remaining:
                check.fail(f"remaining: mirror {row.remaining}, getLot {remaining}")
        state_now, hash_now = confirmation.get(lot_id, ("unconfirmed", None))
        if row.confirmation != state_now or _norm(row.confirmation_hash) != _norm(hash_now):
            check.fail(f"confirmation: mirror {row.confirmation}, chain {state_now}")
    return checks


def _lot_order(event: DecodedEvent | None) -> tuple[int, int]:
    return (event.block_number, event.log_index) if event is not None else (1 << 62, 0)


def _compare_loan(loan: Any, head_on_chain: str, mirrored: list[DecodedEvent]) -> list[str]:
    if loan is None:
        return ["loan row missing from the mirror"]
    problems = []
    if str(loan.head).lower() != head_on_chain:
        problems.append(f"loan row head: mirror {loan.head}, headOf {head_on_chain}")
    chained = sum(1 for e in mirrored if e.name in CHAINED_EVENTS)
    if loan.event_count and loan.event_count != chained:
        problems.append(f"loan row counts {loan.event_count} events, the mirror holds {chained} chained rows")
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
