"""Success paths of every ledger function: the exact events each emits and the state it leaves.

Every loan event is also checked against the hash chain: its head must be `HashChain.step` of the previous
head and its own payload, and must be what `headOf` answers afterwards. Lot ids are predicted the same way
before the transaction, so a wrong encoding or a wrong field shows up as a wrong id.
"""

from __future__ import annotations

import pytest
from conftest import (
    SCENE_CHILD_AMOUNT,
    SCENE_LOT_AMOUNT,
    SCENE_PRINCIPAL,
    ZERO_HASH,
    Scene,
    World,
    chain_time,
    disburse_lot,
    h,
    loan_events,
    open_loan,
    pay_lot,
    reverts,
)
from eth_account import Account

from ledger.chain.client import TxResult
from ledger.chain.contract import (
    AUDITOR_ROLE,
    ENTERPRISE_ROLE,
    LENDER_ROLE,
    LoanStatus,
    LotState,
    PaymentSpec,
    RiskClass,
    purpose_mask,
)
from ledger.protocol.events import DecodedEvent
from ledger.protocol.purposes import Purpose

ALLOWED = (Purpose.RAW_MATERIALS, Purpose.EQUIPMENT, Purpose.WAGES)  # conftest.DEFAULT_PURPOSES
MASK = purpose_mask(ALLOWED)


def only_event(result: TxResult) -> DecodedEvent:
    """The transaction's single event (asserting it emitted exactly one)."""
    assert len(result.events) == 1, [e.name for e in result.events]
    return result.events[0]


def assert_extends(world: World, loan_id: str, previous_head: str, event: DecodedEvent) -> str:
    """The event's head follows from `previous_head` by the documented rule and is the loan's head now."""
    head = world.ledger.hash_chain.verify(previous_head, event.name, event.args)
    assert head != previous_head
    assert world.ledger.head_of(loan_id) == head
    assert world.ledger.get_loan(loan_id).head == head
    return head


def predicted_lot(world: World, loan_id: str, event_name: str, **payload: object) -> str:
    """The id the next lot-creating event with `payload` will get: the head it produces."""
    return world.ledger.hash_chain.step(world.ledger.head_of(loan_id), event_name, payload)


# ---------------------------------------------------------------- participants


def test_register_organization_emits_event_and_makes_the_organization_exist(world: World) -> None:
    org = h("org:new-bank")
    assert not world.ledger.organization_exists(org)
    event = only_event(world.ledger.register_organization(world.cast.operator, org, h("profile:new-bank")))
    assert (event.name, event.args) == (
        "OrganizationRegistered",
        {"orgId": org, "profileHash": h("profile:new-bank")},
    )
    assert event.address == world.ledger.address
    assert world.ledger.organization_exists(org)


def test_add_account_emits_event_and_attaches_the_account_to_its_organization(world: World) -> None:
    account = Account.create().address
    assert world.ledger.organization_of(account) == ZERO_HASH
    event = only_event(world.ledger.add_account(world.cast.operator, world.cast.bank_org, account))
    assert (event.name, event.args) == ("AccountAdded", {"orgId": world.cast.bank_org, "account": account})
    assert world.ledger.organization_of(account) == world.cast.bank_org
    assert not world.ledger.has_role(LENDER_ROLE, account)  # an account gets no role by being added


def test_remove_account_detaches_it_and_revokes_every_business_role_it_held(world: World) -> None:
    cast, ledger = world.cast, world.ledger
    # An account holding two business roles: both go, each with its RoleRevoked event, then AccountRemoved.
    ledger.grant_role(cast.operator, AUDITOR_ROLE, cast.bank2.address)
    result = ledger.remove_account(cast.operator, cast.bank2.address)
    assert [(e.name, e.args) for e in result.events] == [
        (
            "RoleRevoked",
            {"role": LENDER_ROLE, "account": cast.bank2.address, "sender": cast.operator.address},
        ),
        (
            "RoleRevoked",
            {"role": AUDITOR_ROLE, "account": cast.bank2.address, "sender": cast.operator.address},
        ),
        ("AccountRemoved", {"orgId": cast.bank_org, "account": cast.bank2.address}),
    ]
    assert ledger.organization_of(cast.bank2.address) == ZERO_HASH
    for role in (LENDER_ROLE, ENTERPRISE_ROLE, AUDITOR_ROLE):
        assert not ledger.has_role(role, cast.bank2.address)
    # The colleague and the organisation are untouched; the account can be registered again.
    assert ledger.has_role(LENDER_ROLE, cast.bank.address)
    ledger.add_account(cast.operator, cast.bank_org, cast.bank2.address)
    assert ledger.organization_of(cast.bank2.address) == cast.bank_org


