"""Every custom error the ledger can revert with, triggered on a real node and asserted by exact name and
arguments. The last test reads the compiled ABI and fails if some error has no test in this module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import (
    UINT64_MAX,
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
from eth_abi import encode as abi_encode
from eth_account import Account

from ledger.chain.client import ChainClient, ErrorDecoder
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import ENTERPRISE_ROLE, LENDER_ROLE, OPERATOR_ROLE, LoanStatus, PaymentSpec

ZERO_ADDRESS = "0x" + "00" * 20


def _open(world: World, **overrides: object) -> None:
    """openLoan from Bank A with valid arguments except `overrides`."""
    args: dict[str, object] = {
        "loan_id": h("loan:err"),
        "borrower": world.cast.borrower.address,
        "borrower_ref": h("borrower-ref:err"),
        "principal": 1_000_00,
        "currency": "CNY",
        "allowed_purposes": (1, 3),
        "maturity": chain_time(world.ledger.client) + 86400,
        "terms_hash": h("terms:err"),
    }
    args.update(overrides)
    world.ledger.open_loan(world.cast.bank, **args)  # type: ignore[arg-type]


def _set_next_timestamp(client: ChainClient) -> int:
    """Pin the next block's timestamp so an error carrying `block.timestamp` has an exact expected value."""
    when = chain_time(client) + 3
    client.rpc("evm_setNextBlockTimestamp", [when])
    return when


# ---------------------------------------------------------------- argument validation


def test_register_organization_with_zero_id_reverts_with_ledger_zero_id(world: World) -> None:
    with reverts("LedgerZeroId"):
        world.ledger.register_organization(world.cast.operator, ZERO_HASH, h("profile"))


@pytest.mark.parametrize("field", ["loan_id", "borrower_ref"])
def test_open_loan_with_zero_id_or_borrower_ref_reverts_with_ledger_zero_id(world: World, field: str) -> None:
    with reverts("LedgerZeroId"):
        _open(world, **{field: ZERO_HASH})


def test_value_collateral_with_zero_collateral_id_reverts_with_ledger_zero_id(scene: Scene) -> None:
    with reverts("LedgerZeroId"):
        scene.ledger.value_collateral(
            scene.cast.bank, loan_id=scene.loan_id, collateral_id=ZERO_HASH, value=1, evidence_hash=h("e")
        )


def test_deploying_with_zero_admin_reverts_with_ledger_zero_address(
    client: ChainClient, compiled: CompiledContract
) -> None:
    data = "0x" + compiled.bytecode.removeprefix("0x") + abi_encode(["address"], [ZERO_ADDRESS]).hex()
    with reverts("LedgerZeroAddress"):
        client.transact(Account.create(), None, data, errors=ErrorDecoder(compiled.abi))


def test_add_account_with_zero_address_reverts_with_ledger_zero_address(world: World) -> None:
    with reverts("LedgerZeroAddress"):
        world.ledger.add_account(world.cast.operator, world.cast.bank_org, ZERO_ADDRESS)


def test_open_loan_with_zero_borrower_reverts_with_ledger_zero_address(world: World) -> None:
    with reverts("LedgerZeroAddress"):
        _open(world, borrower=ZERO_ADDRESS)


def test_disburse_to_zero_address_reverts_with_ledger_zero_address(scene: Scene) -> None:
    with reverts("LedgerZeroAddress"):
        scene.ledger.disburse(scene.cast.bank, loan_id=scene.loan_id, payee=ZERO_ADDRESS, amount=1, purpose=1)


def test_pay_to_zero_address_reverts_with_ledger_zero_address(scene: Scene) -> None:
    with reverts("LedgerZeroAddress"):
        scene.ledger.pay(
            scene.cast.supplier,
            loan_id=scene.loan_id,
            from_lot=scene.lot,
            payee=ZERO_ADDRESS,
            amount=1,
            purpose=1,
        )


def test_zero_amounts_revert_with_ledger_zero_amount(scene: Scene) -> None:
    cast, ledger, loan = scene.cast, scene.ledger, scene.loan_id
    with reverts("LedgerZeroAmount"):
        _open(scene.world, principal=0)
    with reverts("LedgerZeroAmount"):
        ledger.disburse(cast.bank, loan_id=loan, payee=cast.supplier.address, amount=0, purpose=1)
    with reverts("LedgerZeroAmount"):
        ledger.pay(
            cast.supplier, loan_id=loan, from_lot=scene.lot, payee=cast.supplier2.address, amount=0, purpose=1
        )
    with reverts("LedgerZeroAmount"):
        ledger.repay(cast.bank, loan_id=loan, amount=0, evidence_hash=h("r"))


