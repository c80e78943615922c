"""Offline proof bundles on real nodes: header hashing equals the node's block hash on Hardhat and anvil, a
bundle verifies with no database, every flipped byte is caught and located, and forged bundles fail."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import World, disburse_lot, h, make_world, open_loan, pay_lot

from ledger.audit.bundle import (
    EVENT_INPUTS,
    HEADER_FIELDS,
    build_bundle,
    bundle_to_text,
    header_hash,
    heads_slot,
    heads_storage_key,
    verify_bundle,
)
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.localchain import LocalChain
from ledger.errors import BundleError
from ledger.protocol.purposes import Purpose

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def anvil() -> Iterator[LocalChain]:
    ARTIFACTS.mkdir(exist_ok=True)
    with LocalChain(kind="anvil", log_path=ARTIFACTS / "anvil-bundle.log") as node:
        yield node


def make_loan(world: World) -> str:
    cast, ledger = world.cast, world.ledger
    loan_id = open_loan(world, "bundle")
    lot = disburse_lot(world, loan_id, cast.supplier, 400_000_00)
    child = pay_lot(world, cast.supplier, loan_id, lot, cast.subsupplier, 100_000_00, Purpose.EQUIPMENT)
    ledger.confirm_lot(cast.subsupplier, loan_id=loan_id, lot_id=child, evidence_hash=h("receipt"))
    ledger.classify(cast.bank, loan_id=loan_id, risk_class=1, reason_hash=h("late invoice"))
    ledger.attest(cast.auditor, loan_id=loan_id, head=ledger.head_of(loan_id), report_hash=h("report"))
    ledger.repay(cast.bank, loan_id=loan_id, amount=1_000, evidence_hash=h("slip"))
    return loan_id


def bundle_of(world: World, compiled: CompiledContract, loan_id: str, **kwargs: Any) -> dict[str, Any]:
    return build_bundle(
        world.ledger,
        loan_id,
        storage_slot=heads_slot(compiled.storage_layout),
        from_block=world.deployment.block_number,
        **kwargs,
    )


@pytest.fixture
def proven(world: World, compiled: CompiledContract) -> tuple[World, str, dict[str, Any]]:
    loan_id = make_loan(world)
    return world, loan_id, bundle_of(world, compiled, loan_id)


def _header_hashes_match(client: ChainClient) -> int:
    latest = client.block_number()
    checked = 0
    for number in range(0, latest + 1):
        block = client.get_block(number)
        header = {name: block[name] for name, _ in HEADER_FIELDS if name in block}
        assert header_hash(header) == block["hash"], number
        checked += 1
    return checked


def test_header_hash_equals_hardhat_block_hash(world: World) -> None:
    make_loan(world)  # blocks with transactions, logs and a non-empty bloom
    assert _header_hashes_match(world.ledger.client) > 10


def test_header_hash_equals_anvil_block_hash(anvil: LocalChain, compiled: CompiledContract) -> None:
    world = make_world(ChainClient(anvil.url), compiled)
    make_loan(world)
    assert _header_hashes_match(world.ledger.client) > 10


def test_bundle_on_anvil_verifies_against_its_node(anvil: LocalChain, compiled: CompiledContract) -> None:
    client = ChainClient(anvil.url)
    world = make_world(client, compiled)
    loan_id = make_loan(world)
    result = verify_bundle(bundle_to_text(bundle_of(world, compiled, loan_id)), client=client)
    assert result.head == world.ledger.head_of(loan_id) and result.positions_checked


def test_event_table_equals_the_compiled_abi(compiled: CompiledContract) -> None:
    from_abi = {
        e["name"]: tuple((i["name"], i["type"], i["indexed"]) for i in e["inputs"])
        for e in compiled.abi
        if e.get("type") == "event" and e["name"] in EVENT_INPUTS
    }
    assert from_abi == EVENT_INPUTS


def test_heads_slot_comes_from_the_storage_layout(compiled: CompiledContract, world: World) -> None:
    slot = heads_slot(compiled.storage_layout)
    loan_id = open_loan(world, "slot")
    stored = world.ledger.client.rpc(
        "eth_getStorageAt", [world.ledger.address, heads_storage_key(loan_id, slot), "latest"]
    )
    assert "0x" + stored[2:].rjust(64, "0") == world.ledger.head_of(loan_id)


def test_bundle_verifies_offline_against_the_trusted_block_hash(
    proven: tuple[World, str, dict[str, Any]],
) -> None:
    world, loan_id, bundle = proven
    text = bundle_to_text(bundle)
    block_hash = bundle["header"]["hash"]
    result = verify_bundle(text, trusted_block_hash=block_hash)
    assert result.anchored and result.block_hash == block_hash
    assert result.head == world.ledger.head_of(loan_id)
    assert [e.name for e in result.events] == [
        "LoanOpened",
        "Disbursed",
        "Paid",
        "LotConfirmed",
        "RiskClassified",
        "TrailAttested",
        "Repaid",
    ]
    assert result.events[-1].head == result.head
    assert not result.positions_checked


def test_bundle_anchored_by_a_node_also_checks_positions(
    proven: tuple[World, str, dict[str, Any]], client: ChainClient
) -> None:
    _, _, bundle = proven
    result = verify_bundle(bundle_to_text(bundle), client=client)
    assert result.anchored_by is not None and client.rpc_url in result.anchored_by
    assert result.positions_checked


def test_unanchored_bundle_verifies_but_says_so(proven: tuple[World, str, dict[str, Any]]) -> None:
    result = verify_bundle(bundle_to_text(proven[2]))
    assert not result.anchored


def test_wrong_trusted_block_hash_fails(proven: tuple[World, str, dict[str, Any]]) -> None:
    with pytest.raises(BundleError, match="not to the trusted block hash"):
        verify_bundle(bundle_to_text(proven[2]), trusted_block_hash="0x" + "ab" * 32)


def test_bundle_of_an_older_block_proves_the_older_head(world: World, compiled: CompiledContract) -> None:
    loan_id = make_loan(world)
    at = world.ledger.client.block_number()
    old_head = world.ledger.head_of(loan_id)
    world.ledger.record_inspection(world.cast.bank, loan_id=loan_id, kind=1, report_hash=h("review"))
    bundle = bundle_of(world, compiled, loan_id, block=at)
    result = verify_bundle(bundle_to_text(bundle), client=world.ledger.client)
    assert result.head == old_head != world.ledger.head_of(loan_id)
    assert result.block_number == at


def _flip(data: bytes, position: int, mask: int) -> bytes:
    flipped = bytearray(data)
    flipped[position] ^= mask
    return bytes(flipped)


@pytest.mark.slow
def test_flipping_any_byte_fails_verification(proven: tuple[World, str, dict[str, Any]]) -> None:
    data = bundle_to_text(proven[2]).encode()
    trusted = proven[2]["header"]["hash"]
    undetected = []
    for mask, stride in ((0x01, 1), (0x20, 5), (0x80, 17)):
        for position in range(0, len(data), stride):
            try:
                verify_bundle(_flip(data, position, mask), trusted_block_hash=trusted)
            except BundleError:
                continue
            undetected.append((position, mask, data[max(0, position - 30) : position + 30]))
    assert undetected == []


def _locate(data: bytes, needle: str, occurrence: int = 0) -> int:
    start = -1
    for _ in range(occurrence + 1):
        start = data.index(needle.encode(), start + 1)
    return start


@pytest.mark.parametrize(
    ("needle", "offset", "where"),
    [
        ('"stateRoot":"0x', 19, "bundle.header: keccak256(rlp(header))"),
        ('"timestamp":"0x', 15, "bundle.header"),
        ('"codeHash":"0x', 19, "bundle.accountProof"),
        ('"storageHash":"0x', 21, "bundle.accountProof"),
        ('"key":"0x', 11, "bundle.storageProof.key"),
        ('"head": "0x', 20, "bundle.head: the storage proof shows"),
    ],
)
def test_flipped_proof_fields_are_located(
    proven: tuple[World, str, dict[str, Any]], needle: str, offset: int, where: str
) -> None:
    data = bundle_to_text(proven[2]).encode()
    position = _locate(data, needle) + offset
    # Another hex digit (not a bit flip, which turns 'a' or 'f' into a non-hex character and would be caught
    # earlier, by the syntax check, with another message): the value stays well-formed but wrong.
    changed = bytearray(data)
    changed[position] = ord("0") if data[position] != ord("0") else ord("1")
    with pytest.raises(BundleError) as info:
        verify_bundle(bytes(changed), trusted_block_hash=proven[2]["header"]["hash"])
    assert info.value.message.startswith(where), info.value.message


def _edit(bundle: dict[str, Any], change: Any) -> str:
    doc = json.loads(bundle_to_text(bundle))
    change(doc)
    return bundle_to_text(doc)


def test_changed_amount_breaks_the_hash_chain_at_that_event(
    proven: tuple[World, str, dict[str, Any]],
) -> None:
    _, _, bundle = proven
    text = _edit(bundle, lambda d: d["events"][2]["args"].update(amount="10000001"))
    with pytest.raises(BundleError, match=r"^bundle\.events\[2\]: hash chain breaks at this Paid"):
        verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])


def test_changed_payee_breaks_the_hash_chain_at_that_event(proven: tuple[World, str, dict[str, Any]]) -> None:
    _, _, bundle = proven
    text = _edit(bundle, lambda d: d["events"][1]["args"].update(payee="0x" + "11" * 20))
    with pytest.raises(BundleError, match=r"^bundle\.events\[1\]: hash chain breaks at this Disbursed"):
        verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])


def test_dropped_last_event_is_caught_by_the_proven_head(proven: tuple[World, str, dict[str, Any]]) -> None:
    _, _, bundle = proven
    text = _edit(bundle, lambda d: d["events"].pop())
    with pytest.raises(BundleError, match="events are missing or were added"):
        verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])


def test_dropped_middle_event_breaks_the_chain_after_it(proven: tuple[World, str, dict[str, Any]]) -> None:
    _, _, bundle = proven
    text = _edit(bundle, lambda d: d["events"].pop(3))  # LotConfirmed
    with pytest.raises(BundleError, match=r"^bundle\.events\[3\]: hash chain breaks at this RiskClassified"):
        verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])


def test_moved_event_position_is_caught_by_its_digest(proven: tuple[World, str, dict[str, Any]]) -> None:
    _, _, bundle = proven
    text = _edit(bundle, lambda d: d["events"][4].update(transactionHash="0x" + "22" * 32))
    with pytest.raises(BundleError, match=r"^bundle\.events\[4\]\.digest"):
        verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])


def test_forged_position_with_a_fresh_digest_is_caught_by_a_node(
    proven: tuple[World, str, dict[str, Any]], client: ChainClient
) -> None:
    """Digests catch corruption, not forgery: a forger recomputes them. A node anchors the positions."""
    from ledger.audit.bundle import _digest

    _, _, bundle = proven

    def forge(doc: dict[str, Any]) -> None:
        doc["events"][4]["transactionHash"] = "0x" + "22" * 32
        doc["events"][4]["digest"] = _digest(doc["events"][4])
        doc["digest"] = _digest(doc)

    text = _edit(bundle, forge)
    verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])  # offline: positions are not proven
    with pytest.raises(BundleError, match=r"^bundle\.events\[4\]\.transactionHash: the node says"):
        verify_bundle(text, client=client)


def test_bundle_of_another_loans_head_fails(world: World, compiled: CompiledContract) -> None:
    """Swapping in the proof of another loan (a valid proof, wrong key) is refused."""
    loan_id = make_loan(world)
    other = open_loan(world, "other")
    mine = bundle_of(world, compiled, loan_id)
    theirs = bundle_of(world, compiled, other)

    def swap(doc: dict[str, Any]) -> None:
        doc["header"] = theirs["header"]
        doc["accountProof"] = theirs["accountProof"]
        doc["storageProof"] = theirs["storageProof"]

    with pytest.raises(BundleError, match=r"^bundle\.storageProof\.key"):
        verify_bundle(_edit(mine, swap), trusted_block_hash=theirs["header"]["hash"])


def test_reformatted_bundle_is_not_canonical(proven: tuple[World, str, dict[str, Any]]) -> None:
    _, _, bundle = proven
    text = json.dumps(json.loads(bundle_to_text(bundle)), indent=4) + "\n"
    with pytest.raises(BundleError, match=r"^byte 4 \(line 2 column 3\): the file is not in canonical form"):
        verify_bundle(text, trusted_block_hash=bundle["header"]["hash"])


def test_truncated_bundle_names_the_json_position(proven: tuple[World, str, dict[str, Any]]) -> None:
    text = bundle_to_text(proven[2])
    with pytest.raises(BundleError, match=r"^line \d+ column \d+ \(byte \d+\): not valid JSON"):
        verify_bundle(text[: len(text) // 2])


def test_chain_step_equals_abi_encode_for_every_event_kind(compiled: CompiledContract) -> None:
    """The word-level encoder against the rule as written: keccak256(abi.encode(previous, kind, fields))."""
    import random

    from eth_abi import encode
    from eth_utils import keccak

    from ledger.audit.bundle import chain_step
    from ledger.protocol.hashchain import LOT_CREATING_EVENTS, EventKind, HashChain

    rule = HashChain(compiled.abi)
    rng = random.Random(5)
    for name, inputs in EVENT_INPUTS.items():
        if name == "TrailAttested":
            continue
        for _ in range(20):
            args: dict[str, Any] = {}
            for field, abi_type, _ in inputs:
                if abi_type == "bool":
                    args[field] = rng.random() < 0.5
                elif abi_type.startswith("uint"):
                    args[field] = rng.randrange(1 << int(abi_type[4:]))
                elif abi_type == "address":
                    args[field] = "0x" + rng.randbytes(20).hex()
                else:
                    args[field] = "0x" + rng.randbytes(int(abi_type[5:])).hex()
            previous = "0x" + rng.randbytes(32).hex()
            hashed = [
                (f, t)
                for f, t, _ in inputs
                if f != "head" and not (f == "lotId" and name in LOT_CREATING_EVENTS)
            ]
            values = [bytes.fromhex(args[f][2:]) if t.startswith("bytes") else args[f] for f, t in hashed]
            preimage = encode(
                ["bytes32", "uint8", *(t for _, t in hashed)],
                [bytes.fromhex(previous[2:]), int(EventKind[name]), *values],
            )
            expected = "0x" + keccak(preimage).hex()
            assert chain_step(previous, name, args) == rule.step(previous, name, args) == expected, name