def test_remove_account_without_roles_emits_only_account_removed(world: World) -> None:
    result = world.ledger.remove_account(world.cast.operator, world.cast.outsider.address)
    assert [e.name for e in result.events] == ["AccountRemoved"]


def test_grant_role_emits_role_granted_and_the_account_holds_it(world: World) -> None:
    cast, ledger = world.cast, world.ledger
    event = only_event(ledger.grant_role(cast.operator, ENTERPRISE_ROLE, cast.outsider.address))
    assert (event.name, event.args) == (
        "RoleGranted",
        {"role": ENTERPRISE_ROLE, "account": cast.outsider.address, "sender": cast.operator.address},
    )
    assert ledger.has_role(ENTERPRISE_ROLE, cast.outsider.address)


def test_revoke_role_emits_role_revoked_and_the_account_no_longer_holds_it(world: World) -> None:
    cast, ledger = world.cast, world.ledger
    event = only_event(ledger.revoke_role(cast.operator, ENTERPRISE_ROLE, cast.supplier.address))
    assert (event.name, event.args) == (
        "RoleRevoked",
        {"role": ENTERPRISE_ROLE, "account": cast.supplier.address, "sender": cast.operator.address},
    )
    assert not ledger.has_role(ENTERPRISE_ROLE, cast.supplier.address)
    assert ledger.organization_of(cast.supplier.address) != ZERO_HASH  # still registered


# ---------------------------------------------------------------- opening and disbursing


def test_open_loan_stores_the_loan_and_emits_loan_opened_with_the_first_head(world: World) -> None:
    cast, ledger = world.cast, world.ledger
    loan_id, maturity = h("loan:open"), chain_time(ledger.client) + 180 * 86400
    result = ledger.open_loan(
        cast.bank2,
        loan_id=loan_id,
        borrower=cast.borrower.address,
        borrower_ref=h("borrower-ref:open"),
        principal=2_500_000_00,
        currency="USD",
        allowed_purposes=ALLOWED,
        maturity=maturity,
        terms_hash=h("terms:open"),
    )
    event = only_event(result)
    head = event.args["head"]
    assert (event.name, event.args) == (
        "LoanOpened",
        {
            "loanId": loan_id,
            "lenderOrg": cast.bank_org,
            "borrower": cast.borrower.address,
            "borrowerRef": h("borrower-ref:open"),
            "principal": 2_500_000_00,
            "currency": "0x" + b"USD".hex(),
            "allowedPurposes": MASK,
            "maturity": maturity,
            "termsHash": h("terms:open"),
            "head": head,
        },
    )
    assert_extends(world, loan_id, ZERO_HASH, event)
    loan = ledger.get_loan(loan_id)
    assert (loan.lender_org, loan.borrower, loan.borrower_ref) == (
        cast.bank_org,
        cast.borrower.address,
        h("borrower-ref:open"),
    )
    assert (loan.principal, loan.disbursed, loan.repaid) == (2_500_000_00, 0, 0)
    assert (loan.allowed_purposes, loan.maturity, loan.currency, loan.terms_hash) == (
        MASK,
        maturity,
        "USD",
        h("terms:open"),
    )
    assert (loan.status, loan.risk_class, loan.head) == (LoanStatus.OPEN, RiskClass.NORMAL, head)


