"""Loan types (issue 18): default purpose sets and entrusted-payment thresholds per type, configurable per
bank, and the alerts that name the rule: a self-paid disbursement that should have been entrusted, a self-paid
tranche with no payment reported, a prohibited purpose (a development loan may pay for land)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticValidationError

from ledger.config import Settings
from ledger.monitoring.rules import (
    LoanFacts,
    LotFact,
    Thresholds,
    entrusted_payment_required,
    prohibited_use,
    self_paid_report_overdue,
)
from ledger.protocol.codes import LoanStatus
from ledger.protocol.loantypes import DEFAULT_POLICIES, parse_policies
from ledger.protocol.purposes import Purpose
from ledger.protocol.terms import LoanTerms, LoanType

DAY = 86_400
T0 = 1_800_000_000
BANK = "0x" + "0b" * 32
BORROWER = "0x" + "ab" * 20
SUPPLIER = "0x" + "cd" * 20
YUAN = 100


def lot(
    n: int,
    amount: int,
    *,
    to: str = BORROWER,
    purpose: int = Purpose.RAW_MATERIALS,
    remaining: int | None = None,
) -> LotFact:
    return LotFact(
        lot_id=f"0x{n:064x}",
        parent_lot_id=None,
        holder=to,
        amount=amount,
        remaining=amount if remaining is None else remaining,
        purpose=purpose,
        declared_use=True,
        entrusted=to != BORROWER,
        confirmation="unconfirmed",
        confirmation_block=None,
        confirmation_time=None,
        block_number=10 + n,
        log_index=0,
        timestamp=T0,
    )


def facts(
    loan_type: LoanType | None, lots: list[LotFact], *, now: int = T0 + DAY, **terms: object
) -> LoanFacts:
    return LoanFacts(
        loan_id="0x" + "11" * 32,
        lender_org=BANK,
        borrower=BORROWER,
        principal=10**12,
        disbursed=sum(x.amount for x in lots),
        repaid=0,
        currency="CNY",
        maturity=T0 + 400 * DAY,
        status=int(LoanStatus.OPEN),
        block_number=1,
        opened_at=T0,
        lots=lots,
        repayments=[],
        valuations=[],
        inspections=[],
        terms=LoanTerms(loan_type=loan_type, **terms),  # type: ignore[arg-type]
        now=now,
    )


def test_a_self_paid_working_capital_disbursement_above_ten_million_should_have_been_entrusted() -> None:
    th = Thresholds()
    limit = 10_000_000 * YUAN
    assert entrusted_payment_required(facts(LoanType.WORKING_CAPITAL, [lot(1, limit)]), th) == []
    [alert] = entrusted_payment_required(facts(LoanType.WORKING_CAPITAL, [lot(1, limit + 1)]), th)
    assert alert.rule == "entrusted_payment_required" and alert.severity == "high"
    assert "流动资金贷款管理办法 (2024)" in alert.explanation and "CNY 10,000,000.00" in alert.explanation
    # paid by the bank to the supplier: entrusted, nothing to say
    assert (
        entrusted_payment_required(facts(LoanType.WORKING_CAPITAL, [lot(1, 2 * limit, to=SUPPLIER)]), th)
        == []
    )
    # no loan type in the terms: the rule cannot know the threshold and stays silent
    assert entrusted_payment_required(facts(None, [lot(1, 2 * limit)]), th) == []


def test_a_project_loan_entrusts_above_five_percent_of_total_investment_and_a_personal_loan_above_300k() -> (
    None
):
    th = Thresholds()
    project = facts(LoanType.PROJECT, [lot(1, 5_000_000 * YUAN + 1)], total_investment=100_000_000 * YUAN)
    [alert] = entrusted_payment_required(project, th)
    assert alert.details["limit"] == 5_000_000 * YUAN  # 5% of 100 million, below the 10 million cap
    assert entrusted_payment_required(facts(LoanType.PERSONAL, [lot(1, 300_000 * YUAN)]), th) == []
    assert entrusted_payment_required(facts(LoanType.PERSONAL, [lot(1, 300_000 * YUAN + 1)]), th)
    assert entrusted_payment_required(facts(LoanType.PERSONAL_BUSINESS, [lot(1, 500_000 * YUAN)]), th) == []
    assert entrusted_payment_required(facts(LoanType.SUPPLY_CHAIN, [lot(1, 1)]), th)  # always entrusted


def test_each_bank_sets_its_own_thresholds_and_purpose_sets() -> None:
    policies = parse_policies({BANK: {"working_capital": {"entrusted_above": "5000000.00"}}})
    mine = Thresholds(loan_type_policies=policies)
    six = facts(LoanType.WORKING_CAPITAL, [lot(1, 6_000_000 * YUAN)])
    assert entrusted_payment_required(six, mine)
    assert entrusted_payment_required(six, Thresholds()) == []  # the default: 10 million
    other_bank = Thresholds(loan_type_policies=parse_policies({"0x" + "0c" * 32: {"working_capital": {}}}))
    assert entrusted_payment_required(six, other_bank) == []
    assert Settings(loan_type_policies={"*": {"project": {"prohibited": [29]}}}).loan_type_policies
    with pytest.raises(PydanticValidationError, match="loan_type_policies"):
        Settings(loan_type_policies={"*": {"mortgage": {}}})


def test_a_development_loan_may_pay_for_land_a_working_capital_loan_may_not() -> None:
    th = Thresholds()
    land = lot(1, 1_000_000 * YUAN, to=SUPPLIER, purpose=Purpose.REAL_ESTATE)
    assert prohibited_use(facts(LoanType.PROJECT, [land]), th) == []
    [alert] = prohibited_use(facts(LoanType.WORKING_CAPITAL, [land]), th)
    assert alert.severity == "critical"
    building = lot(2, 1_000_000 * YUAN, to=SUPPLIER, purpose=Purpose.CONSTRUCTION)
    assert prohibited_use(facts(LoanType.WORKING_CAPITAL, [building]), th)  # not a working-capital purpose
    assert prohibited_use(facts(LoanType.FIXED_ASSET, [building]), th) == []
    assert Purpose.REAL_ESTATE in DEFAULT_POLICIES[LoanType.PROJECT].allowed


def test_a_self_paid_tranche_with_no_payment_reported_after_the_window_alerts() -> None:
    th = Thresholds(self_paid_report_days=30)
    tranche = lot(1, 200_000 * YUAN)
    assert self_paid_report_overdue(facts(LoanType.WORKING_CAPITAL, [tranche], now=T0 + 30 * DAY), th) == []
    [alert] = self_paid_report_overdue(facts(LoanType.WORKING_CAPITAL, [tranche], now=T0 + 31 * DAY), th)
    assert alert.title == "No payment reported out of a self-paid tranche after 31 day(s)"
    assert "化整为零" in alert.explanation
    spent = lot(1, 200_000 * YUAN, remaining=150_000 * YUAN)  # the borrower recorded a payment out of it
    assert self_paid_report_overdue(facts(LoanType.WORKING_CAPITAL, [spent], now=T0 + 31 * DAY), th) == []
