"""Tip benchmark (issue 24): what one block costs the indexer at the tip, on loans of growing size.

    .venv/bin/python scripts/bench_tip.py                          # loans of 1,000, 10,000, 100,000 events
    .venv/bin/python scripts/bench_tip.py --sizes 1000 10000 --json var/bench/tip.json

For each size, a fresh ledger on its own Hardhat node gets one loan with that many events (payBatch, 200
payments a transaction: `bench_indexer.generate`), mirrored into a fresh SQLite file (`--db postgres`: a
fresh PostgreSQL database on 127.0.0.1:5432). Then, `--reps` times, the sizes taking turns: one `pay` is
mined and indexed (the forward step: `Indexer.run_once()`, node round trips included), and that block is
undone (`Indexer.rollback_to` its parent: the one-block reorg undo, as `_undo_reorg` calls it) and indexed
again. Both with the plain indexer and with the monitor `fundflow index` runs (`Monitor.after_batch`, the
loan without structured terms, as the generated loan has none; its first batch, the monitor's sweep, is not
timed). Medians in ms; the target is the largest size within 2x of the smallest.
Writes {figure: {value, unit}} to --json. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_indexer import fresh_pg, generate, h  # noqa: E402

from ledger.chain.client import ChainClient  # noqa: E402
from ledger.chain.localchain import LocalChain  # noqa: E402
from ledger.mirror.indexer import Indexer  # noqa: E402
from ledger.monitoring.monitor import Monitor  # noqa: E402
from ledger.store.db import create_db_engine, migrate  # noqa: E402


@dataclass
class _Loan:
    """One size: its node, its loan of `size` events, and the mirror of it."""

    size: int
    client: ChainClient
    deployment: Any
    ledger: Any
    payee: Any
    loan_id: str
    lot_id: str
    engine: Engine
    monitor: Monitor
    forward: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "monitor": []})
    undo: dict[str, list[float]] = field(default_factory=lambda: {"plain": [], "monitor": []})


def build(size: int, stack: ExitStack, db_dir: Path, db: str) -> _Loan:
    node = stack.enter_context(LocalChain())
    client = ChainClient(node.url, tx_timeout=600)
    stack.callback(client.close)
    deployment, ledger, payee, loan_id, lot_id = generate(client, size - 2, 200)
    if db == "postgres":
        url, drop = fresh_pg()
        stack.callback(drop)
    else:
        url = f"sqlite:///{db_dir / f'tip-{size}.db'}"
    engine = create_db_engine(url)
    stack.callback(engine.dispose)
    migrate(engine)
    with Indexer(engine, client, deployment) as indexer:
        indexer.run_once()  # the backfill: not measured
    return _Loan(size, client, deployment, ledger, payee, loan_id, lot_id, engine, Monitor())


def step(loan: _Loan, label: str, rep: int) -> None:
    """One pay indexed (forward), its block undone, and indexed again."""
    hook = loan.monitor.after_batch if label == "monitor" else None
    with Indexer(loan.engine, loan.client, loan.deployment, after_batch=hook) as indexer:
        loan.ledger.pay(
            loan.payee,
            loan_id=loan.loan_id,
            from_lot=loan.lot_id,
            payee=loan.payee.address,
            amount=1,
            purpose=1,
            evidence_hash=h(f"tip:{label}:{rep}"),
        )
        t0 = time.perf_counter()
        indexer.run_once()
        t1 = time.perf_counter()
        parent = loan.client.get_header(indexer.checkpoint.block_number - 1)
        t2 = time.perf_counter()
        indexer.rollback_to(parent.number, parent.hash)
        t3 = time.perf_counter()
        indexer.run_once()  # the same block again
    if rep:  # the first: the monitor's sweep, and warm caches
        loan.forward[label].append((t1 - t0) * 1000)
        loan.undo[label].append((t3 - t2) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "tip.json")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        loans = [build(size, stack, Path(tmp), args.db) for size in args.sizes]
        # The sizes take turns, so a load spike on this shared machine hits them alike.
        for rep in range(args.reps + 1):
            for loan in loans:
                for label in ("plain", "monitor"):
                    step(loan, label, rep)
        for loan in loans:
            with loan.engine.connect() as conn:
                events = int(conn.exec_driver_sql("SELECT COUNT(*) FROM events").scalar_one())
            got = {
                f"{what}_{label}": statistics.median(samples[label])
                for what, samples in (("forward", loan.forward), ("undo", loan.undo))
                for label in ("plain", "monitor")
            }
            print(f"{loan.size:>7,} events: " + ", ".join(f"{k} {v:.1f}" for k, v in got.items()), flush=True)
            for name, value in got.items():
                figures[f"{name}_{loan.size}"] = {"value": round(value, 2), "unit": "ms", "events": events}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