@pytest.mark.parametrize(
    ("payee_name", "purpose", "entrusted", "declared"),
    [
        ("supplier", Purpose.EQUIPMENT, True, True),  # 受托支付: straight to the supplier, declared use
        ("borrower", Purpose.WAGES, False, True),  # to the borrower itself
        ("supplier", Purpose.SECURITIES, True, False),  # recorded and flagged, not refused
        ("borrower", 0, False, False),
    ],
    ids=["entrusted-declared", "to-borrower-declared", "entrusted-undeclared", "to-borrower-undeclared"],
)
def test_disburse_creates_a_lot_for_the_payee_and_flags_entrusted_and_declared_use(
    world: World, payee_name: str, purpose: int, entrusted: bool, declared: bool
) -> None:
    ledger, payee = world.ledger, getattr(world.cast, payee_name)
    loan_id = open_loan(world)
    before = ledger.head_of(loan_id)
    payload = {
        "loanId": loan_id,
        "payee": payee.address,
        "amount": 300_000_00,
        "purpose": purpose,
        "declaredUse": declared,
        "entrusted": entrusted,
        "evidenceHash": h("contract-1"),
    }
    lot_id = predicted_lot(world, loan_id, "Disbursed", **payload)
    result = ledger.disburse(
        world.cast.bank,
        loan_id=loan_id,
        payee=payee.address,
        amount=300_000_00,
        purpose=purpose,
        evidence_hash=h("contract-1"),
    )
    event = only_event(result)
    assert (event.name, event.args) == ("Disbursed", {**payload, "lotId": lot_id})
    assert assert_extends(world, loan_id, before, event) == lot_id
    assert ledger.get_lot(loan_id, lot_id) == LotState(payee.address, 300_000_00, MASK)
    assert ledger.get_loan(loan_id).disbursed == 300_000_00


def test_disburse_may_use_the_whole_principal_over_several_lots(world: World) -> None:
    loan_id = open_loan(world, principal=1_000)
    disburse_lot(world, loan_id, world.cast.supplier, 600)
    last = disburse_lot(world, loan_id, world.cast.supplier2, 400)
    assert world.ledger.get_loan(loan_id).disbursed == 1_000
    assert world.ledger.get_lot(loan_id, last).remaining == 400


# ---------------------------------------------------------------- paying


def test_pay_creates_a_child_lot_and_debits_the_parent(world: World) -> None:
    ledger, cast = world.ledger, world.cast
    loan_id = open_loan(world)
    lot = disburse_lot(world, loan_id, cast.supplier, 500_000)
    before = ledger.head_of(loan_id)
    payload = {
        "loanId": loan_id,
        "payee": cast.subsupplier.address,
        "parentLotId": lot,
        "amount": 120_000,
        "purpose": int(Purpose.RAW_MATERIALS),
        "declaredUse": True,
        "evidenceHash": h("invoice-7"),
    }
    child = predicted_lot(world, loan_id, "Paid", **payload)
    result = ledger.pay(
        cast.supplier,
        loan_id=loan_id,
        from_lot=lot,
        payee=cast.subsupplier.address,
        amount=120_000,
        purpose=Purpose.RAW_MATERIALS,
        evidence_hash=h("invoice-7"),
    )
    event = only_event(result)
    assert (event.name, event.args) == ("Paid", {**payload, "lotId": child})
    assert assert_extends(world, loan_id, before, event) == child
    assert ledger.get_lot(loan_id, lot) == LotState(cast.supplier.address, 380_000, MASK)
    assert ledger.get_lot(loan_id, child) == LotState(cast.subsupplier.address, 120_000, MASK)
    assert ledger.get_loan(loan_id).disbursed == 500_000  # paying moves money inside the loan only


def test_pay_outside_allowed_purposes_is_recorded_with_declared_use_false(scene: Scene) -> None:
    event = scene.ledger.pay(
        scene.cast.supplier,
        loan_id=scene.loan_id,
        from_lot=scene.lot,
        payee=scene.cast.supplier2.address,
        amount=5_000,
        purpose=Purpose.REAL_ESTATE,
    ).event("Paid")
    assert (event.args["purpose"], event.args["declaredUse"]) == (Purpose.REAL_ESTATE, False)
    assert scene.ledger.get_lot(scene.loan_id, event.args["lotId"]).remaining == 5_000