def test_amounts_beyond_uint64_revert_with_ledger_amount_too_large(scene: Scene) -> None:
    cast, ledger, loan = scene.cast, scene.ledger, scene.loan_id
    with reverts("LedgerAmountTooLarge", amount=2**64, max=UINT64_MAX):
        _open(scene.world, principal=2**64)
    with reverts("LedgerAmountTooLarge", amount=2**64 + 5, max=UINT64_MAX):
        ledger.disburse(cast.bank, loan_id=loan, payee=cast.supplier.address, amount=2**64 + 5, purpose=1)
    with reverts("LedgerAmountTooLarge", amount=2**255, max=UINT64_MAX):
        ledger.pay(
            cast.supplier,
            loan_id=loan,
            from_lot=scene.lot,
            payee=cast.supplier2.address,
            amount=2**255,
            purpose=1,
        )
    with reverts("LedgerAmountTooLarge", amount=2**64, max=UINT64_MAX):
        ledger.repay(cast.bank, loan_id=loan, amount=2**64, evidence_hash=h("r"))
    with reverts("LedgerAmountTooLarge", amount=2**64, max=UINT64_MAX):
        ledger.value_collateral(
            cast.bank, loan_id=loan, collateral_id=h("c"), value=2**64, evidence_hash=h("e")
        )


def test_open_loan_with_uint64_max_principal_succeeds(world: World) -> None:
    # The boundary of LedgerAmountTooLarge is inclusive of the largest uint64.
    _open(world, principal=UINT64_MAX)
    assert world.ledger.get_loan(h("loan:err")).principal == UINT64_MAX


def test_purpose_codes_above_31_revert_with_ledger_invalid_purpose(scene: Scene) -> None:
    cast, ledger, loan = scene.cast, scene.ledger, scene.loan_id
    with reverts("LedgerInvalidPurpose", purpose=32):
        ledger.disburse(cast.bank, loan_id=loan, payee=cast.supplier.address, amount=1, purpose=32)
    with reverts("LedgerInvalidPurpose", purpose=255):
        ledger.pay(
            cast.supplier,
            loan_id=loan,
            from_lot=scene.lot,
            payee=cast.supplier2.address,
            amount=1,
            purpose=255,
        )
    with reverts("LedgerInvalidPurpose", purpose=40):
        ledger.pay_batch(
            cast.supplier,
            loan_id=loan,
            payments=[
                PaymentSpec(scene.lot, cast.supplier2.address, 1, 1),
                PaymentSpec(scene.lot, cast.borrower.address, 1, 40),
            ],
        )


def test_open_loan_without_allowed_purposes_reverts_with_ledger_empty_purpose_set(world: World) -> None:
    with reverts("LedgerEmptyPurposeSet"):
        _open(world, allowed_purposes=())


def test_open_loan_with_zero_currency_reverts_with_ledger_invalid_currency(world: World) -> None:
    with reverts("LedgerInvalidCurrency", currency="0x000000"):
        _open(world, currency=b"\x00\x00\x00")


def test_open_loan_maturing_now_reverts_with_ledger_maturity_in_past(world: World) -> None:
    now = _set_next_timestamp(world.ledger.client)
    with reverts("LedgerMaturityInPast", maturity=now, nowTimestamp=now):
        _open(world, maturity=now)
    with reverts("LedgerMaturityInPast", maturity=1, nowTimestamp=now):
        _open(world, maturity=1)


def test_restructure_to_a_past_maturity_reverts_with_ledger_maturity_in_past(scene: Scene) -> None:
    now = _set_next_timestamp(scene.ledger.client)
    with reverts("LedgerMaturityInPast", maturity=now - 1, nowTimestamp=now):
        scene.ledger.restructure(scene.cast.bank, loan_id=scene.loan_id, maturity=now - 1, terms_hash=h("t"))


def test_classify_with_unknown_class_reverts_with_ledger_invalid_risk_class(scene: Scene) -> None:
    with reverts("LedgerInvalidRiskClass", riskClass=5):
        scene.ledger.classify(scene.cast.bank, loan_id=scene.loan_id, risk_class=5, reason_hash=h("r"))


