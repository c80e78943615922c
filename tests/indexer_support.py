"""Helpers for the indexer tests: random ledger activity, and the check that the mirror equals the chain.

Ground truth is fetched independently of the indexer: one `eth_getLogs` over the whole indexed range for the
raw events, headers for the blocks, and contract reads (getLoan, getLot, headOf, hasRole ...) pinned to the
indexed block for the projections.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from ledger.chain.contract import LedgerContract, PaymentSpec
from ledger.mirror.projections import ROLE_NAMES
from ledger.protocol.events import EventDecoder

ZERO = "0x" + "00" * 32


def _h(label: str) -> str:
    return "0x" + keccak(text=label).hex()


@dataclass
class _LotInfo:
    loan_id: str
    holder: LocalAccount
    remaining: int
    answer: str = "none"  # the payee's answer so far: none, disputed or confirmed (it only moves forward)


@dataclass
class Activity:
    """Random but valid ledger activity on a world from tests/conftest.py (`make_world`)."""

    world: Any
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    loans: dict[str, dict[str, int]] = field(default_factory=dict)
    lots: dict[str, _LotInfo] = field(default_factory=dict)
    counter: int = 0

    @property
    def ledger(self) -> LedgerContract:
        return self.world.ledger  # type: ignore[no-any-return]

    def _label(self, what: str) -> str:
        self.counter += 1
        return f"{what}:{self.counter}:{self.rng.random()}"

    def open_loan(self) -> str:
        cast = self.world.cast
        loan_id = _h(self._label("loan"))
        principal = self.rng.randint(1_000, 10**12)
        self.ledger.open_loan(
            cast.bank,
            loan_id=loan_id,
            borrower=cast.borrower.address,
            borrower_ref=_h(self._label("ref")),
            principal=principal,
            currency="CNY",
            allowed_purposes=(1, 3, 4),
            maturity=int(time.time()) + 365 * 86400,
            terms_hash=_h(self._label("terms")),
        )
        self.loans[loan_id] = {"principal": principal, "disbursed": 0, "repaid": 0, "open": 1}
        return loan_id

    def _enterprise(self) -> LocalAccount:
        cast = self.world.cast
        return self.rng.choice([cast.borrower, cast.supplier, cast.supplier2, cast.subsupplier])  # type: ignore[no-any-return]

    def _open_loan_id(self) -> str | None:
        open_ids = [i for i, s in self.loans.items() if s["open"]]
        return self.rng.choice(open_ids) if open_ids else None

    def disburse(self, loan_id: str | None = None) -> None:
        loan_id = loan_id or self._open_loan_id()
        if loan_id is None:
            return
        state = self.loans[loan_id]
        left = state["principal"] - state["disbursed"]
        if left <= 0:
            return
        amount = self.rng.randint(1, max(1, left // 2))
        payee = self._enterprise()
        result = self.ledger.disburse(
            self.world.cast.bank,
            loan_id=loan_id,
            payee=payee.address,
            amount=amount,
            purpose=self.rng.choice([1, 3, 4, 6]),
            evidence_hash=_h(self._label("ev")),
        )
        state["disbursed"] += amount
        self.lots[result.event("Disbursed").args["lotId"]] = _LotInfo(loan_id, payee, amount)

    def _spendable(self) -> tuple[str, _LotInfo] | None:
        candidates = [
            (k, v) for k, v in self.lots.items() if v.remaining > 1 and self.loans[v.loan_id]["open"]
        ]
        return self.rng.choice(candidates) if candidates else None

    def pay(self) -> None:
        picked = self._spendable()
        if picked is None:
            return
        lot_id, info = picked
        amount = self.rng.randint(1, info.remaining // 2)
        payee = self._enterprise()
        result = self.ledger.pay(
            info.holder,
            loan_id=info.loan_id,
            from_lot=lot_id,
            payee=payee.address,
            amount=amount,
            purpose=self.rng.choice([1, 4, 9, 28]),
            evidence_hash=_h(self._label("ev")),
        )
        info.remaining -= amount
        self.lots[result.event("Paid").args["lotId"]] = _LotInfo(info.loan_id, payee, amount)

    def pay_batch(self) -> None:
        picked = self._spendable()
        if picked is None or picked[1].remaining < 8:
            return
        lot_id, info = picked
        n = self.rng.randint(2, 5)
        each = info.remaining // (2 * n)
        payees = [self._enterprise() for _ in range(n)]
        result = self.ledger.pay_batch(
            self.world.cast.bank,
            loan_id=info.loan_id,
            payments=[PaymentSpec(lot_id, p.address, each, 1, _h(self._label("ev"))) for p in payees],
        )
        info.remaining -= each * n
        paid = [e for e in result.events if e.name == "Paid"]
        for event, payee in zip(paid, payees, strict=True):
            self.lots[event.args["lotId"]] = _LotInfo(info.loan_id, payee, each)

    def confirm_or_dispute(self) -> None:
        # One answer per kind, only forward: none -> disputed -> confirmed, or none -> confirmed.
        open_lots = [lot_id for lot_id, info in self.lots.items() if info.answer != "confirmed"]
        if not open_lots:
            return
        lot_id = self.rng.choice(open_lots)
        info = self.lots[lot_id]
        if info.answer == "disputed" or self.rng.random() < 0.7:
            self.ledger.confirm_lot(
                info.holder, loan_id=info.loan_id, lot_id=lot_id, evidence_hash=_h(self._label("c"))
            )
            info.answer = "confirmed"
        else:
            self.ledger.dispute_lot(
                info.holder, loan_id=info.loan_id, lot_id=lot_id, reason_hash=_h(self._label("d"))
            )
            info.answer = "disputed"

    def servicing(self) -> None:
        loan_id = self._open_loan_id()
        if loan_id is None:
            return
        bank = self.world.cast.bank
        state = self.loans[loan_id]
        choice = self.rng.randint(0, 6)
        if choice == 0 and state["disbursed"] > state["repaid"]:
            amount = self.rng.randint(1, state["disbursed"] - state["repaid"])
            self.ledger.repay(bank, loan_id=loan_id, amount=amount, evidence_hash=_h(self._label("r")))
            state["repaid"] += amount
        elif choice == 1:
            self.ledger.classify(
                bank, loan_id=loan_id, risk_class=self.rng.randint(0, 4), reason_hash=_h("why")
            )
        elif choice == 2:
            self.ledger.value_collateral(
                bank,
                loan_id=loan_id,
                collateral_id=_h(self._label("col")),
                value=self.rng.randint(0, 2**64 - 1),
                evidence_hash=_h("v"),
            )
        elif choice == 3:
            self.ledger.record_inspection(
                bank, loan_id=loan_id, kind=self.rng.randint(0, 2), report_hash=_h("r")
            )
        elif choice == 4:
            self.ledger.restructure(
                bank,
                loan_id=loan_id,
                maturity=int(time.time()) + self.rng.randint(400, 900) * 86400,
                terms_hash=_h("t"),
            )
        elif choice == 5:
            head = self.ledger.head_of(loan_id)
            self.ledger.attest(self.world.cast.auditor, loan_id=loan_id, head=head, report_hash=_h("audit"))
        elif choice == 6 and self.rng.random() < 0.3:
            self.ledger.close_loan(bank, loan_id=loan_id, status=3, reason_hash=_h("written off"))
            state["open"] = 0

    def random_step(self) -> None:
        if not self.loans or self.rng.random() < 0.08:
            self.open_loan()
            return
        action = self.rng.choices(
            [self.disburse, self.pay, self.pay_batch, self.confirm_or_dispute, self.servicing],
            [3, 4, 2, 2, 3],
        )[0]
        action()

    def run(self, blocks: int) -> None:
        """Random steps until `blocks` transactions were mined (one block each: the node automines)."""
        client = self.ledger.client
        start = client.block_number()
        while client.block_number() - start < blocks:
            self.random_step()

    def snapshot(self) -> tuple[str, Any]:
        """evm_snapshot plus this object's bookkeeping, for `revert`."""
        snap = self.ledger.client.rpc("evm_snapshot")
        state = (
            {k: dict(v) for k, v in self.loans.items()},
            {k: _LotInfo(v.loan_id, v.holder, v.remaining, v.answer) for k, v in self.lots.items()},
        )
        return snap, state

    def revert(self, snapshot: tuple[str, Any]) -> None:
        """evm_revert to `snapshot`; what follows builds a different branch (a reorg, seen by the indexer)."""
        snap, (loans, lots) = snapshot
        assert self.ledger.client.rpc("evm_revert", [snap]) is True
        forget_nonces(self.ledger.client)
        self.loans = {k: dict(v) for k, v in loans.items()}
        self.lots = {k: _LotInfo(v.loan_id, v.holder, v.remaining, v.answer) for k, v in lots.items()}
        self.counter += 1000  # new labels, so the new branch's transactions differ from the orphaned ones