def test_pay_can_spend_a_lot_down_to_zero_and_the_empty_lot_stays(scene: Scene) -> None:
    rest = SCENE_LOT_AMOUNT - SCENE_CHILD_AMOUNT
    pay_lot(scene.world, scene.cast.supplier, scene.loan_id, scene.lot, scene.cast.supplier2, rest)
    assert scene.ledger.get_lot(scene.loan_id, scene.lot) == LotState(scene.cast.supplier.address, 0, MASK)


@pytest.mark.parametrize("lender_name", ["bank", "bank2"])
def test_lender_of_the_loans_organization_may_spend_a_suppliers_lot(scene: Scene, lender_name: str) -> None:
    lender = getattr(scene.cast, lender_name)
    before = scene.ledger.head_of(scene.loan_id)
    event = scene.ledger.pay(
        lender,
        loan_id=scene.loan_id,
        from_lot=scene.lot,
        payee=scene.cast.supplier2.address,
        amount=7_000,
        purpose=3,
    ).event("Paid")
    assert_extends(scene.world, scene.loan_id, before, event)
    assert (event.args["parentLotId"], event.args["payee"]) == (scene.lot, scene.cast.supplier2.address)
    remaining = SCENE_LOT_AMOUNT - SCENE_CHILD_AMOUNT - 7_000
    assert scene.ledger.get_lot(scene.loan_id, scene.lot) == LotState(
        scene.cast.supplier.address, remaining, MASK
    )
    # The new lot belongs to its payee, not to the lender that recorded the payment.
    assert scene.ledger.get_lot(scene.loan_id, event.args["lotId"]).holder == scene.cast.supplier2.address


def test_second_officer_of_the_lenders_bank_services_a_loan_the_first_opened(scene: Scene) -> None:
    cast, ledger, loan_id = scene.cast, scene.ledger, scene.loan_id
    lot = ledger.disburse(
        cast.bank2, loan_id=loan_id, payee=cast.supplier2.address, amount=10_000, purpose=1
    ).event("Disbursed")
    ledger.repay(cast.bank2, loan_id=loan_id, amount=5_000, evidence_hash=h("r"))
    ledger.classify(cast.bank2, loan_id=loan_id, risk_class=RiskClass.SPECIAL_MENTION, reason_hash=h("c"))
    loan = ledger.get_loan(loan_id)
    assert (loan.disbursed, loan.repaid, loan.risk_class) == (
        SCENE_LOT_AMOUNT + 10_000,
        5_000,
        RiskClass.SPECIAL_MENTION,
    )
    assert ledger.get_lot(loan_id, lot.args["lotId"]).holder == cast.supplier2.address


def test_pay_batch_records_every_payment_in_order_and_lots_are_spendable_within_the_batch(
    scene: Scene,
) -> None:
    cast, ledger, loan_id, chain = scene.cast, scene.ledger, scene.loan_id, scene.ledger.hash_chain
    head = ledger.head_of(loan_id)
    # Item 2 spends the lot item 1 creates; item 3 spends the lot item 2 creates: their ids are the heads.
    first_payload = {
        "loanId": loan_id,
        "payee": cast.supplier2.address,
        "parentLotId": scene.lot,
        "amount": 50_000,
        "purpose": 1,
        "declaredUse": True,
        "evidenceHash": h("b1"),
    }
    first = chain.step(head, "Paid", first_payload)
    second_payload = {**first_payload, "payee": cast.borrower.address, "parentLotId": first, "amount": 20_000}
    second_payload.update(purpose=Purpose.SECURITIES, declaredUse=False, evidenceHash=h("b2"))
    second = chain.step(first, "Paid", second_payload)
    third_payload = {
        **second_payload,
        "payee": cast.subsupplier.address,
        "parentLotId": second,
        "amount": 20_000,
    }
    third_payload.update(purpose=3, declaredUse=True, evidenceHash=h("b3"))
    third = chain.step(second, "Paid", third_payload)

    result = ledger.pay_batch(
        cast.bank,  # the lender may spend lots of different holders in one batch
        loan_id=loan_id,
        payments=[
            PaymentSpec(scene.lot, cast.supplier2.address, 50_000, 1, h("b1")),
            PaymentSpec(first, cast.borrower.address, 20_000, Purpose.SECURITIES, h("b2")),
            PaymentSpec(second, cast.subsupplier.address, 20_000, 3, h("b3")),
        ],
    )
    assert [(e.name, e.args) for e in result.events] == [
        ("Paid", {**first_payload, "lotId": first}),
        ("Paid", {**second_payload, "lotId": second}),
        ("Paid", {**third_payload, "lotId": third}),
    ]
    assert ledger.head_of(loan_id) == third
    assert ledger.get_lot(loan_id, scene.lot).remaining == SCENE_LOT_AMOUNT - SCENE_CHILD_AMOUNT - 50_000
    assert ledger.get_lot(loan_id, first) == LotState(cast.supplier2.address, 30_000, MASK)
    assert ledger.get_lot(loan_id, second) == LotState(cast.borrower.address, 0, MASK)
    assert ledger.get_lot(loan_id, third) == LotState(cast.subsupplier.address, 20_000, MASK)