def test_record_inspection_with_unknown_kind_reverts_with_ledger_invalid_inspection_kind(
    scene: Scene,
) -> None:
    with reverts("LedgerInvalidInspectionKind", kind=3):
        scene.ledger.record_inspection(scene.cast.bank, loan_id=scene.loan_id, kind=3, report_hash=h("r"))


@pytest.mark.parametrize("kind", [9, 10, 255])  # 9 is an appraiser's (fileAppraisal), never the lender's
def test_file_record_with_unknown_kind_reverts_with_ledger_invalid_record_kind(
    scene: Scene, kind: int
) -> None:
    with reverts("LedgerInvalidRecordKind", recordKind=kind):
        scene.ledger.file_record(
            scene.cast.bank, loan_id=scene.loan_id, record_kind=kind, record_id=h("g"), content_hash=h("c")
        )


@pytest.mark.parametrize("kind", [4, 5, 6, 7])
def test_engaging_an_unregistered_organisation_reverts_with_ledger_organization_not_found(
    scene: Scene, kind: int
) -> None:
    with reverts("LedgerOrganizationNotFound", orgId=h("org:nobody")):
        scene.ledger.file_record(
            scene.cast.bank,
            loan_id=scene.loan_id,
            record_kind=kind,
            record_id=h("org:nobody"),
            content_hash=h("c"),
        )


def test_appraisal_after_the_engagement_ended_reverts_with_ledger_not_engaged_appraiser(scene: Scene) -> None:
    ledger, cast, org = scene.ledger, scene.cast, h("org:outsider")
    ledger.file_record(cast.bank, loan_id=scene.loan_id, record_kind=5, record_id=org, content_hash=h("law"))
    with reverts("LedgerNotEngagedAppraiser", loanId=scene.loan_id, account=cast.outsider.address):
        ledger.file_appraisal(cast.outsider, loan_id=scene.loan_id, item_id=h("i"), content_hash=h("v"))
    ledger.file_record(cast.bank, loan_id=scene.loan_id, record_kind=4, record_id=org, content_hash=h("app"))
    assert ledger.engagement_of(scene.loan_id, org) == 0b011  # law firm and appraiser
    filed = ledger.file_appraisal(cast.outsider, loan_id=scene.loan_id, item_id=h("i"), content_hash=h("v"))
    assert filed.event("RecordFiled").args["recordKind"] == 9
    assert filed.event("RecordFiled").args["actor"] == cast.outsider.address
    ledger.file_record(cast.bank, loan_id=scene.loan_id, record_kind=7, record_id=org, content_hash=h("end"))
    assert ledger.engagement_of(scene.loan_id, org) == 0
    with reverts("LedgerNotEngagedAppraiser", loanId=scene.loan_id, account=cast.outsider.address):
        ledger.file_appraisal(cast.outsider, loan_id=scene.loan_id, item_id=h("i"), content_hash=h("v"))
    # an engagement is per loan: another loan of the same bank does not let the firm sign
    other = open_loan(scene.world, "other")
    with reverts("LedgerNotEngagedAppraiser", loanId=other, account=cast.outsider.address):
        ledger.file_appraisal(cast.outsider, loan_id=other, item_id=h("i"), content_hash=h("v"))


_ZERO32 = "0x" + "00" * 32


@pytest.mark.parametrize(("record_id", "content_hash"), [(_ZERO32, h("c")), (h("g"), _ZERO32)])
def test_file_record_without_an_id_or_a_hash_reverts_with_ledger_zero_id(
    scene: Scene, record_id: str, content_hash: str
) -> None:
    with reverts("LedgerZeroId"):
        scene.ledger.file_record(
            scene.cast.bank,
            loan_id=scene.loan_id,
            record_kind=0,
            record_id=record_id,
            content_hash=content_hash,
        )


@pytest.mark.parametrize("status", [LoanStatus.NONE, LoanStatus.OPEN, 4, 255])
def test_close_loan_with_non_closing_status_reverts_with_ledger_invalid_closing_status(
    scene: Scene, status: int
) -> None:
    with reverts("LedgerInvalidClosingStatus", status=int(status)):
        scene.ledger.close_loan(scene.cast.bank, loan_id=scene.loan_id, status=status, reason_hash=h("r"))


