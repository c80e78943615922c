"""What on chain proves each mirrored column of a loan and its lots: the declared map verification walks.

Every column of the `loans` and `lots` tables and of each per-loan record table (`RECORD_FACTS`: repayments,
classifications, ... one row per event) is either a chain fact, listed here with the chain source it is
checked against (`LOAN_FACTS`, `LOT_FACTS`, `RECORD_FACTS`), or listed in `NOT_CHAIN_FACTS` with the reason
it is neither a chain fact nor served by the API. `ledger.audit.verify` compares every listed fact of the
mirrored row with the value the chain gives at the block verified at; tests/test_verify_coverage.py tampers
each column the API serves and requires verification to name it, and fails for a column this module does
not list.

Adding a column to `loans` or `lots`: add it to `LOAN_FACTS` / `LOT_FACTS` with a function from the chain's
answers (`LoanTruth`, `LotTruth`) to the value the mirror must hold, or, if the API never serves it and it is
not a chain fact, to `NOT_CHAIN_FACTS` with the reason. Adding a column to a record table: a function of the
event that made the row (`RecordFacts.columns`); a new record table: a `RECORD_FACTS` entry naming its
events.

Sources, all read at the block verified at (N):
- `getLoan(loanId)` and `getLot(loanId, lotId)`: the contract's own state;
- the loan's logs up to N (`eth_getLogs` on the loan's topic), for what only events carry: positions, the
  closing reason, a lot's creation fields and its payee's latest answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.protocol.events import DecodedEvent
from ledger.protocol.hashchain import CHAINED_EVENTS

__all__ = [
    "ChainFact",
    "LOAN_FACTS",
    "LOT_FACTS",
    "LoanBefore",
    "LoanTruth",
    "LotTruth",
    "NOT_CHAIN_FACTS",
    "RECORD_FACTS",
    "RecordFacts",
    "replay_before",
]

# getLoan's LoanView members, in ABI order (IFundFlowLedger.LoanView).
LOAN_VIEW_FIELDS = (
    "lenderOrg",
    "borrower",
    "borrowerRef",
    "principal",
    "disbursed",
    "repaid",
    "allowedPurposes",
    "maturity",
    "currency",
    "status",
    "riskClass",
    "termsHash",
    "head",
)


@dataclass(frozen=True)
class LoanTruth:
    """The chain's answers about one loan at block N: `getLoan` (by LoanView member name, ids and hashes as
    0x-hex, the currency as its 3 letters) and the loan's logs up to N in chain order."""

    loan_id: str
    view: Mapping[str, Any]
    events: list[DecodedEvent]

    @property
    def opened(self) -> DecodedEvent:
        return next(e for e in self.events if e.name == "LoanOpened")

    def last(self, *names: str) -> DecodedEvent | None:
        found = [e for e in self.events if e.name in names]
        return found[-1] if found else None


@dataclass(frozen=True)
class LotTruth:
    """The chain's answers about one lot at block N: its creating event (Disbursed or Paid), `getLot`
    (holder, remaining) and the payee's latest answer (LotConfirmed or LotDisputed), if any."""

    loan_id: str
    lot_id: str
    created: DecodedEvent
    holder: str
    remaining: int
    answer: DecodedEvent | None = field(default=None)


@dataclass(frozen=True)
class ChainFact:
    """A mirrored column's chain source: `source` names it for people (it appears in every problem
    verification reports), `value` computes what the mirror must hold from the chain's answers. A record
    column with `history` is computed from its event and the loan's state just before it (`LoanBefore`,
    replayed from the loan's earlier events)."""

    source: str
    value: Callable[..., Any]
    history: bool = False


@dataclass(frozen=True)
class LoanBefore:
    """The loan's maturity and principal outstanding just before an event, replayed from the events before
    it: LoanOpened / LoanRestructured / TermsChanged set the maturity; Disbursed adds to the principal
    outstanding, Repaid and RepaymentApplied take their principal off."""

    maturity: int
    outstanding: int


def replay_before(events: list[DecodedEvent]) -> dict[tuple[int, int], LoanBefore]:
    """`LoanBefore` for each of the loan's events (chain order), by (block number, log index)."""
    out: dict[tuple[int, int], LoanBefore] = {}
    maturity = outstanding = 0
    for e in events:
        out[(e.block_number, e.log_index)] = LoanBefore(maturity, outstanding)
        if e.name in ("LoanOpened", "LoanRestructured", "TermsChanged"):
            maturity = int(e.args["maturity"])
        elif e.name == "Disbursed":
            outstanding += int(e.args["amount"])
        elif e.name == "Repaid":
            outstanding -= int(e.args["amount"])
        elif e.name == "RepaymentApplied":
            outstanding -= int(e.args["principal"])
    return out