def test_pay_batch_with_one_failing_item_changes_nothing_even_when_mined(scene: Scene) -> None:
    cast, ledger, loan_id = scene.cast, scene.ledger, scene.loan_id
    client = ledger.client
    head = ledger.head_of(loan_id)
    remaining = SCENE_LOT_AMOUNT - SCENE_CHILD_AMOUNT
    good = PaymentSpec(scene.lot, cast.supplier2.address, 1_000, 1)
    would_be_lot = ledger.hash_chain.step(
        head,
        "Paid",
        {"loanId": loan_id, "payee": good.payee, "parentLotId": scene.lot, "amount": 1_000, "purpose": 1,
         "declaredUse": True, "evidenceHash": ZERO_HASH},
    )  # fmt: skip
    items = [
        (bytes.fromhex(p.from_lot[2:]), p.payee, p.amount, p.purpose, bytes(32))
        for p in (good, good, PaymentSpec(scene.lot, cast.borrower.address, remaining, 1))
    ]
    block_before = client.block_number()
    # A fixed gas limit skips the estimate, so the node really executes the batch and mines it as failed.
    with reverts(
        "LedgerInsufficientFunds", lotId=scene.lot, remaining=remaining - 2_000, requested=remaining
    ) as info:
        ledger.transact(cast.supplier, "payBatch", bytes.fromhex(loan_id[2:]), items, gas=2_000_000)
    tx_hash = info.value.__cause__.data["txHash"]  # type: ignore[union-attr]
    receipt = client.wait_for_receipt(tx_hash)
    assert (int(receipt["status"], 16), receipt["logs"]) == (0, [])
    assert client.block_number() == block_before + 1
    assert ledger.head_of(loan_id) == head
    assert ledger.get_lot(loan_id, scene.lot).remaining == remaining
    with reverts("LedgerLotNotFound", loanId=loan_id, lotId=would_be_lot):
        ledger.get_lot(loan_id, would_be_lot)
    # The same first item alone goes through and gets exactly the id the failed batch would have given it.
    event = ledger.pay_batch(cast.supplier, loan_id=loan_id, payments=[good]).event("Paid")
    assert event.args["lotId"] == would_be_lot


# ---------------------------------------------------------------- confirmations


