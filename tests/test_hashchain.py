"""ledger.protocol.hashchain vs the contract: the Python rule reproduces each head the contract emits, any
tampered field breaks verification, and the rule is the one the NatSpec documents."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    World,
    chain_time,
    disburse_lot,
    h,
    loan_events,
    make_world,
    open_loan,
    pay_lot,
)
from eth_abi import encode
from eth_utils import keccak

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import LoanStatus, PaymentSpec, RiskClass
from ledger.errors import ValidationError
from ledger.protocol.events import DecodedEvent
from ledger.protocol.hashchain import (
    CHAINED_EVENTS,
    ZERO_HEAD,
    EventKind,
    HashChain,
    HeadMismatch,
    event_head,
)
from ledger.protocol.purposes import Purpose

INTERFACE = Path(__file__).resolve().parent.parent / "contracts" / "interfaces" / "IFundFlowLedger.sol"


@dataclass
class History:
    world: World
    loan_id: str
    events: list[DecodedEvent]  # every event of the loan, in chain order
    heads_before: list[str]  # the loan's head just before each of `events`


@pytest.fixture(scope="module")
def history(client: ChainClient, compiled: CompiledContract) -> History:
    """One loan taken through every kind of change, with a second loan's changes interleaved."""
    world = make_world(client, compiled)
    cast, ledger = world.cast, world.ledger
    loan = open_loan(world, "history")
    other = open_loan(world, "interleaved")
    lot = disburse_lot(world, loan, cast.supplier, 500_000, Purpose.EQUIPMENT)
    disburse_lot(world, other, cast.supplier, 1_000)
    disburse_lot(world, loan, cast.borrower, 200_000, Purpose.SECURITIES)  # to the borrower, undeclared use
    child = pay_lot(world, cast.supplier, loan, lot, cast.subsupplier, 100_000)
    ledger.pay_batch(
        cast.bank,
        loan_id=loan,
        payments=[
            PaymentSpec(lot, cast.supplier2.address, 50_000, Purpose.REAL_ESTATE, h("batch-1")),
            PaymentSpec(child, cast.supplier.address, 30_000, Purpose.RAW_MATERIALS, h("batch-2")),
        ],
    )
    ledger.confirm_lot(cast.subsupplier, loan_id=loan, lot_id=child, evidence_hash=h("receipt"))
    ledger.dispute_lot(cast.supplier, loan_id=loan, lot_id=lot, reason_hash=h("short-paid"))
    ledger.repay(cast.bank, loan_id=loan, amount=70_000, evidence_hash=h("slip"))
    ledger.classify(cast.bank, loan_id=loan, risk_class=RiskClass.DOUBTFUL, reason_hash=h("overdue"))
    ledger.repay(cast.bank, loan_id=other, amount=1_000, evidence_hash=h("other-slip"))
    ledger.value_collateral(
        cast.bank, loan_id=loan, collateral_id=h("plant"), value=9_000_000, evidence_hash=h("appraisal")
    )
    ledger.record_inspection(cast.bank, loan_id=loan, kind=1, report_hash=h("review"))
    ledger.file_record(cast.bank, loan_id=loan, record_kind=0, record_id=h("guarantee"), content_hash=h("g"))
    ledger.restructure(
        cast.bank2, loan_id=loan, maturity=chain_time(client) + 2 * 365 * 86400, terms_hash=h("terms:v2")
    )
    ledger.repay_allocated(
        cast.bank, loan_id=loan, principal=5_000, interest=1_200, penalty=34, evidence_hash=h("slip-2")
    )
    ledger.change_terms(
        cast.bank,
        loan_id=loan,
        maturity=chain_time(client) + 3 * 365 * 86400,
        terms_hash=h("terms:v3"),
        change=0,
        financial_difficulty=True,
    )
    ledger.attest(cast.auditor, loan_id=loan, head=ledger.head_of(loan), report_hash=h("audit"))
    ledger.close_loan(cast.bank, loan_id=loan, status=LoanStatus.WRITTEN_OFF, reason_hash=h("write-off"))
    events = loan_events(world, loan)
    heads_before, head = [], ZERO_HEAD
    for event in events:
        heads_before.append(head)
        if ledger.hash_chain.is_chained(event.name):
            head = event_head(event.name, event.args)
    return History(world, loan, events, heads_before)