def test_pay_batch_without_payments_reverts_with_ledger_empty_batch(scene: Scene) -> None:
    with reverts("LedgerEmptyBatch"):
        scene.ledger.pay_batch(scene.cast.supplier, loan_id=scene.loan_id, payments=[])


def test_pay_batch_over_the_maximum_reverts_with_ledger_batch_too_large(scene: Scene) -> None:
    assert scene.ledger.read("MAX_BATCH") == (500,)
    payments = [PaymentSpec(scene.lot, scene.cast.supplier2.address, 1, 1)] * 501
    with reverts("LedgerBatchTooLarge", size=501, max=500):
        scene.ledger.pay_batch(scene.cast.supplier, loan_id=scene.loan_id, payments=payments)


# ---------------------------------------------------------------- participants


def test_registering_an_existing_organization_reverts_with_ledger_organization_exists(world: World) -> None:
    with reverts("LedgerOrganizationExists", orgId=world.cast.bank_org):
        world.ledger.register_organization(world.cast.operator, world.cast.bank_org, h("profile:again"))


def test_adding_an_account_to_an_unknown_organization_reverts_with_ledger_organization_not_found(
    world: World,
) -> None:
    with reverts("LedgerOrganizationNotFound", orgId=h("org:nobody")):
        world.ledger.add_account(world.cast.operator, h("org:nobody"), Account.create().address)
    with reverts("LedgerOrganizationNotFound", orgId=ZERO_HASH):
        world.ledger.add_account(world.cast.operator, ZERO_HASH, Account.create().address)


def test_adding_a_registered_account_again_reverts_with_ledger_account_already_registered(
    world: World,
) -> None:
    cast = world.cast
    with reverts("LedgerAccountAlreadyRegistered", account=cast.bank.address, orgId=cast.bank_org):
        world.ledger.add_account(cast.operator, cast.other_bank_org, cast.bank.address)


def test_removing_an_unregistered_account_reverts_with_ledger_account_not_registered(world: World) -> None:
    with reverts("LedgerAccountNotRegistered", account=world.cast.stranger.address):
        world.ledger.remove_account(world.cast.operator, world.cast.stranger.address)


@pytest.mark.parametrize("role_name", ["LENDER_ROLE", "ENTERPRISE_ROLE", "AUDITOR_ROLE"])
def test_granting_a_business_role_to_an_unregistered_account_reverts_with_ledger_account_not_registered(
    world: World, role_name: str
) -> None:
    role = "0x" + world.ledger.read(role_name)[0].hex()
    with reverts("LedgerAccountNotRegistered", account=world.cast.stranger.address):
        world.ledger.grant_role(world.cast.operator, role, world.cast.stranger.address)


def test_granting_operator_role_needs_no_organization(world: World) -> None:
    # Only the three business roles are tied to organisations; the consortium's own roles are not.
    world.ledger.grant_role(world.cast.operator, OPERATOR_ROLE, world.cast.stranger.address)
    assert world.ledger.has_role(OPERATOR_ROLE, world.cast.stranger.address)


# ---------------------------------------------------------------- loans


def test_opening_an_existing_loan_id_reverts_with_ledger_loan_exists(world: World) -> None:
    loan = open_loan(world)
    with reverts("LedgerLoanExists", loanId=loan):
        open_loan(world, lender=world.cast.other_bank)


def test_servicing_an_unknown_loan_reverts_with_ledger_loan_not_found(world: World) -> None:
    ledger, bank, unknown = world.ledger, world.cast.bank, h("loan:unknown")
    with reverts("LedgerLoanNotFound", loanId=unknown):
        ledger.disburse(bank, loan_id=unknown, payee=world.cast.supplier.address, amount=1, purpose=1)
    with reverts("LedgerLoanNotFound", loanId=unknown):
        ledger.record_inspection(bank, loan_id=unknown, kind=0, report_hash=h("r"))
    with reverts("LedgerLoanNotFound", loanId=unknown):
        ledger.attest(world.cast.auditor, loan_id=unknown, head=ZERO_HASH, report_hash=h("r"))
    with reverts("LedgerLoanNotFound", loanId=unknown):
        ledger.get_loan(unknown)


