"""Verify a mirrored supply-chain voucher against the chain, column by column (issue 22).

As for loans (`ledger.audit.facts`, `ledger.audit.verify`): every column of the voucher tables is either a
chain fact, listed below with the chain source it is checked against, or listed in `NOT_CHAIN_FACTS` with
the reason it is not. tests/test_verify_coverage.py fails for a voucher column in neither map and tampers
each listed one, requiring verification to name it.

Sources, all read at the block verified at (N, default the mirror's checkpoint):
- `getVoucher(voucherId)`, `headOf(voucherId)`, `getPart(voucherId, partId)` for every part the logs
  created, `creditLineOf(coreOrg)`: the voucher contract's own state;
- the voucher's logs up to N (topic `voucherId`), for what only events carry (a part's parent and face,
  positions, financing and settlement records) and the hash chain, recomputed from them;
- the core enterprise's `CreditLineSet` and `VoucherIssued` logs, and its vouchers' `PartSettled` logs,
  for the line's position and last change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from ledger.chain.vouchers import VoucherContract
from ledger.errors import NotFoundError, VerificationError
from ledger.mirror.read import event_from_row
from ledger.protocol.eventjson import ArgsCodec
from ledger.protocol.events import DecodedEvent
from ledger.protocol.hashchain import ZERO_HEAD, HeadMismatch, part_id_of

__all__ = [
    "CREDIT_LINE_FACTS",
    "NOT_CHAIN_FACTS",
    "PART_FACTS",
    "VOUCHER_FACTS",
    "VOUCHER_RECORD_FACTS",
    "VoucherVerification",
    "verify_voucher",
]


@dataclass(frozen=True)
class Fact:
    """A mirrored column's chain source: `source` names it for people, `value` computes the mirror's value
    from the chain's answers (a truth object below)."""

    source: str
    value: Callable[[Any], Any]


@dataclass(frozen=True)
class VoucherTruth:
    voucher_id: str
    view: Mapping[str, Any]  # getVoucher, in the mirror's forms
    events: list[DecodedEvent]  # the voucher's logs up to N, chain order
    bank_org: str  # the line's bank when it was issued (the line's last CreditLineSet before the issue)

    @property
    def issued(self) -> DecodedEvent:
        return self.events[0]


@dataclass(frozen=True)
class PartTruth:
    voucher_id: str
    part_id: int
    created: DecodedEvent  # VoucherIssued (part 1) or PartTransferred
    holder: str
    remaining: int
    state: int
    events: list[DecodedEvent]  # every event that changed the part, chain order

    def last(self, name: str) -> DecodedEvent | None:
        found = [e for e in self.events if e.name == name]
        return found[-1] if found else None


@dataclass(frozen=True)
class LineTruth:
    core_org: str
    view: Mapping[str, Any]  # creditLineOf
    set_event: DecodedEvent  # the last CreditLineSet
    updated_block: int


def _is_root(t: PartTruth) -> bool:
    return t.created.name == "VoucherIssued"


VOUCHER_FACTS: dict[str, Fact] = {
    "voucher_id": Fact("VoucherIssued.voucherId", lambda t: t.voucher_id),
    "core_org": Fact("getVoucher.coreOrg", lambda t: t.view["coreOrg"]),
    "bank_org": Fact(
        "the core enterprise's CreditLineSet.bankOrg before VoucherIssued", lambda t: t.bank_org
    ),
    "holder": Fact("VoucherIssued.holder", lambda t: t.issued.args["holder"]),
    "face_value": Fact("getVoucher.faceValue", lambda t: t.view["faceValue"]),
    "settled": Fact("getVoucher.settled", lambda t: t.view["settled"]),
    "maturity": Fact("getVoucher.maturity", lambda t: t.view["maturity"]),
    "currency": Fact("getVoucher.currency", lambda t: t.view["currency"]),
    "invoice_hash": Fact("getVoucher.invoiceHash", lambda t: t.view["invoiceHash"]),
    "head": Fact("getVoucher.head", lambda t: t.view["head"]),
    "event_count": Fact("the voucher's logs up to the block", lambda t: len(t.events)),
    "block_number": Fact("VoucherIssued log's blockNumber", lambda t: t.issued.block_number),
    "log_index": Fact("VoucherIssued log's logIndex", lambda t: t.issued.log_index),
    "transaction_hash": Fact("VoucherIssued log's transactionHash", lambda t: t.issued.transaction_hash),
    "updated_block": Fact("the block of the voucher's last event", lambda t: t.events[-1].block_number),
}

