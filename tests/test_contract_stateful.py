"""A hypothesis state machine drives random ledger activity against one deployment and a small Python model.

Every step states what the contract must do: the exact event(s) it emits (with lot ids predicted from the
model's own head) or the exact custom error it refuses with. After every step, for each loan the step
touched, the chain must equal the model: lot balances, disbursed/repaid/status, and the head the model
recomputed by `ledger.protocol.hashchain.HashChain` from the events of each transaction. Conservation checked
against chain state: for every lot, what its children received plus what it still holds is what it got;
a loan's disbursements never exceed its principal.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import World, chain_time, h, make_world, reverts
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger.chain.client import ChainClient, TxResult
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import LoanStatus, PaymentSpec, purpose_mask

_loan_numbers = itertools.count()

SETTINGS = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@dataclass
class LotModel:
    loan_id: str
    holder: LocalAccount
    amount: int
    paid_out: int = 0  # sum of the amounts of its children, from their Paid events
    answer: str | None = None  # the payee's last answer: None, "LotDisputed" or "LotConfirmed"

    @property
    def remaining(self) -> int:
        return self.amount - self.paid_out


@dataclass
class LoanModel:
    principal: int
    allowed: int
    head: str
    disbursed: int = 0
    repaid: int = 0
    status: LoanStatus = LoanStatus.OPEN
    lots: list[str] = field(default_factory=list)
    disbursements: list[int] = field(default_factory=list)

    @property
    def outstanding(self) -> int:
        return self.disbursed - self.repaid


class LedgerMachine(RuleBasedStateMachine):
    world: World  # one deployment for the whole run, set by the test

    def __init__(self) -> None:
        super().__init__()
        self.ledger = self.world.ledger
        self.chain = self.ledger.hash_chain
        cast = self.world.cast
        self.payees = [cast.supplier, cast.supplier2, cast.borrower, cast.subsupplier]
        self.others = [*self.payees, cast.bank, cast.auditor]
        self.loans: dict[str, LoanModel] = {}
        self.lots: dict[str, LotModel] = {}
        self.touched: set[str] = set()

    # ------------------------------------------------------------ helpers

    def _apply(self, loan_id: str, result: TxResult, expected: list[tuple[str, dict[str, Any]]]) -> None:
        """The transaction emitted exactly `expected`; extend the model's head over each event."""
        assert [(e.name, e.args) for e in result.events] == expected
        loan = self.loans[loan_id]
        for event in result.events:
            loan.head = self.chain.step(loan.head, event.name, event.args)

    def _refused(self, loan_id: str, error: str, args: dict[str, Any], call: Callable[[], TxResult]) -> None:
        self.touched.add(loan_id)
        with reverts(error, **args):
            call()

    # Draws pick from lists in insertion order, never sorted by id: ids are hashes that differ between
    # examples (the loan counter moves on), and hypothesis needs the same choices to mean the same thing.

    def _draw_loan(self, data: st.DataObject) -> tuple[str, LoanModel]:
        loan_id = data.draw(st.sampled_from(list(self.loans)), label="loan")
        self.touched.add(loan_id)
        return loan_id, self.loans[loan_id]

    def _spendable(self) -> list[str]:
        return [lot_id for lot_id, lot in self.lots.items() if lot.remaining > 0]

    # ------------------------------------------------------------ rules

    @rule(
        principal=st.integers(1, 10**12),
        purposes=st.sets(st.integers(0, 31), min_size=1, max_size=6),
        lender=st.sampled_from(["bank", "bank2"]),
    )
    def open_loan(self, principal: int, purposes: set[int], lender: str) -> None:
        cast = self.world.cast
        loan_id = h(f"stateful-loan:{next(_loan_numbers)}")
        maturity = chain_time(self.ledger.client) + 365 * 86400
        result = self.ledger.open_loan(
            getattr(cast, lender),
            loan_id=loan_id,
            borrower=cast.borrower.address,
            borrower_ref=h(f"ref:{loan_id}"),
            principal=principal,
            currency="CNY",
            allowed_purposes=purposes,
            maturity=maturity,
            terms_hash=h(f"terms:{loan_id}"),
        )
        payload = {
            "loanId": loan_id,
            "lenderOrg": cast.bank_org,
            "borrower": cast.borrower.address,
            "borrowerRef": h(f"ref:{loan_id}"),
            "principal": principal,
            "currency": "0x" + b"CNY".hex(),
            "allowedPurposes": purpose_mask(purposes),
            "maturity": maturity,
            "termsHash": h(f"terms:{loan_id}"),
        }
        head = self.chain.step("0x" + "00" * 32, "LoanOpened", payload)
        self.loans[loan_id] = LoanModel(principal, purpose_mask(purposes), "0x" + "00" * 32)
        self._apply(loan_id, result, [("LoanOpened", {**payload, "head": head})])
        self.touched.add(loan_id)

    @precondition(lambda self: self.loans)
    @rule(data=st.data())
    def disburse(self, data: st.DataObject) -> None:
        loan_id, loan = self._draw_loan(data)
        payee = data.draw(st.sampled_from(self.payees), label="payee")
        amount = data.draw(st.integers(1, loan.principal), label="amount")
        purpose = data.draw(st.integers(0, 31), label="purpose")
        bank = self.world.cast.bank

        def call() -> TxResult:
            return self.ledger.disburse(
                bank,
                loan_id=loan_id,
                payee=payee.address,
                amount=amount,
                purpose=purpose,
                evidence_hash=h("d"),
            )

        if loan.status != LoanStatus.OPEN:
            return self._refused(
                loan_id, "LedgerLoanNotOpen", {"loanId": loan_id, "status": loan.status}, call
            )
        undisbursed = loan.principal - loan.disbursed
        if amount > undisbursed:
            args = {"loanId": loan_id, "undisbursed": undisbursed, "requested": amount}
            return self._refused(loan_id, "LedgerPrincipalExceeded", args, call)
        payload = {
            "loanId": loan_id,
            "payee": payee.address,
            "amount": amount,
            "purpose": purpose,
            "declaredUse": bool(loan.allowed >> purpose & 1),
            "entrusted": payee != self.world.cast.borrower,
            "evidenceHash": h("d"),
        }
        lot_id = self.chain.step(loan.head, "Disbursed", payload)
        self._apply(loan_id, call(), [("Disbursed", {**payload, "lotId": lot_id})])
        loan.disbursed += amount
        loan.disbursements.append(amount)
        loan.lots.append(lot_id)
        self.lots[lot_id] = LotModel(loan_id, payee, amount)
        return None

    @precondition(lambda self: any(lot.remaining > 0 for lot in self.lots.values()))
    @rule(data=st.data())
    def pay(self, data: st.DataObject) -> None:
        lot_id = data.draw(st.sampled_from(self._spendable()), label="lot")
        lot = self.lots[lot_id]
        loan_id, loan = lot.loan_id, self.loans[lot.loan_id]
        self.touched.add(loan_id)
        spender = data.draw(st.sampled_from([lot.holder, self.world.cast.bank2]), label="spender")
        payee = data.draw(st.sampled_from(self.payees), label="payee")
        amount = data.draw(st.integers(1, 2 * lot.remaining), label="amount")
        purpose = data.draw(st.integers(0, 31), label="purpose")

        def call() -> TxResult:
            return self.ledger.pay(
                spender, loan_id=loan_id, from_lot=lot_id, payee=payee.address, amount=amount, purpose=purpose
            )

        if amount > lot.remaining:
            args = {"lotId": lot_id, "remaining": lot.remaining, "requested": amount}
            return self._refused(loan_id, "LedgerInsufficientFunds", args, call)
        payload = {
            "loanId": loan_id,
            "payee": payee.address,
            "parentLotId": lot_id,
            "amount": amount,
            "purpose": purpose,
            "declaredUse": bool(loan.allowed >> purpose & 1),
            "evidenceHash": "0x" + "00" * 32,
        }
        child = self.chain.step(loan.head, "Paid", payload)
        self._apply(loan_id, call(), [("Paid", {**payload, "lotId": child})])
        lot.paid_out += amount
        loan.lots.append(child)
        self.lots[child] = LotModel(loan_id, payee, amount)
        return None

    @precondition(lambda self: any(lot.remaining > 0 for lot in self.lots.values()))
    @rule(data=st.data())
    def pay_batch(self, data: st.DataObject) -> None:
        """1-5 payments of one loan by its lender; later items may spend lots earlier items create."""
        first = self.lots[data.draw(st.sampled_from(self._spendable()), label="first lot")]
        loan_id, loan = first.loan_id, self.loans[first.loan_id]
        self.touched.add(loan_id)
        size = data.draw(st.integers(1, 5), label="size")
        remaining = {lot_id: self.lots[lot_id].remaining for lot_id in loan.lots}
        holders = {lot_id: self.lots[lot_id].holder for lot_id in loan.lots}
        head, specs, expected, failure = loan.head, [], [], None
        for _ in range(size):
            sources = [lot_id for lot_id, left in remaining.items() if left > 0]
            if not sources:
                break
            source = data.draw(st.sampled_from(sources), label="from")
            payee = data.draw(st.sampled_from(self.payees), label="payee")
            amount = data.draw(st.integers(1, remaining[source] + 2), label="amount")
            purpose = data.draw(st.integers(0, 31), label="purpose")
            specs.append(PaymentSpec(source, payee.address, amount, purpose))
            if amount > remaining[source]:
                failure = {"lotId": source, "remaining": remaining[source], "requested": amount}
                break
            payload = {
                "loanId": loan_id,
                "payee": payee.address,
                "parentLotId": source,
                "amount": amount,
                "purpose": purpose,
                "declaredUse": bool(loan.allowed >> purpose & 1),
                "evidenceHash": "0x" + "00" * 32,
            }
            head = self.chain.step(head, "Paid", payload)
            expected.append(("Paid", {**payload, "lotId": head}))
            remaining[source] -= amount
            remaining[head], holders[head] = amount, payee

        def call() -> TxResult:
            return self.ledger.pay_batch(self.world.cast.bank, loan_id=loan_id, payments=specs)

        if (
            failure is not None
        ):  # all or nothing: the model keeps its state, the invariants check the chain did
            return self._refused(loan_id, "LedgerInsufficientFunds", failure, call)
        self._apply(loan_id, call(), expected)
        for _, args in expected:
            self.lots[args["parentLotId"]].paid_out += args["amount"]
            self.lots[args["lotId"]] = LotModel(loan_id, holders[args["lotId"]], args["amount"])
            loan.lots.append(args["lotId"])
        return None

    @precondition(lambda self: self.lots)
    @rule(data=st.data(), dispute=st.booleans(), by_payee=st.booleans())
    def confirm_or_dispute(self, data: st.DataObject, dispute: bool, by_payee: bool) -> None:
        lot_id = data.draw(st.sampled_from(list(self.lots)), label="lot")
        lot = self.lots[lot_id]
        loan_id, loan = lot.loan_id, self.loans[lot.loan_id]
        self.touched.add(loan_id)
        wrong = [a for a in self.others if a.address != lot.holder.address]
        sender = lot.holder if by_payee else data.draw(st.sampled_from(wrong), label="wrong sender")
        name, field_name = ("LotDisputed", "reasonHash") if dispute else ("LotConfirmed", "evidenceHash")

        def call() -> TxResult:
            if dispute:
                return self.ledger.dispute_lot(sender, loan_id=loan_id, lot_id=lot_id, reason_hash=h("why"))
            return self.ledger.confirm_lot(sender, loan_id=loan_id, lot_id=lot_id, evidence_hash=h("why"))

        if not by_payee:
            return self._refused(
                loan_id, "LedgerNotLotPayee", {"lotId": lot_id, "account": sender.address}, call
            )
        # An answer moves only forward and is given once per kind: nothing follows a confirmation, and a
        # dispute is said once (a confirmation then withdraws it).
        if lot.answer == "LotConfirmed" or lot.answer == name:
            confirmed = lot.answer == "LotConfirmed"
            error = "LedgerLotAlreadyConfirmed" if confirmed else "LedgerLotAlreadyDisputed"
            return self._refused(loan_id, error, {"loanId": loan_id, "lotId": lot_id}, call)
        payload = {"loanId": loan_id, "lotId": lot_id, field_name: h("why")}
        head = self.chain.step(loan.head, name, payload)
        self._apply(loan_id, call(), [(name, {**payload, "head": head})])
        lot.answer = name
        return None

    @precondition(lambda self: self.loans)
    @rule(data=st.data())
    def repay(self, data: st.DataObject) -> None:
        loan_id, loan = self._draw_loan(data)
        amount = data.draw(st.integers(1, max(1, 2 * loan.outstanding)), label="amount")

        def call() -> TxResult:
            return self.ledger.repay(
                self.world.cast.bank, loan_id=loan_id, amount=amount, evidence_hash=h("r")
            )

        if loan.status != LoanStatus.OPEN:
            return self._refused(
                loan_id, "LedgerLoanNotOpen", {"loanId": loan_id, "status": loan.status}, call
            )
        if amount > loan.outstanding:
            args = {"loanId": loan_id, "outstanding": loan.outstanding, "requested": amount}
            return self._refused(loan_id, "LedgerRepaymentExceedsOutstanding", args, call)
        payload = {
            "loanId": loan_id,
            "amount": amount,
            "outstanding": loan.outstanding - amount,
            "evidenceHash": h("r"),
        }
        head = self.chain.step(loan.head, "Repaid", payload)
        self._apply(loan_id, call(), [("Repaid", {**payload, "head": head})])
        loan.repaid += amount
        return None

    @precondition(lambda self: self.loans)
    @rule(data=st.data())
    def repay_allocated(self, data: st.DataObject) -> None:
        """A split repayment (issue 18): only the principal part lowers what is outstanding."""
        loan_id, loan = self._draw_loan(data)
        principal = data.draw(st.integers(0, max(1, 2 * loan.outstanding)), label="principal")
        interest = data.draw(st.integers(0, 10**9), label="interest")
        penalty = data.draw(st.integers(0, 10**6), label="penalty")

        def call() -> TxResult:
            return self.ledger.repay_allocated(
                self.world.cast.bank,
                loan_id=loan_id,
                principal=principal,
                interest=interest,
                penalty=penalty,
                evidence_hash=h("ra"),
            )

        if loan.status != LoanStatus.OPEN:
            return self._refused(
                loan_id, "LedgerLoanNotOpen", {"loanId": loan_id, "status": loan.status}, call
            )
        if principal + interest + penalty == 0:
            return self._refused(loan_id, "LedgerZeroAmount", {}, call)
        if principal > loan.outstanding:
            args = {"loanId": loan_id, "outstanding": loan.outstanding, "requested": principal}
            return self._refused(loan_id, "LedgerRepaymentExceedsOutstanding", args, call)
        payload = {
            "loanId": loan_id,
            "principal": principal,
            "interest": interest,
            "penalty": penalty,
            "outstanding": loan.outstanding - principal,
            "evidenceHash": h("ra"),
        }
        head = self.chain.step(loan.head, "RepaymentApplied", payload)
        self._apply(loan_id, call(), [("RepaymentApplied", {**payload, "head": head})])
        loan.repaid += principal
        return None

    @precondition(lambda self: self.loans)
    @rule(data=st.data(), status=st.sampled_from([LoanStatus.REPAID, LoanStatus.WRITTEN_OFF]))
    def close_loan(self, data: st.DataObject, status: LoanStatus) -> None:
        loan_id, loan = self._draw_loan(data)

        def call() -> TxResult:
            return self.ledger.close_loan(
                self.world.cast.bank, loan_id=loan_id, status=status, reason_hash=h("c")
            )

        if loan.status != LoanStatus.OPEN:
            return self._refused(
                loan_id, "LedgerLoanNotOpen", {"loanId": loan_id, "status": loan.status}, call
            )
        if status == LoanStatus.REPAID and loan.outstanding:
            args = {"loanId": loan_id, "outstanding": loan.outstanding}
            return self._refused(loan_id, "LedgerLoanOutstanding", args, call)
        payload = {"loanId": loan_id, "status": int(status), "reasonHash": h("c")}
        head = self.chain.step(loan.head, "LoanClosed", payload)
        self._apply(loan_id, call(), [("LoanClosed", {**payload, "head": head})])
        loan.status = status
        return None

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_equals_model_for_touched_loans(self) -> None:
        for loan_id in sorted(self.touched):
            model = self.loans[loan_id]
            state = self.ledger.get_loan(loan_id)
            assert (state.principal, state.disbursed, state.repaid, state.status, state.head) == (
                model.principal,
                model.disbursed,
                model.repaid,
                model.status,
                model.head,
            )
            assert self.ledger.head_of(loan_id) == model.head
            for lot_id in model.lots:
                lot = self.lots[lot_id]
                on_chain = self.ledger.get_lot(loan_id, lot_id)
                assert (on_chain.holder, on_chain.allowed_purposes) == (lot.holder.address, model.allowed)
                # Conservation, with the remainder read from the chain and the children from their events.
                assert lot.paid_out + on_chain.remaining == lot.amount
            assert sum(model.disbursements) == state.disbursed <= state.principal
        self.touched.clear()


@pytest.fixture(scope="module")
def deployment(client: ChainClient, compiled: CompiledContract) -> World:
    """One deployment for every example of the run; loan ids never repeat (a module-wide counter)."""
    return make_world(client, compiled)


@pytest.mark.slow
def test_ledger_matches_its_model_under_random_activity(deployment: World) -> None:
    LedgerMachine.world = deployment
    run_state_machine_as_test(LedgerMachine, settings=SETTINGS)
