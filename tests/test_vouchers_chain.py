"""Supply-chain vouchers on a real chain, contract level: a voucher's whole life (credit line, 确权, a
three-level split and transfer, financing one part at a discount, settlement of every part at maturity),
the credit line enforced, every wrong-role action refused with its decoded custom error, the pause, the
discount formula, and the voucher's hash chain recomputed from its events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import h, reverts
from voucher_support import DAY, FACE, LINE_LIMIT, Chain, make_chain

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import ENTERPRISE_ROLE, LENDER_ROLE
from ledger.chain.vouchers import discount
from ledger.protocol.codes import PartState
from ledger.protocol.hashchain import ZERO_HEAD


@pytest.fixture
def sc(private_client: ChainClient, compiled: CompiledContract) -> Iterator[Chain]:
    """A fresh ledger + voucher contract on the module's own node (these tests move its clock)."""
    chain = make_chain(private_client, compiled)
    chain.set_line()
    yield chain


def _events(sc: Chain, voucher_id: str) -> list:
    client = sc.client
    logs = client.get_logs(
        sc.vouchers.address,
        sc.deployment.vouchers_block_number,
        client.block_number(),
        topics=[None, voucher_id],
    )
    return sc.vouchers.events.decode_all(logs)


def test_a_vouchers_whole_life(sc: Chain) -> None:
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("life", FACE, days=90)
    assert v.credit_line_of(sc.core_org).outstanding == FACE
    state = v.get_voucher(vid)
    assert (state.core_org, state.face_value, state.currency) == (sc.core_org, FACE, "CNY")
    assert v.get_part(vid, 1) == (c.supplier.address, FACE, PartState.HELD)

    # tier 1 -> tier 2 (two pieces in one call), tier 2 -> tier 3
    r = v.split_transfer(
        c.supplier, vid, 1, [(c.supplier2.address, 100_000_00), (c.subsupplier.address, 50_000_00)]
    )
    p2, p3 = v.new_parts(r)
    assert p2 == int(r.events[0].args["head"][-8:], 16)  # a new part's number is its head's low 32 bits
    (p4,) = v.new_parts(v.split_transfer(c.supplier2, vid, p2, [(c.subsupplier.address, 40_000_00)]))
    assert v.get_part(vid, 1).remaining == 150_000_00
    assert v.get_part(vid, p2).remaining == 60_000_00
    assert v.get_part(vid, p4) == (c.subsupplier.address, 40_000_00, PartState.HELD)
    remaining = sum(v.get_part(vid, p).remaining for p in (1, p2, p3, p4))
    assert remaining == FACE  # face value conserved across splits

    # the tier-3 supplier finances part 4 at Bank A: 4.5 % a year
    v.request_financing(c.subsupplier, voucher_id=vid, part_id=p4, bank_org=c.bank_org, discount_rate_bps=450)
    assert v.get_part(vid, p4).state == PartState.FINANCING_REQUESTED
    assert v.financing_request_of(vid, p4) == (c.bank_org, 450)  # the rate rides in the part's word
    r = v.accept_financing(c.bank2, voucher_id=vid, part_id=p4, payment_ref=h("pay:discount"))
    financed = r.event("PartFinanced").args
    block_time = sc.client.get_header(r.block_number).timestamp
    days, interest = discount(40_000_00, 450, v.get_voucher(vid).maturity - block_time)
    assert (financed["discountDays"], financed["interest"]) == (days, interest)
    assert days == 90 and interest == 45_000  # 40,000.00 × 4.5 % × 90 / 360 = 450.00 yuan
    assert financed["paid"] == 40_000_00 - interest and financed["seller"] == c.subsupplier.address
    assert v.get_part(vid, p4) == (c.bank2.address, 40_000_00, PartState.FINANCED)
    assert v.financing_request_of(vid, p4) == ("0x" + "00" * 32, 0)

    # maturity: the core enterprise settles every part with something left, to whoever holds it
    with reverts(
        "VoucherNotMatured", voucherId=vid, maturity=v.get_voucher(vid).maturity, nowTime=sc.now() + 1
    ):
        v.settle(sc.core, voucher_id=vid, part_id=1, payment_ref=h("settle:early"))
    sc.advance(91 * DAY)
    paid_to = {}
    for part in (1, p2, p3, p4):
        r = v.settle(sc.core, voucher_id=vid, part_id=part, payment_ref=h(f"settle:{part}"))
        e = r.event("PartSettled").args
        paid_to[part] = (e["holder"], e["amount"])
    assert paid_to == {
        1: (c.supplier.address, 150_000_00),
        p2: (c.supplier2.address, 60_000_00),
        p3: (c.subsupplier.address, 50_000_00),
        p4: (c.bank2.address, 40_000_00),  # the bank that financed it
    }
    assert v.get_voucher(vid).settled == FACE
    assert v.credit_line_of(sc.core_org).outstanding == 0  # settling frees the line
    with reverts("VoucherPartWrongState", voucherId=vid, partId=1, state=PartState.SETTLED):
        v.settle(sc.core, voucher_id=vid, part_id=1, payment_ref=h("settle:again"))

    # the chain of heads recomputes from the events, and ends at headOf
    head = ZERO_HEAD
    events = _events(sc, vid)
    assert [e.name for e in events][:2] == ["VoucherIssued", "PartTransferred"]
    for e in events:
        head = v.hash_chain.verify(head, e.name, e.args, (e.raw_topics, e.raw_data))
    assert head == v.head_of(vid) == v.get_voucher(vid).head