PART_FACTS: dict[str, Fact] = {
    "voucher_id": Fact("VoucherIssued/PartTransferred.voucherId", lambda t: t.voucher_id),
    "part_id": Fact("1, or the PartTransferred head's low 32 bits", lambda t: t.part_id),
    "parent_part_id": Fact(
        "PartTransferred.parentPartId (none for part 1)",
        lambda t: None if _is_root(t) else t.created.args["parentPartId"],
    ),
    "holder": Fact("getPart.holder", lambda t: t.holder),
    "amount": Fact(
        "VoucherIssued.faceValue / PartTransferred.amount",
        lambda t: t.created.args["faceValue" if _is_root(t) else "amount"],
    ),
    "remaining": Fact("getPart.remaining", lambda t: t.remaining),
    "state": Fact("getPart.state", lambda t: t.state),
    "bank_org": Fact(
        "FinancingRequested.bankOrg (the last)",
        lambda t: None if (e := t.last("FinancingRequested")) is None else e.args["bankOrg"],
    ),
    "discount_rate_bps": Fact(
        "FinancingRequested.discountRateBps (the last)",
        lambda t: None if (e := t.last("FinancingRequested")) is None else e.args["discountRateBps"],
    ),
    "settled_amount": Fact(
        "PartSettled.amount", lambda t: None if (e := t.last("PartSettled")) is None else e.args["amount"]
    ),
    "settled_block": Fact(
        "PartSettled log's blockNumber",
        lambda t: None if (e := t.last("PartSettled")) is None else e.block_number,
    ),
    "block_number": Fact("VoucherIssued/PartTransferred log's blockNumber", lambda t: t.created.block_number),
    "log_index": Fact("VoucherIssued/PartTransferred log's logIndex", lambda t: t.created.log_index),
    "transaction_hash": Fact(
        "VoucherIssued/PartTransferred log's transactionHash", lambda t: t.created.transaction_hash
    ),
    "updated_block": Fact(
        "the block of the last event that changed the part", lambda t: t.events[-1].block_number
    ),
}

CREDIT_LINE_FACTS: dict[str, Fact] = {
    "core_org": Fact("CreditLineSet.coreOrg", lambda t: t.core_org),
    "bank_org": Fact("creditLineOf.bankOrg", lambda t: t.view["bankOrg"]),
    "line_limit": Fact("creditLineOf.limit", lambda t: t.view["limit"]),
    "outstanding": Fact("creditLineOf.outstanding", lambda t: t.view["outstanding"]),
    "expiry": Fact("creditLineOf.expiry", lambda t: t.view["expiry"]),
    "terms_hash": Fact("creditLineOf.termsHash", lambda t: t.view["termsHash"]),
    "block_number": Fact("the last CreditLineSet log's blockNumber", lambda t: t.set_event.block_number),
    "log_index": Fact("the last CreditLineSet log's logIndex", lambda t: t.set_event.log_index),
    "transaction_hash": Fact(
        "the last CreditLineSet log's transactionHash", lambda t: t.set_event.transaction_hash
    ),
    "updated_block": Fact(
        "the block of the line's last change (CreditLineSet, VoucherIssued, PartSettled)",
        lambda t: t.updated_block,
    ),
}


def _record_key(event: str) -> dict[str, Fact]:
    return {
        "voucher_id": Fact(f"{event}.voucherId", lambda e: e.args["voucherId"]),
        "block_number": Fact(f"{event} log's blockNumber", lambda e: e.block_number),
        "log_index": Fact(f"{event} log's logIndex", lambda e: e.log_index),
        "transaction_hash": Fact(f"{event} log's transactionHash", lambda e: e.transaction_hash),
        "part_id": Fact(f"{event}.partId", lambda e: e.args["partId"]),
    }