def _view(member: str) -> ChainFact:
    return ChainFact(f"getLoan.{member}", lambda t: t.view[member])


def _created(arg: str, *, only: str | None = None) -> ChainFact:
    event = only or "Disbursed/Paid"
    return ChainFact(
        f"{event}.{arg}",
        lambda t: t.created.args.get(arg) if only is None or t.created.name == only else None,
    )


def _closing_reason(t: LoanTruth) -> str | None:
    closed = t.last("LoanClosed")
    return None if closed is None else str(closed.args["reasonHash"])


def _updated_block(t: LoanTruth) -> int:
    return max(e.block_number for e in t.events if e.name in CHAINED_EVENTS)


def _answer_state(t: LotTruth) -> str:
    if t.answer is None:
        return "unconfirmed"
    return "confirmed" if t.answer.name == "LotConfirmed" else "disputed"


def _answer_hash(t: LotTruth) -> str | None:
    if t.answer is None:
        return None
    return str(t.answer.args["evidenceHash" if t.answer.name == "LotConfirmed" else "reasonHash"])


# Column of `loans` -> its chain source. Order: the model's.
LOAN_FACTS: dict[str, ChainFact] = {
    # The key: verification reads the row by it, so a changed key shows as the loan's row missing.
    "loan_id": ChainFact("LoanOpened.loanId", lambda t: t.loan_id),
    "lender_org": _view("lenderOrg"),
    "borrower": _view("borrower"),
    "borrower_ref": _view("borrowerRef"),
    "principal": _view("principal"),
    "currency": _view("currency"),
    "allowed_purposes": _view("allowedPurposes"),
    "maturity": _view("maturity"),
    "terms_hash": _view("termsHash"),
    "disbursed": _view("disbursed"),
    "repaid": _view("repaid"),
    "status": _view("status"),
    "risk_class": _view("riskClass"),
    "closing_reason_hash": ChainFact("LoanClosed.reasonHash (the last; none while open)", _closing_reason),
    "head": _view("head"),
    "event_count": ChainFact(
        "the loan's logs up to the block (every event, attestations included)", lambda t: len(t.events)
    ),
    "block_number": ChainFact("LoanOpened log's blockNumber", lambda t: t.opened.block_number),
    "log_index": ChainFact("LoanOpened log's logIndex", lambda t: t.opened.log_index),
    "transaction_hash": ChainFact("LoanOpened log's transactionHash", lambda t: t.opened.transaction_hash),
    "updated_block": ChainFact("the block of the loan's last hash-chain event", _updated_block),
}

# Column of `lots` -> its chain source.
LOT_FACTS: dict[str, ChainFact] = {
    # The keys: a lot is read among its loan's rows by lot id, so a changed key shows as the lot missing
    # (and, for a changed lot_id, as a row no event created).
    "loan_id": ChainFact("Disbursed/Paid.loanId", lambda t: t.loan_id),
    "lot_id": ChainFact("Disbursed/Paid.lotId", lambda t: t.lot_id),
    "parent_lot_id": _created("parentLotId", only="Paid"),
    "holder": ChainFact("getLot.holder", lambda t: t.holder),
    "amount": _created("amount"),
    "remaining": ChainFact("getLot.remaining", lambda t: t.remaining),
    "purpose": _created("purpose"),
    "declared_use": _created("declaredUse"),
    "entrusted": _created("entrusted", only="Disbursed"),
    "evidence_hash": _created("evidenceHash"),
    "confirmation": ChainFact("the payee's last LotConfirmed/LotDisputed", _answer_state),
    "confirmation_hash": ChainFact(
        "LotConfirmed.evidenceHash / LotDisputed.reasonHash (the last)", _answer_hash
    ),
    "confirmation_block": ChainFact(
        "the block of the payee's last LotConfirmed/LotDisputed",
        lambda t: None if t.answer is None else t.answer.block_number,
    ),
    "block_number": ChainFact("Disbursed/Paid log's blockNumber", lambda t: t.created.block_number),
    "log_index": ChainFact("Disbursed/Paid log's logIndex", lambda t: t.created.log_index),
    "transaction_hash": ChainFact(
        "Disbursed/Paid log's transactionHash", lambda t: t.created.transaction_hash
    ),
}


@dataclass(frozen=True)
class RecordFacts:
    """A per-loan record table: the events that each make one row (at the event's block number and log
    index), and each column's chain source as a function of that event."""

    events: tuple[str, ...]
    columns: dict[str, ChainFact]


def _arg(event: str, arg: str) -> ChainFact:
    return ChainFact(f"{event}.{arg}", lambda e: e.args[arg])