def test_servicing_a_closed_loan_reverts_with_ledger_loan_not_open(scene: Scene) -> None:
    cast, ledger, loan = scene.cast, scene.ledger, scene.loan_id
    ledger.close_loan(cast.bank, loan_id=loan, status=LoanStatus.WRITTEN_OFF, reason_hash=h("w"))
    written_off = int(LoanStatus.WRITTEN_OFF)
    with reverts("LedgerLoanNotOpen", loanId=loan, status=written_off):
        ledger.disburse(cast.bank, loan_id=loan, payee=cast.supplier.address, amount=1, purpose=1)
    with reverts("LedgerLoanNotOpen", loanId=loan, status=written_off):
        ledger.repay(cast.bank, loan_id=loan, amount=1, evidence_hash=h("r"))
    with reverts("LedgerLoanNotOpen", loanId=loan, status=written_off):
        ledger.close_loan(cast.bank, loan_id=loan, status=LoanStatus.REPAID, reason_hash=h("r"))
    with reverts("LedgerLoanNotOpen", loanId=loan, status=written_off):
        ledger.classify(cast.bank, loan_id=loan, risk_class=4, reason_hash=h("r"))
    with reverts("LedgerLoanNotOpen", loanId=loan, status=written_off):
        ledger.restructure(
            cast.bank, loan_id=loan, maturity=chain_time(ledger.client) + 86400, terms_hash=h("t")
        )


def test_repaid_loan_reports_its_status_in_ledger_loan_not_open(world: World) -> None:
    loan = open_loan(world)
    world.ledger.close_loan(world.cast.bank, loan_id=loan, status=LoanStatus.REPAID, reason_hash=h("done"))
    with reverts("LedgerLoanNotOpen", loanId=loan, status=int(LoanStatus.REPAID)):
        world.ledger.disburse(
            world.cast.bank, loan_id=loan, payee=world.cast.supplier.address, amount=1, purpose=1
        )


def test_lender_of_another_bank_servicing_the_loan_reverts_with_ledger_not_loan_lender(scene: Scene) -> None:
    with reverts("LedgerNotLoanLender", loanId=scene.loan_id, account=scene.cast.other_bank.address):
        scene.ledger.repay(scene.cast.other_bank, loan_id=scene.loan_id, amount=1, evidence_hash=h("r"))


def test_disbursing_beyond_principal_reverts_with_ledger_principal_exceeded(scene: Scene) -> None:
    undisbursed = 1_000_000_00 - 400_000_00
    with reverts(
        "LedgerPrincipalExceeded", loanId=scene.loan_id, undisbursed=undisbursed, requested=undisbursed + 1
    ):
        scene.ledger.disburse(
            scene.cast.bank,
            loan_id=scene.loan_id,
            payee=scene.cast.supplier.address,
            amount=undisbursed + 1,
            purpose=1,
        )
    disburse_lot(scene.world, scene.loan_id, scene.cast.borrower, undisbursed)
    with reverts("LedgerPrincipalExceeded", loanId=scene.loan_id, undisbursed=0, requested=1):
        scene.ledger.disburse(
            scene.cast.bank, loan_id=scene.loan_id, payee=scene.cast.supplier.address, amount=1, purpose=1
        )


def test_repaying_more_than_outstanding_reverts_with_ledger_repayment_exceeds_outstanding(
    scene: Scene,
) -> None:
    ledger, bank, loan = scene.ledger, scene.cast.bank, scene.loan_id
    ledger.repay(bank, loan_id=loan, amount=150_000_00, evidence_hash=h("r1"))
    with reverts(
        "LedgerRepaymentExceedsOutstanding", loanId=loan, outstanding=250_000_00, requested=250_000_01
    ):
        ledger.repay(bank, loan_id=loan, amount=250_000_01, evidence_hash=h("r2"))