def test_the_credit_line_is_enforced_and_settling_frees_it(sc: Chain) -> None:
    v = sc.vouchers
    first = sc.issue("line-1", 700_000_00, days=30)
    with reverts(
        "CreditLineExceeded",
        coreOrg=sc.core_org,
        outstanding=700_000_00,
        limit=LINE_LIMIT,
        faceValue=300_000_01,
    ):
        sc.issue("line-2", 300_000_01)
    sc.issue("line-3", 300_000_00)  # exactly up to the line
    with reverts(
        "CreditLineBelowOutstanding", coreOrg=sc.core_org, outstanding=LINE_LIMIT, limit=LINE_LIMIT - 1
    ):
        sc.set_line(LINE_LIMIT - 1)
    with reverts(
        "CreditLineExceeded", coreOrg=sc.core_org, outstanding=LINE_LIMIT, limit=LINE_LIMIT, faceValue=1
    ):
        sc.issue("line-4", 1)
    sc.advance(31 * DAY)
    v.settle(sc.core, voucher_id=first, part_id=1, payment_ref=h("settle"))
    assert v.credit_line_of(sc.core_org).outstanding == 300_000_00
    sc.issue("line-5", 700_000_00)  # the settled 700,000.00 is available again
    # another bank cannot take over the line; an expired line issues nothing
    with reverts("CreditLineHeldByOtherBank", coreOrg=sc.core_org, bankOrg=sc.cast.bank_org):
        sc.vouchers.set_credit_line(
            sc.cast.other_bank, core_org=sc.core_org, limit=1, expiry=sc.now() + DAY, terms_hash=h("t")
        )


def test_an_expired_or_missing_line_refuses_issue(sc: Chain) -> None:
    sc.set_line(days=1)
    sc.advance(2 * DAY)
    line = sc.vouchers.credit_line_of(sc.core_org)
    with reverts("CreditLineExpired", coreOrg=sc.core_org, expiry=line.expiry):
        sc.issue("late")
    # the supplier's organisation has no line of its own
    with reverts("CreditLineNotFound", coreOrg=h("org:supplier")):
        sc.vouchers.issue_voucher(
            sc.cast.supplier,
            voucher_id=h("v:nl"),
            holder=sc.cast.subsupplier.address,
            face_value=1,
            maturity=sc.now() + DAY,
            currency="CNY",
            invoice_hash=h("i"),
        )