def _arg(event: str, arg: str) -> Fact:
    return Fact(f"{event}.{arg}", lambda e: e.args[arg])


# Record table -> (its event, each column's source as a function of the event). `bank_org` of a financing
# is the bank its holder asked (the part's FinancingRequested before it), given to the function as
# `e.args["_bankOrg"]` by `verify_voucher`.
VOUCHER_RECORD_FACTS: dict[str, tuple[str, dict[str, Fact]]] = {
    "voucher_financings": (
        "PartFinanced",
        {
            **_record_key("PartFinanced"),
            "bank": _arg("PartFinanced", "bank"),
            "bank_org": Fact("FinancingRequested.bankOrg before PartFinanced", lambda e: e.args["_bankOrg"]),
            "seller": _arg("PartFinanced", "seller"),
            "face": _arg("PartFinanced", "face"),
            "discount_rate_bps": _arg("PartFinanced", "discountRateBps"),
            "discount_days": _arg("PartFinanced", "discountDays"),
            "interest": _arg("PartFinanced", "interest"),
            "paid": _arg("PartFinanced", "paid"),
            "payment_ref": _arg("PartFinanced", "paymentRef"),
        },
    ),
    "voucher_settlements": (
        "PartSettled",
        {
            **_record_key("PartSettled"),
            "holder": _arg("PartSettled", "holder"),
            "amount": _arg("PartSettled", "amount"),
            "payment_ref": _arg("PartSettled", "paymentRef"),
        },
    ),
}

# (table, column) -> why it is neither a chain fact nor served. (None of the voucher tables has one yet.)
NOT_CHAIN_FACTS: dict[tuple[str, str], str] = {}

FACTS_BY_TABLE: dict[str, dict[str, Fact]] = {
    "vouchers": VOUCHER_FACTS,
    "voucher_parts": PART_FACTS,
    "credit_lines": CREDIT_LINE_FACTS,
    **{table: columns for table, (_, columns) in VOUCHER_RECORD_FACTS.items()},
}


@dataclass
class VoucherVerification:
    """What verifying one voucher found: problems name the table, row and column, or the event."""

    voucher_id: str
    block_number: int
    head_on_chain: str
    head_recomputed: str
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.head_on_chain == self.head_recomputed

    def summary(self) -> str:
        if self.ok:
            return (
                f"voucher {self.voucher_id} verified at block {self.block_number}: every mirrored column "
                f"and event matches the chain; head {self.head_on_chain}"
            )
        return f"voucher {self.voucher_id} FAILED verification at block {self.block_number}:\n" + "\n".join(
            f"- {p}" for p in self.problems
        )


