"""Bundles are pinned to the ledger the auditor expects: the issue's forgery (a second deployment of the same
contract code, reusing a real loan's id, disbursing the whole principal to an unrelated address) produces a
bundle that is internally sound, anchored and of the same code hash, and is refused once the auditor pins the
deployment record (chain id, genesis hash, ledger address), offline and with a node."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import World, h, make_world
from test_bundle import bundle_of, make_loan
from typer.testing import CliRunner

from ledger.audit.bundle import (
    HEADS_SLOT,
    LedgerPin,
    _digest,
    bundle_to_text,
    heads_slot,
    verify_bundle,
    write_bundle,
)
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.errors import BundleError

PRINCIPAL = 1_000_000_00  # conftest.open_loan's default


def _forge(world: World, compiled: CompiledContract, loan_id: str) -> tuple[World, dict[str, Any]]:
    """A second copy of the ledger on the same chain, where the forger opens the real loan's id and pays
    the whole principal to an unrelated address; its bundle of that loan."""
    forger = make_world(world.ledger.client, compiled)
    forger.ledger.open_loan(
        forger.cast.bank,
        loan_id=loan_id,
        borrower=forger.cast.borrower.address,
        borrower_ref=h("borrower-ref:bundle"),
        principal=PRINCIPAL,
        currency="CNY",
        allowed_purposes=(1, 3, 4),
        maturity=int(time.time()) + 365 * 86400,
        terms_hash=h("terms:bundle"),
    )
    forger.ledger.disburse(
        forger.cast.bank,
        loan_id=loan_id,
        payee=forger.cast.outsider.address,
        amount=PRINCIPAL,
        purpose=1,
        evidence_hash=h("nothing"),
    )
    return forger, bundle_of(forger, compiled, loan_id)


@pytest.fixture
def forgery(world: World, compiled: CompiledContract) -> tuple[World, dict[str, Any], dict[str, Any]]:
    loan_id = make_loan(world)
    forger, forged = _forge(world, compiled, loan_id)
    real = bundle_of(world, compiled, loan_id)
    return forger, real, forged


def test_forged_deployment_bundle_is_sound_and_anchored_but_not_proven_without_a_pin(
    forgery: tuple[World, dict[str, Any], dict[str, Any]], client: ChainClient
) -> None:
    _, real, forged = forgery
    # What docs/bundle-format.md used to tell auditors to compare: every copy of the code shares it.
    assert forged["accountProof"]["codeHash"] == real["accountProof"]["codeHash"]
    assert forged["loanId"] == real["loanId"] and forged["contract"] != real["contract"]
    offline = verify_bundle(bundle_to_text(forged), trusted_block_hash=forged["header"]["hash"])
    online = verify_bundle(bundle_to_text(forged), client=client)
    for result in (offline, online):
        assert result.anchored and not result.pinned and not result.proven
    assert offline.events[1].args["payee"] != real["events"][1]["args"]["payee"]


def test_forged_deployment_bundle_is_refused_for_the_pinned_ledger_offline_and_online(
    world: World, forgery: tuple[World, dict[str, Any], dict[str, Any]], client: ChainClient
) -> None:
    _, real, forged = forgery
    pin = LedgerPin.of_deployment(world.deployment)
    refusal = (
        rf"^bundle\.contract: the bundle proves the trail kept by contract {forged['contract']}, but the "
        rf"ledger you pinned is {world.ledger.address.lower()} \(the deployment record\): this is not the "
        "ledger's trail"
    )
    with pytest.raises(BundleError, match=refusal):
        verify_bundle(bundle_to_text(forged), trusted_block_hash=forged["header"]["hash"], pin=pin)
    with pytest.raises(BundleError, match=refusal):
        verify_bundle(bundle_to_text(forged), client=client, pin=pin)
    # The real ledger's bundle of the same loan, with the same pin, is proven.
    result = verify_bundle(bundle_to_text(real), client=client, pin=pin)
    assert result.proven and result.pinned_by == (
        f"ledger {world.ledger.address.lower()}, chain {world.deployment.chain_id}, genesis "
        f"{world.deployment.genesis_hash} (the deployment record)"
    )


def test_verify_bundle_command_refuses_the_forgery_and_says_when_no_ledger_was_pinned(
    world: World, forgery: tuple[World, dict[str, Any], dict[str, Any]], tmp_path: Path, client: ChainClient
) -> None:
    from fundflow.cli.main import app

    _, _, forged = forgery
    path, record = tmp_path / "forged.json", tmp_path / "deployment.json"
    write_bundle(forged, path)
    world.deployment.save(record)
    runner = CliRunner()
    block_hash = forged["header"]["hash"]

    result = runner.invoke(app, ["verify-bundle", str(path), "--block-hash", block_hash])
    flat = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert (
        f"NOT PINNED: no expected ledger was given, so this proves the trail of contract {forged['contract']}"
        in flat
    )
    assert "--deployment FILE" in flat and "PROVEN" not in flat.replace("NOT PINNED", "")

    for pin in (["--deployment", str(record)], ["--ledger", world.ledger.address]):
        for anchor in (["--block-hash", block_hash], ["--rpc", client.rpc_url]):
            result = runner.invoke(app, ["verify-bundle", str(path), *anchor, *pin])
            flat = " ".join(result.output.split())
            assert result.exit_code == 1, (pin, anchor, result.output)
            assert "this is not the ledger's trail" in flat and "PROVEN" not in flat


def test_heads_slot_is_pinned_by_the_verifier_not_taken_from_the_bundle(
    world: World, compiled: CompiledContract
) -> None:
    assert heads_slot(compiled.storage_layout) == HEADS_SLOT
    loan_id = make_loan(world)
    doc = json.loads(bundle_to_text(bundle_of(world, compiled, loan_id)))
    doc["headsSlot"] = "0x" + (3).to_bytes(32, "big").hex()
    doc["digest"] = _digest(doc)
    wrong_slot = r"^bundle\.headsSlot: 0x0+3 is not the ledger's `_heads` slot \(2\)"
    with pytest.raises(BundleError, match=wrong_slot):
        verify_bundle(bundle_to_text(doc), trusted_block_hash=doc["header"]["hash"])


def test_pin_of_another_chain_or_genesis_is_refused(
    world: World, compiled: CompiledContract, client: ChainClient
) -> None:
    loan_id = make_loan(world)
    text = bundle_to_text(bundle_of(world, compiled, loan_id))
    address = world.ledger.address
    other_chain = r"^bundle\.chainId: the bundle is of chain 31337, the pinned ledger"
    with pytest.raises(BundleError, match=other_chain):
        verify_bundle(text, pin=LedgerPin(address, chain_id=1, source="a record"))
    other_genesis = LedgerPin(address, 31337, "0x" + "ab" * 32, "a record")
    # Offline a genesis hash cannot be checked (the trusted block hash is what ties the bundle to the chain).
    verify_bundle(text, pin=other_genesis)
    with pytest.raises(BundleError, match=r"^--rpc: the node at .* has genesis 0x[0-9a-f]{64}, the pinned"):
        verify_bundle(text, client=client, pin=other_genesis)
    with pytest.raises(BundleError, match="expected ledger address 'bank' is not an address"):
        LedgerPin("bank")


def test_verify_bundle_command_refuses_two_pins_and_a_missing_record(world: World, tmp_path: Path) -> None:
    from fundflow.cli.main import app

    runner = CliRunner()
    record = tmp_path / "deployment.json"
    world.deployment.save(record)
    both = ["--block-hash", "0x" + "ab" * 32, "--ledger", world.ledger.address, "--deployment", str(record)]
    result = runner.invoke(app, ["verify-bundle", str(tmp_path / "b.json"), *both])
    assert result.exit_code == 1
    assert "--ledger and --deployment both name the expected ledger" in " ".join(result.output.split())
    missing = ["--block-hash", "0x" + "ab" * 32, "--deployment", str(tmp_path / "nowhere.json")]
    result = runner.invoke(app, ["verify-bundle", str(tmp_path / "b.json"), *missing])
    assert result.exit_code == 1 and "no deployment record at" in " ".join(result.output.split())