def test_every_wrong_role_action_is_refused_with_its_error(sc: Chain) -> None:
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("roles", days=60)
    # a line is set by a lender only
    with reverts("VoucherMissingRole", account=c.supplier.address, role=LENDER_ROLE):
        v.set_credit_line(c.supplier, core_org=sc.core_org, limit=1, expiry=sc.now() + DAY, terms_hash=h("t"))
    # 确权 is the core enterprise's: a bank (no enterprise role) or an unregistered key cannot issue
    for who in (c.bank, c.stranger, c.outsider):
        with reverts("VoucherMissingRole", account=who.address, role=ENTERPRISE_ROLE):
            v.issue_voucher(
                who, voucher_id=h("v:x"), holder=c.supplier.address, face_value=1,
                maturity=sc.now() + DAY, currency="CNY", invoice_hash=h("i"),
            )  # fmt: skip
    # only the holder splits, transfers and asks for financing
    for who in (sc.core, c.supplier2, c.bank, c.stranger):
        with reverts("VoucherNotPartHolder", voucherId=vid, partId=1, account=who.address):
            v.split_transfer(who, vid, 1, [(who.address, 1)])
        with reverts("VoucherNotPartHolder", voucherId=vid, partId=1, account=who.address):
            v.request_financing(who, voucher_id=vid, part_id=1, bank_org=c.bank_org, discount_rate_bps=300)
    v.request_financing(c.supplier, voucher_id=vid, part_id=1, bank_org=c.bank_org, discount_rate_bps=300)
    # only a lender of the bank asked accepts: not the other bank, not an enterprise of Bank A's choosing
    for who in (c.other_bank, c.supplier, sc.core, c.stranger):
        with reverts("VoucherNotRequestedBank", voucherId=vid, partId=1, account=who.address):
            v.accept_financing(who, voucher_id=vid, part_id=1, payment_ref=h("p"))
    # a part waiting for a bank's answer does not move
    with reverts("VoucherPartWrongState", voucherId=vid, partId=1, state=PartState.FINANCING_REQUESTED):
        v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 1)])
    sc.advance(61 * DAY)
    # only the core enterprise settles
    for who in (c.supplier, c.bank, c.supplier2, c.stranger):
        with reverts("VoucherNotCoreEnterprise", voucherId=vid, account=who.address):
            v.settle(who, voucher_id=vid, part_id=1, payment_ref=h("s"))
    # financing after maturity is refused
    with reverts("VoucherMatured", voucherId=vid, maturity=v.get_voucher(vid).maturity):
        v.accept_financing(c.bank, voucher_id=vid, part_id=1, payment_ref=h("p"))


def test_bad_arguments_are_refused(sc: Chain) -> None:
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("args")
    with reverts("VoucherExists", voucherId=vid):
        sc.issue("args")
    with reverts("VoucherInsufficientRemaining", voucherId=vid, partId=1, remaining=FACE, amount=FACE + 1):
        v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, FACE + 1)])
    with reverts("VoucherBadSplit", recipients=0, amounts=0):
        v.split_transfer(c.supplier, vid, 1, [])
    with reverts("VoucherZeroAmount"):
        v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 0)])
    with reverts("VoucherPartNotFound", voucherId=vid, partId=9):
        v.split_transfer(c.supplier, vid, 9, [(c.supplier2.address, 1)])
    with reverts("VoucherInvalidRate", discountRateBps=10_000):
        v.request_financing(
            c.supplier, voucher_id=vid, part_id=1, bank_org=c.bank_org, discount_rate_bps=10_000
        )
    with reverts("VoucherOrganizationNotFound", orgId=h("org:nobody")):
        v.request_financing(
            c.supplier, voucher_id=vid, part_id=1, bank_org=h("org:nobody"), discount_rate_bps=1
        )
    with reverts("VoucherMaturityInPast", maturity=1, nowTime=sc.now() + 1):
        v.issue_voucher(
            sc.core, voucher_id=h("v:past"), holder=c.supplier.address, face_value=1, maturity=1,
            currency="CNY", invoice_hash=h("i"),
        )  # fmt: skip
    # a part split down to nothing has nothing to settle
    v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, FACE)])
    sc.advance(91 * DAY)
    with reverts("VoucherNothingToSettle", voucherId=vid, partId=1):
        v.settle(sc.core, voucher_id=vid, part_id=1, payment_ref=h("s"))
    assert v.financing_request_of(vid, 1) == ("0x" + "00" * 32, 0)


