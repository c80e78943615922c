"""Helpers for the monitoring tests: a mirror with the monitor hooked into the indexer, loans with structured
terms, and ledger writes that return the lot id with its block timestamp."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conftest import DEFAULT_PURPOSES, World, h
from eth_account.signers.local import LocalAccount
from sqlalchemy.engine import Engine

from ledger.chain.client import TxResult
from ledger.mirror.indexer import Indexer
from ledger.monitoring.alerts import Alert, AlertPublic
from ledger.monitoring.monitor import EvaluationResult, Monitor
from ledger.monitoring.rules import Thresholds
from ledger.protocol.purposes import Purpose
from ledger.protocol.terms import LoanTerms, mapping_terms_provider
from ledger.store.db import create_db_engine, migrate

DAY = 86_400


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


@dataclass
class Watch:
    """A world, its mirror, and the monitor running after every indexed batch."""

    world: World
    engine: Engine
    monitor: Monitor
    indexer: Indexer
    terms: dict[str, LoanTerms] = field(default_factory=dict)

    @property
    def client(self) -> Any:
        return self.world.ledger.client

    def sync(self) -> None:
        self.indexer.run_once()

    def evaluate(self, loan_id: str, *, now: int | None = None) -> EvaluationResult:
        with self.engine.begin() as conn:
            return self.monitor.evaluate(conn, [loan_id], now=now)

    def alerts(self, loan_id: str | None = None, rule: str | None = None) -> list[AlertPublic]:
        t = Alert.__table__  # type: ignore[attr-defined]
        query = sa.select(t).order_by(t.c.id)
        if loan_id is not None:
            query = query.where(t.c.loan_id == loan_id)
        if rule is not None:
            query = query.where(t.c.rule == rule)
        with self.engine.connect() as conn:
            return [AlertPublic.model_validate(dict(r._mapping)) for r in conn.execute(query)]

    def only(self, loan_id: str, rule: str) -> AlertPublic:
        found = self.alerts(loan_id, rule)
        assert len(found) == 1, [a.explanation for a in found]
        return found[0]

    def stamp(self, result: TxResult) -> int:
        return int(self.client.get_header(result.block_number).timestamp)

    def chain_time(self) -> int:
        return int(self.client.get_header().timestamp)

    # ------------------------------------------------------------------ ledger writes

    def open_loan(
        self,
        label: str,
        terms: LoanTerms | None = None,
        *,
        principal: int = 1_000_000_00,
        purposes: tuple[int, ...] = DEFAULT_PURPOSES,
        maturity: int | None = None,
    ) -> str:
        loan_id = h(f"loan:{label}")
        self.world.ledger.open_loan(
            self.world.cast.bank,
            loan_id=loan_id,
            borrower=self.world.cast.borrower.address,
            borrower_ref=h(f"borrower-ref:{label}"),
            principal=principal,
            currency="CNY",
            allowed_purposes=purposes,
            maturity=maturity or self.chain_time() + 365 * DAY,
            terms_hash=terms.hash() if terms is not None else h(f"terms:{label}"),
        )
        if terms is not None:
            self.terms[loan_id] = terms
        return loan_id

    def disburse(
        self, loan_id: str, payee: LocalAccount, amount: int, purpose: int = Purpose.RAW_MATERIALS
    ) -> tuple[str, int]:
        result = self.world.ledger.disburse(
            self.world.cast.bank, loan_id=loan_id, payee=payee.address, amount=amount, purpose=purpose
        )
        return str(result.event("Disbursed").args["lotId"]), self.stamp(result)

    def pay(
        self,
        spender: LocalAccount,
        loan_id: str,
        from_lot: str,
        payee: LocalAccount,
        amount: int,
        purpose: int = Purpose.RAW_MATERIALS,
    ) -> tuple[str, int]:
        result = self.world.ledger.pay(
            spender, loan_id=loan_id, from_lot=from_lot, payee=payee.address, amount=amount, purpose=purpose
        )
        return str(result.event("Paid").args["lotId"]), self.stamp(result)

    def advance(self, seconds: int) -> None:
        """Move the chain's clock forward (Hardhat) and mine a block at the new time."""
        self.client.rpc("evm_increaseTime", [seconds])
        self.client.rpc("evm_mine")


@contextmanager
def watching(
    world: World, db_url: str, thresholds: Thresholds | None = None, **kwargs: Any
) -> Iterator[Watch]:
    engine = create_db_engine(db_url)
    migrate(engine)
    terms: dict[str, LoanTerms] = {}
    monitor = Monitor(thresholds or Thresholds(), terms=mapping_terms_provider(terms), **kwargs)
    indexer = Indexer(engine, world.ledger.client, world.deployment, after_batch=monitor.after_batch)
    try:
        with indexer:
            yield Watch(world, engine, monitor, indexer, terms)
    finally:
        engine.dispose()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"