def _record(events: tuple[str, ...], **columns: ChainFact) -> RecordFacts:
    what = "/".join(events)
    # The key: a row is matched to its event by (loan_id, block_number, log_index), so a changed key shows
    # as an event without its row and a row without its event.
    key = {
        "loan_id": ChainFact(f"{what}.loanId", lambda e: e.args["loanId"]),
        "block_number": ChainFact(f"{what} log's blockNumber", lambda e: e.block_number),
        "log_index": ChainFact(f"{what} log's logIndex", lambda e: e.log_index),
        "transaction_hash": ChainFact(f"{what} log's transactionHash", lambda e: e.transaction_hash),
    }
    return RecordFacts(events, {**key, **columns})


def _answer_arg(e: DecodedEvent) -> Any:
    return e.args["evidenceHash" if e.name == "LotConfirmed" else "reasonHash"]


# Record table -> its events and each column's chain source.
RECORD_FACTS: dict[str, RecordFacts] = {
    "confirmations": _record(
        ("LotConfirmed", "LotDisputed"),
        lot_id=ChainFact("LotConfirmed/LotDisputed.lotId", lambda e: e.args["lotId"]),
        state=ChainFact(
            "the event's name (LotConfirmed: confirmed, LotDisputed: disputed)",
            lambda e: "confirmed" if e.name == "LotConfirmed" else "disputed",
        ),
        evidence_hash=ChainFact("LotConfirmed.evidenceHash / LotDisputed.reasonHash", _answer_arg),
    ),
    "repayments": _record(
        ("Repaid", "RepaymentApplied"),
        amount=ChainFact(
            "Repaid.amount / RepaymentApplied.principal",
            lambda e: e.args["amount"] if e.name == "Repaid" else e.args["principal"],
        ),
        outstanding=_arg("Repaid/RepaymentApplied", "outstanding"),
        evidence_hash=_arg("Repaid/RepaymentApplied", "evidenceHash"),
        interest=ChainFact("RepaymentApplied.interest (0 for Repaid)", lambda e: e.args.get("interest", 0)),
        penalty=ChainFact("RepaymentApplied.penalty (0 for Repaid)", lambda e: e.args.get("penalty", 0)),
    ),
    "classifications": _record(
        ("RiskClassified",),
        risk_class=_arg("RiskClassified", "riskClass"),
        reason_hash=_arg("RiskClassified", "reasonHash"),
    ),
    "collateral_valuations": _record(
        ("CollateralValued",),
        collateral_id=_arg("CollateralValued", "collateralId"),
        value=_arg("CollateralValued", "value"),
        evidence_hash=_arg("CollateralValued", "evidenceHash"),
    ),
    "inspections": _record(
        ("InspectionRecorded",),
        kind=_arg("InspectionRecorded", "kind"),
        report_hash=_arg("InspectionRecorded", "reportHash"),
    ),
    "restructurings": _record(
        ("LoanRestructured", "TermsChanged"),
        maturity=_arg("LoanRestructured/TermsChanged", "maturity"),
        terms_hash=_arg("LoanRestructured/TermsChanged", "termsHash"),
        change_kind=ChainFact(
            "TermsChanged.change (none for LoanRestructured)", lambda e: e.args.get("change")
        ),
        financial_difficulty=ChainFact(
            "TermsChanged.financialDifficulty (none for LoanRestructured)",
            lambda e: e.args.get("financialDifficulty"),
        ),
        previous_maturity=ChainFact(
            "TermsChanged.previousMaturity (for LoanRestructured: the maturity the events before it set)",
            lambda e, before: e.args["previousMaturity"] if e.name == "TermsChanged" else before.maturity,
            history=True,
        ),
        outstanding=ChainFact(
            "TermsChanged.outstanding (for LoanRestructured: the principal the events before it left unpaid)",
            lambda e, before: e.args["outstanding"] if e.name == "TermsChanged" else before.outstanding,
            history=True,
        ),
    ),
    "file_records": _record(
        ("RecordFiled",),
        record_kind=_arg("RecordFiled", "recordKind"),
        record_id=_arg("RecordFiled", "recordId"),
        content_hash=_arg("RecordFiled", "contentHash"),
        actor=_arg("RecordFiled", "actor"),
    ),
    "attestations": _record(
        ("TrailAttested",),
        auditor_org=_arg("TrailAttested", "auditorOrg"),
        head=_arg("TrailAttested", "head"),
        report_hash=_arg("TrailAttested", "reportHash"),
    ),
}

# (table, column) -> why it is neither a chain fact nor served by the API.
NOT_CHAIN_FACTS: dict[tuple[str, str], str] = {
    ("lots", "lot_key"): "the lookup key of lot_id (its first 8 bytes, an index): derived, never served",
}