def _t(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def _norm(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("0x"):
        return value.lower()
    return value


def _compare(
    table: str, where: str, row: Mapping[str, Any], facts: Mapping[str, Fact], truth: Any
) -> list[str]:
    out = []
    for column, fact in facts.items():
        chain = fact.value(truth)
        mine = row.get(column)
        if _norm(mine) != _norm(chain):
            out.append(
                f"{table}.{column} of {where}: mirror has {mine!r}, chain ({fact.source}) has {chain!r}"
            )
    return out


def verify_voucher(
    engine: Engine, vouchers: VoucherContract, voucher_id: str, *, block: int | None = None
) -> VoucherVerification:
    """Verify the mirrored voucher `voucher_id` (its row, parts, financings, settlements, raw events, the
    core enterprise's credit line) against the chain at `block` (default: the mirror's checkpoint)."""
    voucher_id = voucher_id.lower()
    codec = ArgsCodec(vouchers.events)
    events_t, checkpoint = _t("events"), _t("checkpoint")
    with engine.connect() as conn:
        cp = conn.execute(sa.select(checkpoint)).first()
        if cp is None:
            raise VerificationError("the mirror has no checkpoint yet", hint="run `fundflow index` first")
        voucher = conn.execute(
            sa.select(_t("vouchers")).where(_t("vouchers").c.voucher_id == voucher_id)
        ).first()
        parts = {
            r.part_id: dict(r._mapping)
            for r in conn.execute(
                sa.select(_t("voucher_parts")).where(_t("voucher_parts").c.voucher_id == voucher_id)
            )
        }
        records = {
            table: {
                (r.block_number, r.log_index): dict(r._mapping)
                for r in conn.execute(sa.select(_t(table)).where(_t(table).c.voucher_id == voucher_id))
            }
            for table in VOUCHER_RECORD_FACTS
        }
        mirrored_events = [
            event_from_row(r, codec)
            for r in conn.execute(
                sa.select(events_t)
                .where(events_t.c.voucher_id == voucher_id)
                .order_by(events_t.c.block_number, events_t.c.log_index)
            )
        ]
    if voucher is None and not mirrored_events:
        raise NotFoundError(f"voucher {voucher_id} is not in the mirror")
    at = int(cp.block_number) if block is None else block
    start = int(cp.start_block)
    client = vouchers.client
    problems: list[str] = []

    # The voucher's logs up to N, and its hash chain recomputed from them.
    logs = client.get_logs(vouchers.address, start, at, topics=[None, voucher_id])
    chain_events = vouchers.events.decode_all(logs)
    head = ZERO_HEAD
    for e in chain_events:
        try:
            head = vouchers.hash_chain.verify(head, e.name, e.args, (e.raw_topics, e.raw_data))
        except HeadMismatch as exc:
            problems.append(f"the chain's own events do not chain: {exc.message}")
    head_on_chain = vouchers.head_of(voucher_id, block=at)

    # Raw events: the mirror's must be exactly the chain's, in order, with the same arguments.
    mine = [
        (e.name, e.block_number, e.log_index, {k: _norm(v) for k, v in e.args.items()})
        for e in mirrored_events
    ]
    theirs = [
        (e.name, e.block_number, e.log_index, {k: _norm(v) for k, v in e.args.items()}) for e in chain_events
    ]
    if mine != theirs:
        missing = [t[:3] for t in theirs if t not in mine]
        extra = [m[:3] for m in mine if m not in theirs]
        problems.append(f"events: the mirror lacks {missing} and has {extra} that the chain does not")

    if not chain_events or chain_events[0].name != "VoucherIssued":
        problems.append(f"voucher {voucher_id}: no VoucherIssued on chain up to block {at}")
        return VoucherVerification(voucher_id, at, head_on_chain, head, problems)

    state = vouchers.get_voucher(voucher_id, block=at)
    view = {
        "coreOrg": state.core_org,
        "faceValue": state.face_value,
        "settled": state.settled,
        "maturity": state.maturity,
        "currency": state.currency,
        "invoiceHash": state.invoice_hash,
        "head": state.head,
    }
    core = state.core_org
    # The core enterprise's line: its CreditLineSet and VoucherIssued logs, and its vouchers' PartSettled.
    line_sets = vouchers.events.decode_all(
        client.get_logs(
            vouchers.address, start, at, topics=[vouchers.events.by_name["CreditLineSet"].topic0, core]
        )
    )
    issued = vouchers.events.decode_all(
        client.get_logs(
            vouchers.address, start, at, topics=[vouchers.events.by_name["VoucherIssued"].topic0, None, core]
        )
    )
    settled = vouchers.events.decode_all(
        client.get_logs(
            vouchers.address,
            start,
            at,
            topics=[
                vouchers.events.by_name["PartSettled"].topic0,
                [str(e.args["voucherId"]) for e in issued],
            ],
        )
    )
    issue = chain_events[0]
    before = [e for e in line_sets if (e.block_number, e.log_index) < (issue.block_number, issue.log_index)]
    bank_org = str(before[-1].args["bankOrg"]) if before else ""
    truth = VoucherTruth(voucher_id, view, chain_events, bank_org)
    if voucher is None:
        problems.append(f"vouchers (voucher_id): {voucher_id} is on chain, its row is not in the mirror")
    else:
        problems += _compare("vouchers", voucher_id, dict(voucher._mapping), VOUCHER_FACTS, truth)

    # Parts: each one the logs created, against getPart and its events.
    touching: dict[int, list[DecodedEvent]] = {}
    created: dict[int, DecodedEvent] = {}
    for e in chain_events:
        if e.name == "VoucherIssued":
            created[1] = e
            touching.setdefault(1, []).append(e)
        elif e.name == "PartTransferred":
            child = part_id_of(str(e.args["head"]))
            created[child] = e
            touching.setdefault(child, []).append(e)
            touching.setdefault(int(e.args["parentPartId"]), []).append(e)
        else:
            touching.setdefault(int(e.args["partId"]), []).append(e)
    for part_id, event in created.items():
        row = parts.pop(part_id, None)
        if row is None:
            problems.append(
                f"voucher_parts (voucher_id, part_id): part {part_id} of {voucher_id} is on chain, "
                "not mirrored"
            )
            continue
        info = vouchers.get_part(voucher_id, part_id, block=at)
        part_truth = PartTruth(
            voucher_id, part_id, event, info.holder, info.remaining, int(info.state), touching[part_id]
        )
        problems += _compare("voucher_parts", f"part {part_id}", row, PART_FACTS, part_truth)
    for part_id in parts:
        problems.append(
            f"voucher_parts (voucher_id, part_id): part {part_id} of {voucher_id} is in the mirror, no event "
            "created it"
        )

    # Financings and settlements: one row per event.
    requested: dict[int, str] = {}
    for e in chain_events:
        if e.name == "FinancingRequested":
            requested[int(e.args["partId"])] = str(e.args["bankOrg"])
        for table, (name, facts) in VOUCHER_RECORD_FACTS.items():
            if e.name != name:
                continue
            row = records[table].pop((e.block_number, e.log_index), None)
            if row is None:
                problems.append(
                    f"{table} (voucher_id, block_number, log_index): the {name} in block {e.block_number} "
                    f"log {e.log_index} has no row in the mirror"
                )
                continue
            enriched = DecodedEvent(
                e.name,
                {**e.args, "_bankOrg": requested.get(int(e.args["partId"]), "")},
                e.address,
                e.block_number,
                e.block_hash,
                e.transaction_hash,
                e.log_index,
            )
            problems += _compare(table, f"block {e.block_number} log {e.log_index}", row, facts, enriched)
    for table, left in records.items():
        for block_number, log_index in left:
            problems.append(
                f"{table} (voucher_id, block_number, log_index): a row at block {block_number} log "
                f"{log_index} that no event made"
            )

    # The credit line, found by the chain's core enterprise (not the mirror's, which may be forged).
    lines = _t("credit_lines")
    with engine.connect() as conn:
        line_row = conn.execute(sa.select(lines).where(lines.c.core_org == core)).first()
    if line_row is None or not line_sets:
        where = "not mirrored (credit_lines.core_org)" if line_row is None else "not on chain"
        problems.append(f"credit_lines: the line of {core} is {where}")
    else:
        line = vouchers.credit_line_of(core, block=at)
        line_view = {
            "bankOrg": line.bank_org,
            "limit": line.limit,
            "outstanding": line.outstanding,
            "expiry": line.expiry,
            "termsHash": line.terms_hash,
        }
        updated = max(e.block_number for e in [*line_sets, *issued, *settled])
        line_truth = LineTruth(core, line_view, line_sets[-1], updated)
        problems += _compare("credit_lines", core, dict(line_row._mapping), CREDIT_LINE_FACTS, line_truth)

    if head_on_chain != head:
        problems.append(f"head: headOf gives {head_on_chain}, the chain's events recompute to {head}")
    if voucher is not None and voucher.head.lower() != head_on_chain:
        problems.append(f"head: the mirror's head {voucher.head} is not headOf's {head_on_chain}")
    return VoucherVerification(voucher_id, at, head_on_chain, head, problems)