def test_a_split_repayment_checks_its_principal_part_and_refuses_an_all_zero_split(scene: Scene) -> None:
    ledger, bank, loan = scene.ledger, scene.cast.bank, scene.loan_id
    with reverts(
        "LedgerRepaymentExceedsOutstanding", loanId=loan, outstanding=400_000_00, requested=400_000_01
    ):
        ledger.repay_allocated(
            bank, loan_id=loan, principal=400_000_01, interest=1, penalty=0, evidence_hash=h("r")
        )
    with reverts("LedgerZeroAmount"):
        ledger.repay_allocated(bank, loan_id=loan, principal=0, interest=0, penalty=0, evidence_hash=h("r"))
    with reverts("LedgerAmountTooLarge", amount=2**64, max=UINT64_MAX):
        ledger.repay_allocated(
            bank, loan_id=loan, principal=0, interest=2**64, penalty=0, evidence_hash=h("r")
        )
    # interest only: nothing outstanding changes
    event = ledger.repay_allocated(
        bank, loan_id=loan, principal=0, interest=1_234_56, penalty=7_89, evidence_hash=h("r")
    ).event("RepaymentApplied")
    assert (event.args["interest"], event.args["penalty"], event.args["outstanding"]) == (
        1_234_56,
        7_89,
        400_000_00,
    )
    assert ledger.get_loan(loan).repaid == 0


def test_a_change_of_terms_of_an_unknown_kind_reverts_with_ledger_invalid_terms_change(scene: Scene) -> None:
    ledger, bank, loan = scene.ledger, scene.cast.bank, scene.loan_id
    maturity = chain_time(ledger.client) + 365 * 86400
    with reverts("LedgerInvalidTermsChange", change=5):
        ledger.change_terms(
            bank, loan_id=loan, maturity=maturity, terms_hash=h("t"), change=5, financial_difficulty=False
        )


def test_closing_as_repaid_with_money_outstanding_reverts_with_ledger_loan_outstanding(scene: Scene) -> None:
    ledger, bank, loan = scene.ledger, scene.cast.bank, scene.loan_id
    ledger.repay(bank, loan_id=loan, amount=399_999_99, evidence_hash=h("r1"))
    with reverts("LedgerLoanOutstanding", loanId=loan, outstanding=1):
        ledger.close_loan(bank, loan_id=loan, status=LoanStatus.REPAID, reason_hash=h("done"))


# ---------------------------------------------------------------- lots


def test_unknown_lots_revert_with_ledger_lot_not_found(scene: Scene) -> None:
    cast, ledger, loan = scene.cast, scene.ledger, scene.loan_id
    unknown = h("lot:unknown")
    with reverts("LedgerLotNotFound", loanId=loan, lotId=unknown):
        ledger.pay(
            cast.supplier, loan_id=loan, from_lot=unknown, payee=cast.supplier2.address, amount=1, purpose=1
        )
    with reverts("LedgerLotNotFound", loanId=loan, lotId=unknown):
        ledger.confirm_lot(cast.subsupplier, loan_id=loan, lot_id=unknown, evidence_hash=h("e"))
    with reverts("LedgerLotNotFound", loanId=loan, lotId=unknown):
        ledger.dispute_lot(cast.subsupplier, loan_id=loan, lot_id=unknown, reason_hash=h("e"))
    with reverts("LedgerLotNotFound", loanId=loan, lotId=unknown):
        ledger.get_lot(loan, unknown)


def test_a_lot_spent_under_another_loan_id_reverts_with_ledger_lot_not_found(scene: Scene) -> None:
    # Lots are scoped by loan: naming a real lot under the wrong loan must not reach its money.
    other = open_loan(scene.world, "other")
    with reverts("LedgerLotNotFound", loanId=other, lotId=scene.lot):
        scene.ledger.pay(
            scene.cast.supplier,
            loan_id=other,
            from_lot=scene.lot,
            payee=scene.cast.supplier2.address,
            amount=1,
            purpose=1,
        )


def test_paying_more_than_a_lot_holds_reverts_with_ledger_insufficient_funds(scene: Scene) -> None:
    remaining = 400_000_00 - 100_000_00
    with reverts("LedgerInsufficientFunds", lotId=scene.lot, remaining=remaining, requested=remaining + 1):
        scene.ledger.pay(
            scene.cast.supplier,
            loan_id=scene.loan_id,
            from_lot=scene.lot,
            payee=scene.cast.supplier2.address,
            amount=remaining + 1,
            purpose=1,
        )


def test_pay_batch_overspending_a_lot_across_items_reverts_with_ledger_insufficient_funds(
    scene: Scene,
) -> None:
    remaining = 400_000_00 - 100_000_00
    payments = [
        PaymentSpec(scene.lot, scene.cast.supplier2.address, remaining - 10, 1),
        PaymentSpec(scene.lot, scene.cast.borrower.address, 11, 1),
    ]
    with reverts("LedgerInsufficientFunds", lotId=scene.lot, remaining=10, requested=11):
        scene.ledger.pay_batch(scene.cast.supplier, loan_id=scene.loan_id, payments=payments)


