"""A portfolio simulator that drives the REAL ledger contract, for the behaviour score's demo and tests.

`simulate_portfolio` opens `loans` loans on a deployed ledger and lives through `months` months of chain
time (an empty block mined at each hour that has work: `evm_mine [timestamp]`), sending every
disbursement, payment, confirmation, dispute, repayment, valuation and site visit as a real transaction;
the indexer then mirrors them like any other history. Each
loan has a hidden propensity p ~ Beta(2, 5) that moves how it behaves (docs/scoring.md, "Generative model",
states the model in full):

- repayments: each due date a loan in good standing pays on time, or 1-20 days late with probability
  0.05 + 0.6 p; it falls behind (misses the instalment) with monthly hazard 0.01 + 0.4 p^2; a loan behind
  catches up at its next due date with probability 0.8 (1 - p)^3, else misses again; three misses in a row
  and it stops paying (it reaches 90+ days past due);
- use of funds: with probability 0.5 p a supplier pays part of its lot on to an undeclared purpose, half of
  those to a prohibited one (securities);
- pass-through: a supplier pays on within 1-6 hours with probability 0.15 + 0.6 p, else after 3-30 days;
- confirmations: a payee disputes a payment with probability 0.35 p, confirms it with probability
  0.9 (1 - 0.6 p) otherwise, else never answers;
- collateral (half the loans): valued at opening at 1.0-1.6 x principal, revalued every six months with a
  drift of 2% - 25% p; site visits quarterly, each skipped with probability 0.8 p.

Seeded (`seed`) and reproducible for a given chain: the same seed gives the same loans, amounts, times and
choices. The propensities are returned for tests only (`SimulationResult`); features and labels never see
them. The loans' structured terms (the schedule days past due are counted from) go to the off-chain
`loan_metadata` table of `engine`, as the API stores them when it opens a loan.
"""

from __future__ import annotations

import functools
import heapq
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy.engine import Engine

from ledger.chain.client import ChainClient
from ledger.chain.contract import (
    PAY_GAS,
    LedgerContract,
    PaymentSpec,
    as_bytes32,
    pay_batch_gas,
    purpose_mask,
)
from ledger.protocol.codes import ENTERPRISE_ROLE, LENDER_ROLE, InspectionKind, LoanStatus
from ledger.protocol.purposes import Purpose
from ledger.protocol.servicing import ScheduleMethod, add_months
from ledger.protocol.terms import InterestTerms, LoanTerms, LoanType
from ledger.store.offchain import LoanMetadata, TermsVersion

__all__ = ["SimulatedLoan", "SimulationResult", "simulate_portfolio"]

DAY = 86_400
HOUR = 3_600
GAS = 400_000  # every simulated call but a batch fits this (a batch's gas is computed: pay_batch_gas)
ALLOWED = (Purpose.RAW_MATERIALS, Purpose.EQUIPMENT, Purpose.WAGES)
UNDECLARED = Purpose.RENT_UTILITIES  # not among the allowed purposes, not prohibited
PROHIBITED = Purpose.SECURITIES
INSTALMENTS = 12

Sent = list[tuple[str, Callable[[Any], None] | None]]
"""What an action sent: each transaction's hash and what to do with its result."""

Progress = Callable[[int, int], None]
"""progress(chain seconds simulated, chain seconds in all): called as the simulation moves forward."""


@dataclass(frozen=True)
class SimulatedLoan:
    loan_id: str
    propensity: float  # the hidden p: for tests only, never for features or labels
    opened_at: int  # chain time of the opening