def test_a_paused_ledger_stops_every_voucher_write(sc: Chain) -> None:
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("pause")
    sc.world.ledger.pause(c.operator)
    try:
        with reverts("VoucherLedgerPaused"):
            v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 1)])
        with reverts("VoucherLedgerPaused"):
            sc.issue("paused")
        with reverts("VoucherLedgerPaused"):
            sc.set_line()
    finally:
        sc.world.ledger.unpause(c.operator)
    v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 1)])


@pytest.mark.parametrize(
    ("face", "rate", "seconds"),
    [(40_000_00, 450, 90 * DAY), (1, 1, 1), (123_456_789, 375, 45 * DAY + 1), (10**15, 9_999, 720 * DAY)],
)
def test_the_discount_formula_matches_the_contract(sc: Chain, face: int, rate: int, seconds: int) -> None:
    assert sc.vouchers.discount(face, rate, seconds) == discount(face, rate, seconds)


def test_the_split_costs_no_more_gas_than_a_ledger_payment(sc: Chain) -> None:
    """The brief's bound: a split-and-transfer to one recipient costs at most a ledger `pay`, measured as
    `make bench` measures pay (scripts/bench_gas.py): fresh random 32-byte ids and evidence hash, the first
    touch of each slot, the same node."""
    from conftest import disburse_lot, open_loan

    c = sc.cast
    loan = open_loan(sc.world, "gas")
    lot = disburse_lot(sc.world, loan, c.supplier, 1_000_00)
    r_pay = sc.world.ledger.pay(
        c.supplier,
        loan_id=loan,
        from_lot=lot,
        payee=c.supplier2.address,
        amount=1_00,
        purpose=0,
        evidence_hash=h("evidence:gas"),
    )
    vid = sc.issue("gas")
    r_split = sc.vouchers.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 1_00)])
    assert r_split.gas_used <= r_pay.gas_used, (r_split.gas_used, r_pay.gas_used)


def test_the_deployment_record_keeps_the_voucher_contract_and_old_records_still_load(
    private_client: ChainClient, tmp_path: Path
) -> None:
    import dataclasses
    import json

    from eth_account import Account

    from ledger.chain.deploy import Deployment, connect_vouchers, deploy_ledger
    from ledger.errors import DeploymentError

    operator = Account.create()
    deployment = deploy_ledger(private_client, operator, vouchers=True)
    path = tmp_path / "deployment.json"
    deployment.save(path)
    loaded = Deployment.load(path)
    assert loaded == deployment and loaded.addresses == [deployment.address, deployment.vouchers_address]
    loaded.check_chain(private_client)
    assert connect_vouchers(private_client, loaded).ledger_address() == deployment.address
    # a record written before the voucher contract existed loads, and says plainly it has none
    old = {k: v for k, v in dataclasses.asdict(deployment).items() if not k.startswith("vouchers_")}
    path.write_text(json.dumps(old))
    before = Deployment.load(path)
    assert before.vouchers_address is None and before.addresses == [deployment.address]
    with pytest.raises(DeploymentError, match="no supply-chain voucher contract"):
        connect_vouchers(private_client, before)
    # a voucher ABI that does not match its hash is refused
    path.write_text(json.dumps(dataclasses.asdict(deployment) | {"vouchers_abi_hash": "0x" + "00" * 32}))
    with pytest.raises(DeploymentError, match="voucher-contract ABI"):
        Deployment.load(path)