def test_dispute_then_confirm_records_both_and_extends_the_head_each_time(scene: Scene) -> None:
    world, ledger, loan_id, payee = scene.world, scene.ledger, scene.loan_id, scene.cast.subsupplier
    head0 = ledger.head_of(loan_id)
    disputed = only_event(
        ledger.dispute_lot(payee, loan_id=loan_id, lot_id=scene.child_lot, reason_hash=h("short"))
    )
    head1 = assert_extends(world, loan_id, head0, disputed)
    assert (disputed.name, disputed.args) == (
        "LotDisputed",
        {"loanId": loan_id, "lotId": scene.child_lot, "reasonHash": h("short"), "head": head1},
    )
    confirmed = only_event(
        ledger.confirm_lot(payee, loan_id=loan_id, lot_id=scene.child_lot, evidence_hash=h("ok"))
    )
    head2 = assert_extends(world, loan_id, head1, confirmed)
    assert (confirmed.name, confirmed.args) == (
        "LotConfirmed",
        {"loanId": loan_id, "lotId": scene.child_lot, "evidenceHash": h("ok"), "head": head2},
    )
    # A confirmation is final: confirming again is refused and the head stays (issue 16).
    with reverts("LedgerLotAlreadyConfirmed", loanId=loan_id, lotId=scene.child_lot):
        ledger.confirm_lot(payee, loan_id=loan_id, lot_id=scene.child_lot, evidence_hash=h("ok"))
    assert ledger.head_of(loan_id) == head2
    # Confirmations are events only: the lot itself is unchanged.
    assert ledger.get_lot(loan_id, scene.child_lot) == LotState(payee.address, SCENE_CHILD_AMOUNT, MASK)


def test_payee_of_a_disbursement_confirms_it(scene: Scene) -> None:
    before = scene.ledger.head_of(scene.loan_id)
    event = only_event(
        scene.ledger.confirm_lot(
            scene.cast.supplier, loan_id=scene.loan_id, lot_id=scene.lot, evidence_hash=h("e")
        )
    )
    assert_extends(scene.world, scene.loan_id, before, event)


# ---------------------------------------------------------------- repayment and closing


def test_repay_records_the_repayment_and_the_new_outstanding(scene: Scene) -> None:
    world, ledger, loan_id, bank = scene.world, scene.ledger, scene.loan_id, scene.cast.bank
    before = ledger.head_of(loan_id)
    event = only_event(ledger.repay(bank, loan_id=loan_id, amount=150_000_00, evidence_hash=h("bank-slip-1")))
    head = assert_extends(world, loan_id, before, event)
    assert (event.name, event.args) == (
        "Repaid",
        {
            "loanId": loan_id,
            "amount": 150_000_00,
            "outstanding": SCENE_LOT_AMOUNT - 150_000_00,
            "evidenceHash": h("bank-slip-1"),
            "head": head,
        },
    )
    event = only_event(
        ledger.repay(bank, loan_id=loan_id, amount=SCENE_LOT_AMOUNT - 150_000_00, evidence_hash=h("s2"))
    )
    assert event.args["outstanding"] == 0
    loan = ledger.get_loan(loan_id)
    assert (loan.disbursed, loan.repaid, loan.status) == (SCENE_LOT_AMOUNT, SCENE_LOT_AMOUNT, LoanStatus.OPEN)


def test_close_loan_as_repaid_when_nothing_is_outstanding(scene: Scene) -> None:
    world, ledger, loan_id, bank = scene.world, scene.ledger, scene.loan_id, scene.cast.bank
    ledger.repay(bank, loan_id=loan_id, amount=SCENE_LOT_AMOUNT, evidence_hash=h("all"))
    before = ledger.head_of(loan_id)
    event = only_event(
        ledger.close_loan(bank, loan_id=loan_id, status=LoanStatus.REPAID, reason_hash=h("settled"))
    )
    head = assert_extends(world, loan_id, before, event)
    assert (event.name, event.args) == (
        "LoanClosed",
        {"loanId": loan_id, "status": int(LoanStatus.REPAID), "reasonHash": h("settled"), "head": head},
    )
    assert ledger.get_loan(loan_id).status == LoanStatus.REPAID


def test_close_loan_as_repaid_with_nothing_ever_disbursed(world: World) -> None:
    loan_id = open_loan(world)
    world.ledger.close_loan(
        world.cast.bank, loan_id=loan_id, status=LoanStatus.REPAID, reason_hash=h("unused")
    )
    assert world.ledger.get_loan(loan_id).status == LoanStatus.REPAID


