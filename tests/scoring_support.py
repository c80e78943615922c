"""Helpers for the behaviour-score tests: a world on a private chain (they move its clock), its mirror with
a real indexer, and loans whose structured terms are stored as the API stores them (`loan_metadata`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from conftest import DEFAULT_PURPOSES, World, h
from sqlalchemy.engine import Engine

from ledger.chain.client import TxResult
from ledger.mirror.indexer import Indexer
from ledger.protocol.terms import LoanTerms
from ledger.store.db import create_db_engine, migrate
from ledger.store.offchain import LoanMetadata, keep_terms_version

DAY = 86_400


def day_start(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def moment(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


@dataclass
class Site:
    world: World
    engine: Engine
    indexer: Indexer

    @property
    def client(self) -> Any:
        return self.world.ledger.client

    def sync(self) -> None:
        while self.indexer.run_once() > 0:
            pass

    def now(self) -> int:
        return int(self.client.get_header().timestamp)

    def today(self) -> date:
        return moment(self.now()).date()

    def stamp(self, result: TxResult) -> int:
        return int(self.client.get_header(result.block_number).timestamp)

    def mine_at(self, timestamp: int) -> None:
        """Mine an empty block at `timestamp` (later than the chain's time): the clock moves there."""
        assert timestamp > self.now()
        self.client.rpc("evm_mine", [timestamp])

    def open_loan(
        self,
        label: str,
        terms: LoanTerms,
        *,
        principal: int,
        maturity: int,
        borrower: str | None = None,
    ) -> str:
        loan_id = h(f"loan:{label}")
        self.world.ledger.open_loan(
            self.world.cast.bank,
            loan_id=loan_id,
            borrower=borrower or self.world.cast.borrower.address,
            borrower_ref=h(f"borrower-ref:{label}"),
            principal=principal,
            currency="CNY",
            allowed_purposes=DEFAULT_PURPOSES,
            maturity=maturity,
            terms_hash=terms.hash(),
        )
        t = LoanMetadata.__table__  # type: ignore[attr-defined]
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(t).values(
                    loan_id=loan_id,
                    loan_number=label,
                    lender_org=self.world.cast.bank_org,
                    terms=terms.document(),
                    terms_hash=terms.hash(),
                    created_by=self.world.cast.bank.address,
                )
            )
            keep_terms_version(conn, loan_id, terms.document(), terms.hash(), datetime.now(UTC))
        return loan_id

    def repay(self, loan_id: str, principal: int, interest: int = 0) -> TxResult:
        return self.world.ledger.repay_allocated(
            self.world.cast.bank,
            loan_id=loan_id,
            principal=principal,
            interest=interest,
            penalty=0,
            evidence_hash=h(f"repay:{loan_id}:{principal}:{interest}:{self.now()}"),
        )


@contextmanager
def site(world: World, db_url: str) -> Iterator[Site]:
    engine = create_db_engine(db_url)
    migrate(engine)
    indexer = Indexer(engine, world.ledger.client, world.deployment)
    try:
        with indexer:
            yield Site(world, engine, indexer)
    finally:
        engine.dispose()
