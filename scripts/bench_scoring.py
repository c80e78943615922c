"""Behaviour-score feature computation at scale (issue 21): `compute_features` over N loans.

    .venv/bin/python scripts/bench_scoring.py --loans 100000 --json var/bench/scoring.json [--db URL]

Driving 100,000 loans through the chain would take hours, so the mirror rows are bulk-inserted through the
project's own tables with the shapes the simulator and a real book produce: per loan a 12-instalment
equal-principal schedule in its stored terms (each loan its own dates, so its own terms hash), two
disbursements and one or two payments out of them, repayments mostly on time (some late, some missed),
payee confirmations and disputes, collateral valuations for half the loans, site visits, and one block
every ten minutes over two years. The figure is `compute_features` on the whole book as of a date 18 months
in: cold (first call in the process: each loan's terms hash checked and its schedule computed) and warm (the
schedules cached by terms hash, as for a dataset's second snapshot or a daily rescoring).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.progress import Progress

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.mirror.models import (  # noqa: E402
    Block,
    Checkpoint,
    CollateralValuation,
    Confirmation,
    Inspection,
    Loan,
    Lot,
    Repayment,
    lot_key,
)
from ledger.protocol.servicing import ScheduleMethod, add_months  # noqa: E402
from ledger.protocol.terms import InterestTerms, LoanTerms  # noqa: E402
from ledger.scoring.features import compute_features  # noqa: E402
from ledger.store.db import create_db_engine, migrate  # noqa: E402
from ledger.store.offchain import LoanMetadata, TermsVersion  # noqa: E402

CHAIN_ID = 31337
BLOCK_SECONDS = 600
DAY = 86_400
T0 = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp())
SPAN_DAYS = 730


class Book:
    def __init__(self, engine: sa.Engine, seed: int = 21) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.log = 0
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def hex32(self) -> str:
        return f"0x{self.rng.getrandbits(256):064x}"

    def address(self) -> str:
        return f"0x{self.rng.getrandbits(160):040x}"

    def block(self, ts: int) -> int:
        return max(0, (ts - T0) // BLOCK_SECONDS)

    def at(self, ts: int) -> dict[str, Any]:
        self.log += 1
        return {"block_number": self.block(ts), "log_index": self.log, "transaction_hash": self.hex32()}

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(table, []).append(row)

    def flush(self) -> int:
        tables = {
            "loans": Loan,
            "lots": Lot,
            "repayments": Repayment,
            "confirmations": Confirmation,
            "collateral_valuations": CollateralValuation,
            "inspections": Inspection,
            "loan_metadata": LoanMetadata,
            "terms_versions": TermsVersion,
        }
        written = 0
        with self.engine.begin() as conn:
            for name, model in tables.items():
                rows = self.rows.pop(name, [])
                if rows:
                    conn.execute(sa.insert(model.__table__), rows)  # type: ignore[attr-defined]
                    written += len(rows)
        return written

    def blocks(self) -> None:
        count = SPAN_DAYS * DAY // BLOCK_SECONDS
        with self.engine.begin() as conn:
            for start in range(0, count, 50_000):
                conn.execute(
                    sa.insert(Block.__table__),  # type: ignore[attr-defined]
                    [
                        {
                            "chain_id": CHAIN_ID,
                            "number": n,
                            "hash": f"0x{n:064x}",
                            "parent_hash": f"0x{max(n - 1, 0):064x}",
                            "timestamp": T0 + n * BLOCK_SECONDS,
                        }
                        for n in range(start, min(count, start + 50_000))
                    ],
                )
            conn.execute(
                sa.insert(Checkpoint.__table__).values(  # type: ignore[attr-defined]
                    id=1,
                    chain_id=CHAIN_ID,
                    genesis_hash="0x" + "00" * 32,
                    contract_address="0x" + "11" * 20,
                    abi_hash="0x" + "22" * 32,
                    start_block=0,
                    block_number=count - 1,
                    block_hash=f"0x{count - 1:064x}",
                    updated_at=datetime.now(UTC),
                )
            )

    def loan(self, index: int, borrowers: list[str], payees: list[str]) -> None:
        rng = self.rng
        opened = T0 + rng.randrange(0, 500) * DAY + 9 * 3600
        day = datetime.fromtimestamp(opened, UTC).date()
        principal = rng.randrange(100_000, 5_000_000) * 100
        terms = LoanTerms(
            interest=InterestTerms(
                method=ScheduleMethod.EQUAL_PRINCIPAL,
                annual_rate=Decimal("0.0435"),
                start_date=day,
                first_due_date=add_months(day, 1),
                periods=12,
            )
        )
        schedule = terms.schedule(principal)
        loan_id = self.hex32()
        borrower = rng.choice(borrowers)
        self.add(
            "loans",
            {
                "loan_id": loan_id,
                "lender_org": "0x" + "aa" * 32,
                "borrower": borrower,
                "borrower_ref": self.hex32(),
                "principal": principal,
                "currency": "CNY",
                "allowed_purposes": 0b11110,
                "maturity": _ts(schedule[-1].due_date) + DAY - 1,
                "terms_hash": terms.hash(),
                "disbursed": principal,
                "repaid": 0,
                "status": 1,
                "risk_class": 0,
                "head": self.hex32(),
                "event_count": 10,
                **self.at(opened),
                "updated_block": self.block(opened),
            },
        )
        self.add(
            "loan_metadata",
            {
                "loan_id": loan_id,
                "loan_number": f"BENCH-{index:07d}",
                "lender_org": "0x" + "aa" * 32,
                "terms": terms.document(),
                "terms_hash": terms.hash(),
                "created_by": borrower,
            },
        )
        self.add(
            "terms_versions",
            {"loan_id": loan_id, "terms_hash": terms.hash(), "terms": terms.document()},
        )
        first = principal * rng.randrange(30, 70) // 100
        t = opened + 3600
        for amount in (first, principal - first):
            lot_id = self.hex32()
            payee = rng.choice(payees)
            self.add("lots", self.lot(loan_id, lot_id, None, payee, amount, 1, True, t))
            self.confirm(loan_id, lot_id, t)
            if rng.random() < 0.6:
                when = t + (rng.randrange(1, 7) * 3600 if rng.random() < 0.3 else rng.randrange(3, 30) * DAY)
                child = self.hex32()
                declared = rng.random() > 0.05
                self.add(
                    "lots",
                    self.lot(
                        loan_id,
                        child,
                        lot_id,
                        rng.choice(payees),
                        amount // 3,
                        1 if declared else 29,
                        declared,
                        when,
                    ),
                )
                self.confirm(loan_id, child, when)
            t += 60
        if rng.random() < 0.5:
            collateral = self.hex32()
            value = principal * rng.randrange(100, 160) // 100
            for k in range(rng.randrange(1, 3)):
                self.add(
                    "collateral_valuations",
                    {
                        "loan_id": loan_id,
                        **self.at(opened + 7200 + k * 182 * DAY),
                        "collateral_id": collateral,
                        "value": value * (100 - 5 * k) // 100,
                        "evidence_hash": self.hex32(),
                    },
                )
        for k in range(rng.randrange(0, 4)):
            self.add(
                "inspections",
                {
                    "loan_id": loan_id,
                    **self.at(opened + (k + 1) * 90 * DAY),
                    "kind": 0,
                    "report_hash": self.hex32(),
                },
            )
        outstanding = principal
        for item in schedule:
            due = _ts(item.due_date)
            if due > T0 + SPAN_DAYS * DAY - 2 * DAY:
                break
            r = rng.random()
            if r < 0.05:
                continue  # missed
            when = due + 10 * 3600 + (rng.randrange(1, 30) * DAY if r < 0.15 else 0)
            outstanding -= item.principal
            self.add(
                "repayments",
                {
                    "loan_id": loan_id,
                    **self.at(when),
                    "amount": item.principal,
                    "outstanding": outstanding,
                    "evidence_hash": self.hex32(),
                    "interest": item.interest,
                    "penalty": 0,
                },
            )

    def lot(
        self,
        loan_id: str,
        lot_id: str,
        parent: str | None,
        holder: str,
        amount: int,
        purpose: int,
        declared: bool,
        ts: int,
    ) -> dict[str, Any]:
        return {
            "loan_id": loan_id,
            "lot_id": lot_id,
            "lot_key": lot_key(lot_id),
            "parent_lot_id": parent,
            "holder": holder,
            "amount": amount,
            "remaining": amount,
            "purpose": purpose,
            "declared_use": declared,
            "entrusted": True if parent is None else None,
            "evidence_hash": self.hex32(),
            "confirmation": "unconfirmed",
            **self.at(ts),
        }

    def confirm(self, loan_id: str, lot_id: str, ts: int) -> None:
        r = self.rng.random()
        if r < 0.2:
            return
        self.add(
            "confirmations",
            {
                "loan_id": loan_id,
                **self.at(ts + self.rng.randrange(1, 6) * DAY),
                "lot_id": lot_id,
                "state": "disputed" if r < 0.23 else "confirmed",
                "evidence_hash": self.hex32(),
            },
        )


def _ts(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--db", help="SQLAlchemy URL of an empty database (default: a temporary SQLite file)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_db_engine(args.db or f"sqlite:///{tmp}/scoring.db")
        migrate(engine)
        book = Book(engine)
        borrowers = [book.address() for _ in range(max(10, args.loans // 3))]
        payees = [book.address() for _ in range(max(20, args.loans // 10))]
        started = time.perf_counter()
        rows = 0
        with Progress() as progress:
            task = progress.add_task(f"bulk-inserting {args.loans:,} loans", total=args.loans)
            book.blocks()
            for i in range(args.loans):
                book.loan(i, borrowers, payees)
                if (i + 1) % 5_000 == 0:
                    rows += book.flush()
                    progress.update(task, completed=i + 1)
            rows += book.flush()
            progress.update(task, completed=args.loans)
        built = time.perf_counter() - started
        as_of = datetime.fromtimestamp(T0, UTC) + timedelta(days=540)
        started = time.perf_counter()
        cold = compute_features(engine, as_of)
        cold_s = time.perf_counter() - started
        started = time.perf_counter()
        warm = compute_features(engine, as_of)
        warm_s = time.perf_counter() - started
        assert cold.equals(warm)
        figures = {
            "loans": args.loans,
            "rows_inserted": rows,
            "loans_scored": len(cold),
            "database": engine.dialect.name,
            "build_s": round(built, 1),
            "cold_s": round(cold_s, 2),
            "warm_s": round(warm_s, 2),
            "cold_loans_per_s": round(len(cold) / cold_s),
            "warm_loans_per_s": round(len(warm) / warm_s),
            "dpd_now_over_0": int((cold["dpd_now"] > 0).sum()),
        }
        engine.dispose()
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