def test_close_loan_as_written_off_with_money_outstanding(scene: Scene) -> None:
    world, ledger, loan_id, bank = scene.world, scene.ledger, scene.loan_id, scene.cast.bank
    before = ledger.head_of(loan_id)
    event = only_event(
        ledger.close_loan(bank, loan_id=loan_id, status=LoanStatus.WRITTEN_OFF, reason_hash=h("insolvent"))
    )
    head = assert_extends(world, loan_id, before, event)
    assert event.args == {
        "loanId": loan_id,
        "status": int(LoanStatus.WRITTEN_OFF),
        "reasonHash": h("insolvent"),
        "head": head,
    }
    loan = ledger.get_loan(loan_id)
    assert (loan.status, loan.disbursed - loan.repaid) == (LoanStatus.WRITTEN_OFF, SCENE_LOT_AMOUNT)


def test_lots_of_a_closed_loan_can_still_be_spent_and_confirmed(scene: Scene) -> None:
    # Closing ends the lender's servicing; money already paid out keeps moving and is still recorded.
    ledger, loan_id, cast = scene.ledger, scene.loan_id, scene.cast
    ledger.close_loan(cast.bank, loan_id=loan_id, status=LoanStatus.WRITTEN_OFF, reason_hash=h("w"))
    child = pay_lot(scene.world, cast.supplier, loan_id, scene.lot, cast.supplier2, 1_000)
    ledger.confirm_lot(cast.supplier2, loan_id=loan_id, lot_id=child, evidence_hash=h("got-it"))
    assert ledger.get_lot(loan_id, child).remaining == 1_000


# ---------------------------------------------------------------- risk, collateral, inspections, terms


@pytest.mark.parametrize("risk_class", list(RiskClass), ids=[c.name for c in RiskClass])
def test_classify_sets_the_risk_class_and_emits_risk_classified(scene: Scene, risk_class: RiskClass) -> None:
    world, ledger, loan_id = scene.world, scene.ledger, scene.loan_id
    before = ledger.head_of(loan_id)
    event = only_event(
        ledger.classify(scene.cast.bank, loan_id=loan_id, risk_class=risk_class, reason_hash=h("q3"))
    )
    head = assert_extends(world, loan_id, before, event)
    assert (event.name, event.args) == (
        "RiskClassified",
        {"loanId": loan_id, "riskClass": int(risk_class), "reasonHash": h("q3"), "head": head},
    )
    assert ledger.get_loan(loan_id).risk_class == risk_class


def test_value_collateral_emits_collateral_valued_and_may_revalue(scene: Scene) -> None:
    world, ledger, loan_id, bank = scene.world, scene.ledger, scene.loan_id, scene.cast.bank
    for value in (8_000_000_00, 0):  # a collateral can be revalued, down to nothing
        before = ledger.head_of(loan_id)
        event = only_event(
            ledger.value_collateral(
                bank,
                loan_id=loan_id,
                collateral_id=h("warehouse-3"),
                value=value,
                evidence_hash=h(f"appraisal-{value}"),
            )
        )
        head = assert_extends(world, loan_id, before, event)
        assert (event.name, event.args) == (
            "CollateralValued",
            {
                "loanId": loan_id,
                "collateralId": h("warehouse-3"),
                "value": value,
                "evidenceHash": h(f"appraisal-{value}"),
                "head": head,
            },
        )


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["site-visit", "document-review", "interview"])
def test_record_inspection_emits_inspection_recorded(scene: Scene, kind: int) -> None:
    world, ledger, loan_id = scene.world, scene.ledger, scene.loan_id
    before = ledger.head_of(loan_id)
    event = only_event(
        ledger.record_inspection(scene.cast.bank, loan_id=loan_id, kind=kind, report_hash=h("rep"))
    )
    head = assert_extends(world, loan_id, before, event)
    assert (event.name, event.args) == (
        "InspectionRecorded",
        {"loanId": loan_id, "kind": kind, "reportHash": h("rep"), "head": head},
    )


def test_collateral_and_inspections_are_still_recorded_after_a_write_off(scene: Scene) -> None:
    # Recovery work goes on after a write-off: these two do not require an open loan.
    ledger, loan_id, bank = scene.ledger, scene.loan_id, scene.cast.bank
    ledger.close_loan(bank, loan_id=loan_id, status=LoanStatus.WRITTEN_OFF, reason_hash=h("w"))
    ledger.value_collateral(bank, loan_id=loan_id, collateral_id=h("c"), value=1, evidence_hash=h("e"))
    ledger.record_inspection(bank, loan_id=loan_id, kind=2, report_hash=h("r"))
    assert [e.name for e in loan_events(scene.world, loan_id)][-3:] == [
        "LoanClosed",
        "CollateralValued",
        "InspectionRecorded",
    ]


