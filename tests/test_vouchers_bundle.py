"""A voucher's proof bundle (issue 22): built from the node, verified offline against a trusted block hash and
the pinned deployment record (`fundflow verify-bundle`), and refused, naming the place, when a payload, the
head or the pinned contract is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import h
from typer.testing import CliRunner
from voucher_support import DAY, Chain, make_chain

from ledger.audit.bundle import (
    VOUCHER_HEADS_SLOT,
    LedgerPin,
    build_voucher_bundle,
    bundle_to_text,
    heads_slot,
    verify_bundle,
    write_bundle,
)
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract, load_contract
from ledger.errors import BundleError


@pytest.fixture
def sc(private_client: ChainClient, compiled: CompiledContract) -> Chain:
    chain = make_chain(private_client, compiled)
    chain.set_line()
    return chain


def _life(sc: Chain) -> str:
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("bundle", days=5)
    (p2,) = v.new_parts(v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 70_000_00)]))
    v.split_transfer(c.supplier2, vid, p2, [(c.subsupplier.address, 20_000_00)])
    v.request_financing(c.supplier2, voucher_id=vid, part_id=p2, bank_org=c.bank_org, discount_rate_bps=420)
    v.accept_financing(c.bank, voucher_id=vid, part_id=p2, payment_ref=h("pay"))
    sc.advance(6 * DAY)
    v.settle(sc.core, voucher_id=vid, part_id=p2, payment_ref=h("settle"))
    return vid


def test_the_pinned_heads_slot_is_the_compiled_contracts() -> None:
    assert heads_slot(load_contract("SupplyChainVouchers").storage_layout) == VOUCHER_HEADS_SLOT


def test_a_voucher_bundle_verifies_offline_and_through_the_cli(sc: Chain, tmp_path: Path) -> None:
    vid = _life(sc)
    bundle = build_voucher_bundle(sc.vouchers, vid, from_block=sc.deployment.block_number)
    text = bundle_to_text(bundle)
    block_hash = bundle["header"]["hash"]
    pin = LedgerPin.of_deployment(sc.deployment)
    result = verify_bundle(text, trusted_block_hash=block_hash, pin=pin)
    assert result.proven and result.subject == "voucher" and result.loan_id == vid
    assert result.head == sc.vouchers.head_of(vid)
    assert [e.name for e in result.events] == [
        "VoucherIssued",
        "PartTransferred",
        "PartTransferred",
        "FinancingRequested",
        "PartFinanced",
        "PartSettled",
    ]
    # with a node: positions checked too
    assert verify_bundle(text, client=sc.client, pin=pin).positions_checked

    path, record = tmp_path / "voucher.bundle.json", tmp_path / "deployment.json"
    write_bundle(bundle, path)
    sc.deployment.save(record)
    from fundflow.cli.main import app

    out = CliRunner().invoke(
        app, ["verify-bundle", str(path), "--block-hash", block_hash, "--deployment", str(record), "--json"]
    )
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert (body["subject"], body["loan_id"], body["proven"]) == ("voucher", vid, True)
    # the ledger's address alone does not pin a voucher contract
    out = CliRunner().invoke(
        app, ["verify-bundle", str(path), "--block-hash", block_hash, "--ledger", sc.deployment.address]
    )
    assert out.exit_code == 1 and "voucher contract you pinned" in out.output


def test_a_tampered_voucher_bundle_is_refused_naming_the_place(sc: Chain) -> None:
    vid = _life(sc)
    bundle = build_voucher_bundle(sc.vouchers, vid, from_block=sc.deployment.block_number)
    block_hash = bundle["header"]["hash"]
    pin = LedgerPin.of_deployment(sc.deployment)

    forged = json.loads(bundle_to_text(bundle))
    forged["events"][1]["args"]["amount"] = str(int(forged["events"][1]["args"]["amount"]) + 1)
    with pytest.raises(BundleError, match=r"bundle\.events\[1\]: hash chain breaks at this PartTransferred"):
        verify_bundle(bundle_to_text(forged), trusted_block_hash=block_hash, pin=pin)

    dropped = json.loads(bundle_to_text(bundle))
    del dropped["events"][-1]
    with pytest.raises(BundleError, match=r"bundle\.events: the trail's payloads give head"):
        verify_bundle(bundle_to_text(dropped), trusted_block_hash=block_hash, pin=pin)

    other = json.loads(bundle_to_text(bundle))
    other["head"] = "0x" + "11" * 32
    with pytest.raises(BundleError, match=r"bundle\.head: the storage proof shows _heads\[voucherId\]"):
        verify_bundle(bundle_to_text(other), trusted_block_hash=block_hash, pin=pin)

    with pytest.raises(BundleError, match="voucher contract you pinned"):
        verify_bundle(
            bundle_to_text(bundle), trusted_block_hash=block_hash, pin=LedgerPin(sc.deployment.address)
        )
    with pytest.raises(BundleError, match="not to the trusted block hash"):
        verify_bundle(bundle_to_text(bundle), trusted_block_hash="0x" + "22" * 32, pin=pin)