def test_history_contains_every_chained_event_kind_and_the_attestation(history: History) -> None:
    names = {e.name for e in history.events}
    assert names == CHAINED_EVENTS | {"TrailAttested"}
    assert all(e.args["loanId"] == history.loan_id for e in history.events)


@pytest.mark.parametrize("kind", [k.name for k in EventKind])
def test_python_hash_chain_reproduces_every_head_the_contract_emits(history: History, kind: str) -> None:
    chain = history.world.ledger.hash_chain
    found = [
        (e, before) for e, before in zip(history.events, history.heads_before, strict=True) if e.name == kind
    ]
    assert found
    for event, before in found:
        assert chain.step(before, kind, event.args) == event_head(kind, event.args)
        # The indexer's path: the same head from the log's raw words, without decoding.
        assert event.raw_topics, "the history's events must carry their raw log"
        assert chain.step_log(before, kind, event.raw_topics, event.raw_data) == event_head(kind, event.args)


def test_the_raw_word_path_sees_a_changed_word(history: History) -> None:
    """step_log must hash every field's word: flipping any hashed word of a log changes the head."""
    chain = history.world.ledger.hash_chain
    for event, before in zip(history.events, history.heads_before, strict=True):
        if not chain.is_chained(event.name):
            continue
        stated = event_head(event.name, event.args)
        body = event.raw_data[2:]
        for i in range(len(body) // 64):
            word = body[64 * i : 64 * i + 64]
            flipped = format(int(word, 16) ^ 1, "064x")
            data = "0x" + body[: 64 * i] + flipped + body[64 * i + 64 :]
            changed = chain.step_log(before, event.name, event.raw_topics, data)
            # Only a lot-creating event's lotId (the head itself) or `head` is carried but not hashed.
            hashed = changed != stated
            field = [n for n, _t, indexed in chain_inputs(history, event.name) if not indexed][i]
            assert hashed == (field not in ("head", "lotId")), (event.name, field)


def chain_inputs(history: History, name: str) -> tuple[tuple[str, str, bool], ...]:
    return history.world.ledger.events.by_name[name].inputs


def test_replaying_the_whole_trail_from_zero_ends_at_the_contracts_head(history: History) -> None:
    ledger, head = history.world.ledger, ZERO_HEAD
    for event in history.events:
        if ledger.hash_chain.is_chained(event.name):
            head = ledger.hash_chain.verify(head, event.name, event.args)
    assert head == ledger.head_of(history.loan_id) == ledger.get_loan(history.loan_id).head


def test_trail_attested_carries_the_head_and_does_not_extend_the_chain(history: History) -> None:
    ((index, attested),) = [(i, e) for i, e in enumerate(history.events) if e.name == "TrailAttested"]
    following = history.events[index + 1]
    assert attested.args["head"] == history.heads_before[index] == history.heads_before[index + 1]
    assert history.world.ledger.hash_chain.verify(history.heads_before[index], following.name, following.args)


def _first(history: History, name: str) -> tuple[DecodedEvent, str]:
    return next((e, b) for e, b in zip(history.events, history.heads_before, strict=True) if e.name == name)


TAMPERINGS: list[tuple[str, str, Any]] = [
    ("Paid", "amount", lambda v, w: v + 1),
    ("Paid", "payee", lambda v, w: w.cast.stranger.address),
    ("Paid", "purpose", lambda v, w: (v + 1) % 32),
    ("Paid", "declaredUse", lambda v, w: not v),
    ("Paid", "parentLotId", lambda v, w: h("another-lot")),
    ("Disbursed", "amount", lambda v, w: v - 1),
    ("Disbursed", "payee", lambda v, w: w.cast.supplier2.address),
    ("Disbursed", "purpose", lambda v, w: Purpose.RAW_MATERIALS),
    ("Disbursed", "entrusted", lambda v, w: not v),
    ("LoanOpened", "principal", lambda v, w: v * 2),
    ("Repaid", "amount", lambda v, w: v + 1),
    ("LotConfirmed", "lotId", lambda v, w: h("another-lot")),
    ("LoanClosed", "status", lambda v, w: int(LoanStatus.REPAID)),
]


@pytest.mark.parametrize(
    ("event_name", "field", "tamper"), TAMPERINGS, ids=[f"{e}-{f}" for e, f, _ in TAMPERINGS]
)
def test_verify_raises_head_mismatch_when_a_field_was_tampered(
    history: History, event_name: str, field: str, tamper: Any
) -> None:
    chain = history.world.ledger.hash_chain
    event, before = _first(history, event_name)
    assert chain.verify(before, event_name, event.args)  # the genuine event verifies
    forged = {**event.args, field: tamper(event.args[field], history.world)}
    assert forged[field] != event.args[field]
    with pytest.raises(HeadMismatch):
        chain.verify(before, event_name, forged)


def test_verify_raises_head_mismatch_when_an_earlier_event_is_missing(history: History) -> None:
    chain = history.world.ledger.hash_chain
    chained = [
        (e, b) for e, b in zip(history.events, history.heads_before, strict=True) if chain.is_chained(e.name)
    ]
    (_, first_before), (second, second_before) = chained[3], chained[4]
    assert chain.verify(second_before, second.name, second.args)
    with pytest.raises(HeadMismatch):
        chain.verify(first_before, second.name, second.args)  # as if event 3 had been dropped from the mirror


def test_paid_head_computed_by_hand_from_the_natspec_rule_matches_the_lot_id(history: History) -> None:
    # head = keccak256(abi.encode(previousHead, uint8(kind), field1, field2, ...)): Paid's fields in
    # declaration order, indexed ones included, leaving out lotId (which is the head).
    event, before = _first(history, "Paid")
    a = event.args
    payload = encode(
        ["bytes32", "uint8", "bytes32", "address", "bytes32", "uint256", "uint8", "bool", "bytes32"],
        [
            bytes.fromhex(before[2:]),
            3,  # EventKind.Paid
            bytes.fromhex(a["loanId"][2:]),
            a["payee"],
            bytes.fromhex(a["parentLotId"][2:]),
            a["amount"],
            a["purpose"],
            a["declaredUse"],
            bytes.fromhex(a["evidenceHash"][2:]),
        ],
    )
    assert "0x" + keccak(payload).hex() == a["lotId"]


def test_loan_opened_head_computed_by_hand_starts_from_zero_and_matches(history: History) -> None:
    event, before = _first(history, "LoanOpened")
    a = event.args
    assert before == ZERO_HEAD
    b32 = lambda text: bytes.fromhex(text[2:])  # noqa: E731
    types = ["bytes32", "uint8", "bytes32", "bytes32", "address", "bytes32", "uint256", "bytes3", "uint32",
             "uint40", "bytes32"]  # fmt: skip
    values = [bytes(32), 1, b32(a["loanId"]), b32(a["lenderOrg"]), a["borrower"], b32(a["borrowerRef"]),
              a["principal"], b"CNY", a["allowedPurposes"], a["maturity"], b32(a["termsHash"])]  # fmt: skip
    payload = encode(types, values)
    assert "0x" + keccak(payload).hex() == a["head"]


def _solidity_enum(name: str) -> list[str]:
    body = re.search(rf"enum {name} \{{(.*?)\}}", INTERFACE.read_text(), re.S)
    assert body is not None
    return [
        re.sub(r"//.*", "", m).strip() for m in body.group(1).split(",") if re.sub(r"//.*", "", m).strip()
    ]


def test_python_event_kinds_mirror_the_solidity_enum_values() -> None:
    solidity = _solidity_enum("EventKind")
    assert solidity[0] == "None"
    assert {k.name: k.value for k in EventKind} == {name: i for i, name in enumerate(solidity) if i > 0}


def test_python_status_and_risk_enums_mirror_the_solidity_enums() -> None:
    assert [s.value for s in LoanStatus] == list(range(len(_solidity_enum("LoanStatus"))))
    assert [n.lower() for n in _solidity_enum("LoanStatus")] == [
        s.name.replace("_", "").lower() for s in LoanStatus
    ]
    assert [n.lower() for n in _solidity_enum("RiskClass")] == [
        c.name.replace("_", "").lower() for c in RiskClass
    ]


def test_hash_chain_refuses_an_abi_without_the_chained_events(compiled: CompiledContract) -> None:
    abi = [e for e in compiled.abi if e.get("name") != "Repaid"]
    with pytest.raises(ValidationError, match="Repaid"):
        HashChain(abi)