def test_spending_someone_elses_lot_reverts_with_ledger_not_lot_spender(scene: Scene) -> None:
    with reverts("LedgerNotLotSpender", lotId=scene.child_lot, account=scene.cast.supplier.address):
        scene.ledger.pay(
            scene.cast.supplier,
            loan_id=scene.loan_id,
            from_lot=scene.child_lot,
            payee=scene.cast.supplier.address,
            amount=1,
            purpose=1,
        )


def test_confirming_a_lot_paid_to_someone_else_reverts_with_ledger_not_lot_payee(scene: Scene) -> None:
    with reverts("LedgerNotLotPayee", lotId=scene.lot, account=scene.cast.subsupplier.address):
        scene.ledger.confirm_lot(
            scene.cast.subsupplier, loan_id=scene.loan_id, lot_id=scene.lot, evidence_hash=h("e")
        )


def test_confirming_a_confirmed_lot_again_reverts_with_ledger_lot_already_confirmed_and_keeps_the_head(
    scene: Scene,
) -> None:
    ledger, loan, payee = scene.ledger, scene.loan_id, scene.cast.subsupplier
    ledger.confirm_lot(payee, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("receipt"))
    head, block = ledger.head_of(loan), ledger.client.block_number()
    with reverts("LedgerLotAlreadyConfirmed", loanId=loan, lotId=scene.child_lot):
        ledger.confirm_lot(payee, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("receipt"))
    assert ledger.head_of(loan) == head
    assert [e.name for e in loan_events(scene.world, loan, block + 1)] == []


def test_disputing_a_confirmed_lot_reverts_with_ledger_lot_already_confirmed(scene: Scene) -> None:
    ledger, loan, payee = scene.ledger, scene.loan_id, scene.cast.subsupplier
    ledger.confirm_lot(payee, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("receipt"))
    head = ledger.head_of(loan)
    with reverts("LedgerLotAlreadyConfirmed", loanId=loan, lotId=scene.child_lot):
        ledger.dispute_lot(payee, loan_id=loan, lot_id=scene.child_lot, reason_hash=h("changed my mind"))
    assert ledger.head_of(loan) == head


def test_disputing_a_disputed_lot_again_reverts_with_ledger_lot_already_disputed(scene: Scene) -> None:
    ledger, loan, payee = scene.ledger, scene.loan_id, scene.cast.subsupplier
    ledger.dispute_lot(payee, loan_id=loan, lot_id=scene.child_lot, reason_hash=h("short"))
    head = ledger.head_of(loan)
    with reverts("LedgerLotAlreadyDisputed", loanId=loan, lotId=scene.child_lot):
        ledger.dispute_lot(payee, loan_id=loan, lot_id=scene.child_lot, reason_hash=h("still short"))
    assert ledger.head_of(loan) == head


def test_confirming_a_disputed_lot_withdraws_the_dispute_once_and_then_nothing_more_is_accepted(
    scene: Scene,
) -> None:
    ledger, loan, payee = scene.ledger, scene.loan_id, scene.cast.subsupplier
    ledger.dispute_lot(payee, loan_id=loan, lot_id=scene.child_lot, reason_hash=h("short"))
    confirmed = ledger.confirm_lot(
        payee, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("rest arrived")
    )
    assert [e.name for e in confirmed.events] == ["LotConfirmed"]
    with reverts("LedgerLotAlreadyConfirmed", loanId=loan, lotId=scene.child_lot):
        ledger.confirm_lot(payee, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("again"))
    with reverts("LedgerLotAlreadyConfirmed", loanId=loan, lotId=scene.child_lot):
        ledger.dispute_lot(payee, loan_id=loan, lot_id=scene.child_lot, reason_hash=h("again"))


def test_answering_a_confirmed_lot_of_someone_else_still_reverts_with_ledger_not_lot_payee(
    scene: Scene,
) -> None:
    """The answer is checked after the payee: a stranger learns nothing about another party's answer."""
    ledger, loan = scene.ledger, scene.loan_id
    ledger.confirm_lot(
        scene.cast.subsupplier, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("receipt")
    )
    with reverts("LedgerNotLotPayee", lotId=scene.child_lot, account=scene.cast.supplier.address):
        ledger.confirm_lot(scene.cast.supplier, loan_id=loan, lot_id=scene.child_lot, evidence_hash=h("e"))