def test_restructure_sets_new_maturity_and_terms(scene: Scene) -> None:
    world, ledger, loan_id = scene.world, scene.ledger, scene.loan_id
    maturity = chain_time(ledger.client) + 3 * 365 * 86400
    before = ledger.head_of(loan_id)
    event = only_event(
        ledger.restructure(scene.cast.bank, loan_id=loan_id, maturity=maturity, terms_hash=h("v2"))
    )
    head = assert_extends(world, loan_id, before, event)
    assert (event.name, event.args) == (
        "LoanRestructured",
        {"loanId": loan_id, "maturity": maturity, "termsHash": h("v2"), "head": head},
    )
    loan = ledger.get_loan(loan_id)
    assert (loan.maturity, loan.terms_hash, loan.principal) == (maturity, h("v2"), SCENE_PRINCIPAL)


# ---------------------------------------------------------------- attestation


def test_attest_emits_trail_attested_with_the_auditors_organization_and_leaves_the_head(scene: Scene) -> None:
    ledger, loan_id = scene.ledger, scene.loan_id
    head = ledger.head_of(loan_id)
    event = only_event(
        ledger.attest(scene.cast.auditor, loan_id=loan_id, head=head, report_hash=h("audit-2026"))
    )
    assert (event.name, event.args) == (
        "TrailAttested",
        {
            "loanId": loan_id,
            "auditorOrg": scene.cast.auditor_org,
            "head": head,
            "reportHash": h("audit-2026"),
        },
    )
    assert ledger.head_of(loan_id) == head
    assert not ledger.hash_chain.is_chained("TrailAttested")
    # Attesting does not move the head, so a second auditor (or the same one again) attests the same head.
    ledger.attest(scene.cast.auditor, loan_id=loan_id, head=head, report_hash=h("audit-2026-b"))
    assert ledger.head_of(loan_id) == head


# ---------------------------------------------------------------- views


def test_get_loan_and_head_of_answer_for_known_loans_and_refuse_or_zero_for_unknown(scene: Scene) -> None:
    ledger = scene.ledger
    assert ledger.head_of(scene.loan_id) == scene.child_lot  # the last change created child_lot
    assert ledger.get_loan(scene.loan_id).head == scene.child_lot
    assert ledger.head_of(h("loan:unknown")) == ZERO_HASH
    with reverts("LedgerLoanNotFound", loanId=h("loan:unknown")):
        ledger.get_loan(h("loan:unknown"))


def test_get_lot_answers_holder_remaining_and_allowed_purposes(scene: Scene) -> None:
    ledger = scene.ledger
    assert ledger.get_lot(scene.loan_id, scene.lot) == LotState(
        scene.cast.supplier.address,
        SCENE_LOT_AMOUNT - SCENE_CHILD_AMOUNT,
        MASK,
    )
    assert ledger.get_lot(scene.loan_id, scene.child_lot) == LotState(
        scene.cast.subsupplier.address, SCENE_CHILD_AMOUNT, MASK
    )


def test_organization_of_answers_the_org_or_zero_and_organization_exists_agrees(world: World) -> None:
    cast, ledger = world.cast, world.ledger
    assert ledger.organization_of(cast.bank.address) == cast.bank_org
    assert ledger.organization_of(cast.bank2.address) == cast.bank_org
    assert ledger.organization_of(cast.other_bank.address) == cast.other_bank_org
    assert ledger.organization_of(cast.auditor.address) == cast.auditor_org
    assert ledger.organization_of(cast.stranger.address) == ZERO_HASH
    assert ledger.organization_of(cast.operator.address) == ZERO_HASH  # the operator needs no organisation
    assert ledger.organization_exists(cast.bank_org)
    assert not ledger.organization_exists(h("org:unknown"))