@dataclass
class SimulationResult:
    loans: list[SimulatedLoan]
    start: int  # chain time when the simulation began
    end: int  # chain time when it ended
    transactions: int
    seconds: float  # wall-clock time

    @property
    def tx_per_second(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0

    def propensities(self) -> dict[str, float]:
        return {loan.loan_id: loan.propensity for loan in self.loans}


def _h(*parts: object) -> str:
    return "0x" + keccak(text=":".join(str(p) for p in parts)).hex()


def _key_account(*parts: object) -> LocalAccount:
    return Account.from_key(keccak(text="fundflow-simulator:" + ":".join(str(p) for p in parts)))


@dataclass
class _Loan:
    index: int
    loan_id: str
    p: float
    open_at: int
    principal: int
    terms: LoanTerms
    borrower: LocalAccount
    collateral: bool
    schedule: list[tuple[int, int, int]] = field(default_factory=list)  # (due timestamp, principal, interest)
    missed: int = 0  # consecutive instalments missed
    arrears: list[int] = field(default_factory=list)  # indexes of unpaid instalments
    stopped: bool = False
    repaid_all: bool = False
    lot_count: int = 0


@dataclass(order=True)
class _Action:
    at: int
    seq: int
    run: Callable[[], Sent] = field(compare=False)


class _Sim:
    def __init__(
        self,
        client: ChainClient,
        ledger: LedgerContract,
        operator: LocalAccount,
        engine: Engine,
        *,
        loans: int,
        months: int,
        seed: int,
        progress: Progress | None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.operator = operator
        self.engine = engine
        self.n = loans
        self.months = months
        self.seed = seed
        self.progress = progress
        self.rng = np.random.default_rng(seed)
        self.queue: list[_Action] = []
        self.seq = 0
        self.sent = 0
        tag = (seed, ledger.address)
        self.bank = _key_account("bank", *tag)
        self.bank_org = _h("sim-org", "bank", *tag)
        self.suppliers = [_key_account("supplier", i, *tag) for i in range(8)]
        self.subsuppliers = [_key_account("subsupplier", i, *tag) for i in range(6)]
        self.loans: list[_Loan] = []
        self.clock = 0  # chain time of the actions being run

    # ------------------------------------------------------------------ plumbing

    def at(self, when: int, run: Callable[[], Sent]) -> None:
        self.seq += 1
        heapq.heappush(self.queue, _Action(when, self.seq, run))

    def send(self, sender: LocalAccount, function: str, *args: Any, gas: int = GAS) -> str:
        self.sent += 1
        return self.ledger.send(sender, function, *args, gas=gas)

    def now(self) -> int:
        return int(self.client.get_header().timestamp)

    def move_to(self, when: int) -> None:
        """Mine an empty block at `when` (when the chain is behind it): the following blocks go on from
        there. (`evm_increaseTime` alone would add up over slots in which nothing was sent.)"""
        if when > self.now():
            self.client.rpc("evm_mine", [when])

    def run_until(self, end: int, start: int) -> None:
        """Run every action in time order: actions of the same hour are sent together (pipelined), then
        their receipts are awaited and their follow-ups scheduled."""
        while self.queue and self.queue[0].at <= end:
            slot = self.queue[0].at // HOUR
            batch = []
            while self.queue and self.queue[0].at // HOUR == slot:
                batch.append(heapq.heappop(self.queue))
            self.move_to(batch[0].at)
            self.clock = batch[0].at
            pending = [item for action in batch for item in action.run()]
            for tx_hash, then in pending:
                result = self.ledger.result_of(tx_hash)
                if then is not None:
                    then(result)
            if self.progress is not None:
                self.progress(min(batch[-1].at, end) - start, end - start)

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        op = self.operator
        calls = [
            ("registerOrganization", self.bank_org, _h("profile", self.bank_org)),
            ("addAccount", self.bank_org, self.bank.address),
            ("grantRole", LENDER_ROLE, self.bank.address),
        ]
        for group, accounts in (("supplier", self.suppliers), ("subsupplier", self.subsuppliers)):
            for i, account in enumerate(accounts):
                org = _h("sim-org", group, i, self.seed, self.ledger.address)
                calls += [
                    ("registerOrganization", org, _h("profile", org)),
                    ("addAccount", org, account.address),
                    ("grantRole", ENTERPRISE_ROLE, account.address),
                ]
        hashes = [
            self.send(op, fn, *(as_bytes32(a) if _is_b32(a) else a for a in args)) for fn, *args in calls
        ]
        for tx in hashes:
            self.ledger.result_of(tx)

    def plan(self, start: int) -> None:
        """Draw every loan's hidden propensity and terms, and schedule its opening."""
        rng = self.rng
        last_open = max(1, self.months - 6) * 30 * DAY
        for i in range(self.n):
            p = float(rng.beta(2.0, 5.0))
            open_at = start + int(rng.integers(0, last_open)) // DAY * DAY + 9 * HOUR
            principal = int(round(float(np.exp(rng.normal(np.log(2_000_000), 0.6))))) * 100
            opened = datetime.fromtimestamp(open_at, UTC).date()
            terms = LoanTerms(
                counterparties=[s.address for s in self.suppliers],
                inspection_interval_days=90,
                loan_type=LoanType.WORKING_CAPITAL,
                interest=InterestTerms(
                    method=ScheduleMethod.EQUAL_PRINCIPAL,
                    annual_rate=Decimal(str(round(float(rng.uniform(0.035, 0.065)), 4))),
                    start_date=opened,
                    first_due_date=add_months(opened, 1),
                    periods=INSTALMENTS,
                ),
            )
            loan = _Loan(
                index=i,
                loan_id=_h("sim-loan", i, self.seed, self.ledger.address),
                p=p,
                open_at=open_at,
                principal=principal,
                terms=terms,
                borrower=_key_account("borrower", i, self.seed, self.ledger.address),
                collateral=bool(rng.random() < 0.5),
            )
            loan.schedule = [
                (_day_ts(item.due_date), item.principal, item.interest) for item in terms.schedule(principal)
            ]
            self.loans.append(loan)
            self.at(open_at, functools.partial(self.open, loan))

    # ------------------------------------------------------------------ behaviour

    def open(self, loan: _Loan) -> Sent:
        maturity = loan.schedule[-1][0] + DAY - 1
        tx = self.send(
            self.bank,
            "openLoan",
            _b32(loan.loan_id),
            loan.borrower.address,
            _b32(_h("borrower-ref", loan.loan_id)),
            loan.principal,
            b"CNY",
            purpose_mask(ALLOWED),
            maturity,
            _b32(loan.terms.hash()),
        )

        def opened(_: Any) -> None:
            self.at(loan.open_at + HOUR, lambda: self.disburse(loan))
            if loan.collateral:
                value = int(loan.principal * self.rng.uniform(1.0, 1.6))
                self.at(loan.open_at + 2 * HOUR, lambda: self.value(loan, value))
            self.at(loan.open_at + int(self.rng.integers(80, 100)) * DAY, lambda: self.visit(loan))
            for k in range(len(loan.schedule)):
                self.at(loan.schedule[k][0] + 10 * HOUR, functools.partial(self.due, loan, k))

        return [(tx, opened)]

    def disburse(self, loan: _Loan) -> Sent:
        rng = self.rng
        parts = int(rng.integers(1, 4))
        cuts = np.sort(rng.uniform(0.2, 0.8, parts - 1)) if parts > 1 else np.array([])
        shares = np.diff(np.concatenate([[0.0], cuts, [1.0]]))
        amounts = [int(loan.principal * s) for s in shares]
        amounts[-1] = loan.principal - sum(amounts[:-1])
        out: Sent = []
        for amount in amounts:
            supplier = self.suppliers[int(rng.integers(0, len(self.suppliers)))]
            purpose = ALLOWED[int(rng.integers(0, len(ALLOWED)))]
            tx = self.send(
                self.bank,
                "disburse",
                _b32(loan.loan_id),
                supplier.address,
                amount,
                int(purpose),
                _b32(_h("ev", loan.loan_id, amount)),
            )

            def received(result: Any, supplier: LocalAccount = supplier, amount: int = amount) -> None:
                lot = str(result.event("Disbursed").args["lotId"])
                self.after_receipt(loan, supplier, lot, amount, result)

            out.append((tx, received))
        return out

    def after_receipt(self, loan: _Loan, holder: LocalAccount, lot: str, amount: int, result: Any) -> None:
        """A payee got a lot: it answers (confirms, disputes or stays silent) and pays some of it on."""
        rng = self.rng
        received_at = self.clock
        answer = rng.random()
        if answer < 0.35 * loan.p:
            self.at(
                received_at + int(rng.integers(1, 6)) * DAY,
                lambda: self.answer(loan, holder, lot, "disputeLot"),
            )
        elif rng.random() < 0.9 * (1 - 0.6 * loan.p):
            self.at(
                received_at + int(rng.integers(1, 6)) * DAY,
                lambda: self.answer(loan, holder, lot, "confirmLot"),
            )
        if holder not in self.suppliers:
            return
        fast = rng.random() < 0.15 + 0.6 * loan.p
        delay = int(rng.integers(1, 7)) * HOUR if fast else int(rng.integers(3, 31)) * DAY
        payments = [
            PaymentSpec(
                lot,
                self.subsuppliers[int(rng.integers(0, len(self.subsuppliers)))].address,
                int(amount * rng.uniform(0.3, 0.6)),
                int(ALLOWED[int(rng.integers(0, len(ALLOWED)))]),
            )
        ]
        if rng.random() < 0.5 * loan.p:
            purpose = PROHIBITED if rng.random() < 0.5 else UNDECLARED
            payee = self.subsuppliers[int(rng.integers(0, len(self.subsuppliers)))].address
            payments.append(PaymentSpec(lot, payee, int(amount * rng.uniform(0.2, 0.35)), int(purpose)))
        self.at(received_at + delay, lambda: self.pay_on(loan, holder, payments))

    def pay_on(self, loan: _Loan, holder: LocalAccount, payments: list[PaymentSpec]) -> Sent:
        if len(payments) == 1:
            p = payments[0]
            tx = self.send(
                holder,
                "pay",
                _b32(loan.loan_id),
                _b32(p.from_lot),
                p.payee,
                p.amount,
                p.purpose,
                _b32(p.evidence_hash),
                gas=PAY_GAS,
            )
        else:
            self.sent += 1
            tx = self.client.send(
                holder,
                self.ledger.address,
                self.ledger.encode_pay_batch(loan.loan_id, payments),
                gas=pay_batch_gas(payments),
                errors=self.ledger.errors,
            )

        def paid(result: Any) -> None:
            by_payee = {acc.address.lower(): acc for acc in self.subsuppliers}
            for event in result.events:
                if event.name == "Paid":
                    payee = by_payee[str(event.args["payee"]).lower()]
                    self.after_receipt(
                        loan, payee, str(event.args["lotId"]), int(event.args["amount"]), result
                    )

        return [(tx, paid)]

    def answer(self, loan: _Loan, holder: LocalAccount, lot: str, function: str) -> Sent:
        return [(self.send(holder, function, _b32(loan.loan_id), _b32(lot), _b32(_h(function, lot))), None)]

    def value(self, loan: _Loan, value: int) -> Sent:
        if loan.repaid_all:
            return []
        tx = self.send(
            self.bank,
            "valueCollateral",
            _b32(loan.loan_id),
            _b32(_h("collateral", loan.loan_id)),
            max(value, 1),
            _b32(_h("appraisal", loan.loan_id, value)),
        )
        drift = 0.02 - 0.25 * loan.p + float(self.rng.normal(0, 0.05))
        following = int(value * max(0.05, 1 + drift))
        self.at(self.clock + 182 * DAY, lambda: self.value(loan, following))
        return [(tx, None)]

    def visit(self, loan: _Loan) -> Sent:
        if loan.repaid_all:
            return []
        nxt = self.clock + int(self.rng.integers(85, 95)) * DAY
        self.at(nxt, lambda: self.visit(loan))
        if self.rng.random() < 0.8 * loan.p:
            return []
        return [
            (
                self.send(
                    self.bank,
                    "recordInspection",
                    _b32(loan.loan_id),
                    int(InspectionKind.SITE_VISIT),
                    _b32(_h("visit", loan.loan_id, nxt)),
                ),
                None,
            )
        ]

    def due(self, loan: _Loan, k: int) -> Sent:
        """Instalment k falls due today: pay it (on time or a few days late), catch up, or miss it."""
        rng = self.rng
        if loan.stopped:
            return []
        if loan.arrears:
            if rng.random() < 0.8 * (1 - loan.p) ** 3:
                owed = [*loan.arrears, k]
                loan.arrears, loan.missed = [], 0
                return self.repay(loan, owed, final=k == len(loan.schedule) - 1)
            loan.arrears.append(k)
            loan.missed += 1
            if loan.missed >= 3:
                loan.stopped = True
            return []
        if rng.random() < 0.01 + 0.4 * loan.p**2:
            loan.arrears, loan.missed = [k], 1
            return []
        final = k == len(loan.schedule) - 1
        if rng.random() < 0.05 + 0.6 * loan.p:
            late = int(rng.integers(1, 21)) * DAY
            self.at(loan.schedule[k][0] + late + 10 * HOUR, lambda: self.repay(loan, [k], final=final))
            return []
        return self.repay(loan, [k], final=final)

    def repay(self, loan: _Loan, items: list[int], *, final: bool) -> Sent:
        principal = sum(loan.schedule[i][1] for i in items)
        interest = sum(loan.schedule[i][2] for i in items)
        tx = self.send(
            self.bank,
            "repayAllocated",
            _b32(loan.loan_id),
            principal,
            interest,
            0,
            _b32(_h("repay", loan.loan_id, *items)),
        )
        if not final:
            return [(tx, None)]

        def closed(_: Any) -> None:
            loan.repaid_all = True
            self.at(self.clock + DAY, lambda: self.close(loan))

        return [(tx, closed)]

    def close(self, loan: _Loan) -> Sent:
        return [
            (
                self.send(
                    self.bank,
                    "closeLoan",
                    _b32(loan.loan_id),
                    int(LoanStatus.REPAID),
                    _b32(_h("closed", loan.loan_id)),
                ),
                None,
            )
        ]

    # ------------------------------------------------------------------ off chain

    def store_terms(self) -> None:
        t = LoanMetadata.__table__  # type: ignore[attr-defined]
        rows = [
            {
                "loan_id": loan.loan_id,
                "loan_number": f"SIM-{self.seed}-{loan.index:05d}",
                "lender_org": self.bank_org,
                "terms": loan.terms.document(),
                "terms_hash": loan.terms.hash(),
                "created_by": self.bank.address,
            }
            for loan in self.loans
        ]
        v = TermsVersion.__table__  # type: ignore[attr-defined]
        versions = [
            {
                "loan_id": r["loan_id"],
                "terms_hash": r["terms_hash"],
                "terms": r["terms"],
                "stored_at": datetime.now(UTC),
            }
            for r in rows
        ]
        with self.engine.begin() as conn:
            for table in (t, v):
                conn.execute(sa.delete(table).where(table.c.loan_id.in_([r["loan_id"] for r in rows])))
            conn.execute(sa.insert(t), rows)
            conn.execute(sa.insert(v), versions)


def _is_b32(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("0x") and len(value) == 66


def _b32(value: str) -> bytes:
    return as_bytes32(value)


def _day_ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def simulate_portfolio(
    client: ChainClient,
    ledger: LedgerContract,
    *,
    operator: LocalAccount,
    engine: Engine,
    loans: int = 300,
    months: int = 24,
    seed: int = 0,
    progress: Progress | None = None,
) -> SimulationResult:
    """Open `loans` loans on `ledger` (deployed; `operator` registers the simulator's bank and suppliers)
    and run `months` months of chain time through them (see the module docstring for the model). MOVES THE
    CHAIN'S CLOCK: use a chain of its own. The loans' terms are stored in `engine`'s `loan_metadata`
    (migrated). Returns the loans with their hidden propensities (tests only) and the throughput."""
    started = time.perf_counter()
    sim = _Sim(client, ledger, operator, engine, loans=loans, months=months, seed=seed, progress=progress)
    sim.setup()
    start = (sim.now() // DAY + 1) * DAY
    end = start + int(months * 365.25 / 12 * DAY)
    sim.plan(start)
    sim.store_terms()
    sim.run_until(end, start)
    sim.move_to(end)
    elapsed = time.perf_counter() - started
    result = [SimulatedLoan(loan.loan_id, loan.p, loan.open_at) for loan in sim.loans]
    return SimulationResult(result, start, end, sim.sent, elapsed)