def test_attesting_a_superseded_head_reverts_with_ledger_stale_head(scene: Scene) -> None:
    ledger, loan = scene.ledger, scene.loan_id
    seen = ledger.head_of(loan)
    ledger.record_inspection(scene.cast.bank, loan_id=loan, kind=1, report_hash=h("review"))
    current = ledger.head_of(loan)
    with reverts("LedgerStaleHead", loanId=loan, currentHead=current, attestedHead=seen):
        ledger.attest(scene.cast.auditor, loan_id=loan, head=seen, report_hash=h("audit"))


# ---------------------------------------------------------------- OpenZeppelin errors


def test_missing_role_reverts_with_access_control_unauthorized_account(scene: Scene) -> None:
    cast = scene.cast
    with reverts("AccessControlUnauthorizedAccount", account=cast.supplier.address, neededRole=LENDER_ROLE):
        scene.ledger.repay(cast.supplier, loan_id=scene.loan_id, amount=1, evidence_hash=h("r"))
    with reverts("AccessControlUnauthorizedAccount", account=cast.bank.address, neededRole=OPERATOR_ROLE):
        scene.ledger.grant_role(cast.bank, ENTERPRISE_ROLE, cast.outsider.address)


def test_renouncing_someone_elses_role_reverts_with_access_control_bad_confirmation(world: World) -> None:
    cast = world.cast
    with reverts("AccessControlBadConfirmation"):
        world.ledger.transact(cast.bank, "renounceRole", bytes.fromhex(LENDER_ROLE[2:]), cast.bank2.address)


def test_writes_while_paused_revert_with_enforced_pause(scene: Scene) -> None:
    scene.ledger.pause(scene.cast.operator)
    with reverts("EnforcedPause"):
        scene.ledger.repay(scene.cast.bank, loan_id=scene.loan_id, amount=1, evidence_hash=h("r"))
    with reverts("EnforcedPause"):
        scene.ledger.pause(scene.cast.operator)


def test_unpausing_a_running_ledger_reverts_with_expected_pause(world: World) -> None:
    with reverts("ExpectedPause"):
        world.ledger.unpause(world.cast.operator)


# ---------------------------------------------------------------- how reverts surface


def test_reverting_transaction_sent_with_fixed_gas_raises_the_decoded_custom_error(scene: Scene) -> None:
    # With `gas` given there is no estimate to refuse it: the node executes (Hardhat also mines) the
    # transaction and answers with the revert data, which must still surface as the custom error.
    remaining = 300_000_00
    ledger, loan = scene.ledger, scene.loan_id
    with reverts("LedgerInsufficientFunds", lotId=scene.lot, remaining=remaining, requested=remaining + 1):
        ledger.transact(
            scene.cast.supplier,
            "pay",
            bytes.fromhex(loan[2:]),
            bytes.fromhex(scene.lot[2:]),
            scene.cast.supplier2.address,
            remaining + 1,
            1,
            bytes(32),
            gas=500_000,
        )
    # The client resynchronises the sender's nonce afterwards, so the next transaction goes through.
    pay_lot(scene.world, scene.cast.supplier, loan, scene.lot, scene.cast.supplier2, remaining)
    assert ledger.get_lot(loan, scene.lot).remaining == 0


# ---------------------------------------------------------------- completeness


def _errors_asserted_in_this_module() -> set[str]:
    """Error names passed as the first argument of `reverts(...)` anywhere in this file."""
    tree = ast.parse(Path(__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "reverts"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def test_every_error_in_the_abi_is_triggered_by_a_test_in_this_module(compiled: CompiledContract) -> None:
    abi_errors = {str(e["name"]) for e in compiled.abi if e.get("type") == "error"}
    interface_errors = {
        line.split("error ", 1)[1].split("(", 1)[0]
        for line in (Path(__file__).parent.parent / "contracts/interfaces/IFundFlowLedger.sol")
        .read_text()
        .splitlines()
        if line.strip().startswith("error ")
    }
    assert "LedgerInsufficientFunds" in interface_errors  # the parse found the interface's declarations
    assert interface_errors <= abi_errors
    assert abi_errors - _errors_asserted_in_this_module() == set()