def forget_nonces(client: Any) -> None:
    """After evm_revert the node's nonces went back; the client's cached ones must too."""
    client.forget_nonce()


def mine_empty(client: Any, blocks: int) -> None:
    """Mine `blocks` blocks without transactions, each with a distinct timestamp (so a fork's empty blocks
    differ from the orphaned ones)."""
    latest = client.get_header("latest")
    stamp = max(latest.timestamp, int(time.time()))
    for _ in range(blocks):
        stamp += random.randint(1, 50)
        client.rpc("evm_mine", [stamp])


def _tables() -> dict[str, sa.Table]:
    return dict(SQLModel.metadata.tables)


def assert_mirror_matches_chain(engine: Engine, ledger: LedgerContract, deployment: Any) -> int:
    """Every event, block and projection of the mirror equals the chain at the indexed block (returned)."""
    t = _tables()
    client = ledger.client
    with engine.connect() as conn:
        cp = conn.execute(sa.select(t["checkpoint"])).one()
        at = cp.block_number
        stored_events = conn.execute(
            sa.select(t["events"]).order_by(t["events"].c.block_number, t["events"].c.log_index)
        ).all()
        stored_blocks = conn.execute(sa.select(t["blocks"]).order_by(t["blocks"].c.number)).all()
        loans = {r.loan_id: r for r in conn.execute(sa.select(t["loans"]))}
        lots = {(r.loan_id, r.lot_id): r for r in conn.execute(sa.select(t["lots"]))}
        accounts = {r.address: r for r in conn.execute(sa.select(t["accounts"]))}
        roles = {(r.role, r.account): r for r in conn.execute(sa.select(t["role_grants"]))}
        orgs = {r.org_id for r in conn.execute(sa.select(t["organizations"].c.org_id))}
        document_refs = [
            (r.block_number, r.log_index, r.argument, r.event, r.loan_id, r.digest)
            for r in conn.execute(sa.select(t["document_refs"]))
        ]
        record_counts = {
            name: int(conn.execute(sa.select(sa.func.count()).select_from(t[name])).scalar_one())
            for name in (
                "repayments",
                "classifications",
                "collateral_valuations",
                "inspections",
                "restructurings",
                "attestations",
                "confirmations",
            )
        }

    # Blocks: every height from the deployment block to the checkpoint, no gap, hashes as on the node.
    assert [b.number for b in stored_blocks] == list(range(deployment.block_number, at + 1))
    headers = (
        client.get_headers(list(range(deployment.block_number, at + 1)))
        if at >= deployment.block_number
        else []
    )
    assert [(b.hash, b.parent_hash) for b in stored_blocks] == [(h.hash, h.parent_hash) for h in headers]
    if headers:
        assert cp.block_hash == headers[-1].hash

    # Raw events: an independent eth_getLogs of the whole range, compared field by field.
    raw = (
        client.get_logs(deployment.address, deployment.block_number, at)
        if at >= deployment.block_number
        else []
    )
    mirrored = [
        (e.block_hash, e.log_index, e.block_number, e.transaction_hash, list(e.topics), e.data)
        for e in stored_events
    ]
    expected = [
        (
            r["blockHash"],
            int(r["logIndex"], 16),
            int(r["blockNumber"], 16),
            r["transactionHash"],
            r["topics"],
            r["data"],
        )
        for r in raw
    ]
    assert mirrored == expected
    decoder = EventDecoder(deployment.abi)
    decoded = decoder.decode_all(raw)
    assert [e.name for e in stored_events] == [d.name for d in decoded]

    # Loans: the set opened on chain, and every field as getLoan/headOf state it at the indexed block.
    opened = {d.args["loanId"] for d in decoded if d.name == "LoanOpened"}
    assert set(loans) == opened
    for loan_id, row in loans.items():
        truth = ledger.get_loan(loan_id, block=at)
        assert (
            row.lender_org,
            row.borrower,
            row.borrower_ref,
            row.principal,
            row.disbursed,
            row.repaid,
            row.allowed_purposes,
            row.maturity,
            row.currency,
            row.status,
            row.risk_class,
            row.terms_hash,
            row.head,
        ) == (
            truth.lender_org,
            truth.borrower,
            truth.borrower_ref,
            truth.principal,
            truth.disbursed,
            truth.repaid,
            truth.allowed_purposes,
            truth.maturity,
            truth.currency,
            int(truth.status),
            int(truth.risk_class),
            truth.terms_hash,
            truth.head,
        ), loan_id
        assert row.head == ledger.head_of(loan_id, block=at)

    # Lots: the set created on chain, holder/remaining from getLot, the rest from the events themselves.
    created = {(d.args["loanId"], d.args["lotId"]): d for d in decoded if d.name in ("Disbursed", "Paid")}
    assert set(lots) == set(created)
    confirmation: dict[tuple[str, str], tuple[str, str]] = {}
    for d in decoded:
        if d.name == "LotConfirmed":
            confirmation[(d.args["loanId"], d.args["lotId"])] = ("confirmed", d.args["evidenceHash"])
        elif d.name == "LotDisputed":
            confirmation[(d.args["loanId"], d.args["lotId"])] = ("disputed", d.args["reasonHash"])
    for key, row in lots.items():
        truth_lot = ledger.get_lot(*key, block=at)
        event = created[key]
        assert (row.holder, row.remaining) == (truth_lot.holder, truth_lot.remaining), key
        assert row.amount == event.args["amount"]
        assert row.parent_lot_id == (event.args["parentLotId"] if event.name == "Paid" else None)
        assert (row.confirmation, row.confirmation_hash) == confirmation.get(key, ("unconfirmed", None))

    # One record row per record event.
    per_name = {
        "repayments": "Repaid",
        "classifications": "RiskClassified",
        "collateral_valuations": "CollateralValued",
        "inspections": "InspectionRecorded",
        "restructurings": "LoanRestructured",
        "attestations": "TrailAttested",
    }
    for table, name in per_name.items():
        assert record_counts[table] == sum(1 for d in decoded if d.name == name), table
    assert record_counts["confirmations"] == sum(
        1 for d in decoded if d.name in ("LotConfirmed", "LotDisputed")
    )

    # Document references: one per non-zero `...Hash` argument of every event, none of an orphaned block.
    assert sorted(document_refs) == sorted(
        (d.block_number, d.log_index, name, d.name, d.args.get("loanId"), value)
        for d in decoded
        for name, value in d.args.items()
        if name.endswith("Hash") and value != ZERO
    )

    # Participants against contract reads.
    assert orgs == {d.args["orgId"] for d in decoded if d.name == "OrganizationRegistered"}
    for org in orgs:
        assert ledger.organization_exists(org)
    for address, acc in accounts.items():
        on_chain = ledger.read("organizationOf", address, block=at)[0]
        assert ("0x" + on_chain.hex() if acc.active else ZERO) == ("0x" + on_chain.hex()), address
        if acc.active:
            assert "0x" + on_chain.hex() == acc.org_id
    for (role, account), grant in roles.items():
        assert bool(ledger.read("hasRole", bytes.fromhex(role[2:]), account, block=at)[0]) == grant.active
        assert grant.role_name == ROLE_NAMES.get(role, "UNKNOWN_ROLE")
    return int(at)


def indexer_env(db_url: str, rpc_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a `fundflow index` subprocess: this database, this node, the deployment saved
    in `data_dir`/deployment.json; `extra` adds FUNDFLOW_* settings."""
    return {
        **os.environ,
        "FUNDFLOW_DATABASE_URL": db_url,
        "FUNDFLOW_RPC_URL": rpc_url,
        "FUNDFLOW_DEPLOYMENT_FILE": str(data_dir / "deployment.json"),
        "FUNDFLOW_DATA_DIR": str(data_dir),
        "FUNDFLOW_ENV": "test",
        **extra,
    }


def indexed_block(engine: Engine) -> int:
    """The mirror's checkpoint block, -1 before the first migration or checkpoint."""
    with engine.connect() as conn:
        try:
            value = conn.execute(sa.text("SELECT block_number FROM checkpoint")).scalar()
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            conn.rollback()
            return -1
    return int(value) if value is not None else -1
