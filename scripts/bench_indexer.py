"""Indexer benchmark: backfill rate into SQLite and PostgreSQL next to the raw eth_getLogs rate of the same
logs, and freshness (receipt -> row queryable) while following the tip.

    .venv/bin/python scripts/bench_indexer.py              # 100,000 events (a few minutes)
    .venv/bin/python scripts/bench_indexer.py --events 20000
    .venv/bin/python scripts/bench_indexer.py --kind anvil --rss --json var/bench/indexer-anvil.json

`--rss` runs the SQLite backfill in a fresh child process and reports its peak resident memory (VmHWM)
next to an idle child that imported the same modules. Runs its own Hardhat (or anvil) node; events come
from payBatch (200 payments per transaction by default). Writes var/bench/indexer.json (or --json PATH) as
{figure: {value, unit, baseline}}. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.chain.client import ChainClient  # noqa: E402
from ledger.chain.contract import ENTERPRISE_ROLE, LENDER_ROLE, PaymentSpec, as_bytes32  # noqa: E402
from ledger.chain.deploy import connect, deploy_ledger  # noqa: E402
from ledger.chain.localchain import LocalChain  # noqa: E402
from ledger.mirror.indexer import Indexer  # noqa: E402
from ledger.store.db import create_db_engine, migrate  # noqa: E402

console = Console()
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def h(label: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=label).hex()


def generate(client: ChainClient, events: int, per_tx: int) -> tuple[Any, Any, Any, str, str]:
    operator = Account.create()
    bank, payee = Account.create(), Account.create()
    deployment = deploy_ledger(client, operator)
    ledger = connect(client, deployment)
    ledger.register_organization(operator, h("org:bank"), h("p"))
    ledger.register_organization(operator, h("org:payee"), h("p"))
    ledger.add_account(operator, h("org:bank"), bank.address)
    ledger.add_account(operator, h("org:payee"), payee.address)
    ledger.grant_role(operator, LENDER_ROLE, bank.address)
    ledger.grant_role(operator, ENTERPRISE_ROLE, payee.address)
    loan_id = h("bench-loan")
    ledger.open_loan(
        bank,
        loan_id=loan_id,
        borrower=payee.address,
        borrower_ref=h("ref"),
        principal=2**63,
        currency="CNY",
        allowed_purposes=(1, 2, 3),
        maturity=int(time.time()) + 10 * 365 * 86400,
        terms_hash=h("terms"),
    )
    lot = ledger.disburse(bank, loan_id=loan_id, payee=payee.address, amount=2**62, purpose=1).event(
        "Disbursed"
    )
    lot_id = lot.args["lotId"]
    batches = max(1, (events + per_tx - 1) // per_tx)
    last = ""
    with Progress(
        TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    ) as progress:
        task = progress.add_task("tx", total=batches)
        for i in range(batches):
            payments = [
                PaymentSpec(lot_id, payee.address, 1 + j, 1 + j % 3, h(f"e{i}:{j}")) for j in range(per_tx)
            ]
            data = ledger.encode(
                "payBatch",
                as_bytes32(loan_id),
                [
                    (as_bytes32(p.from_lot), p.payee, p.amount, p.purpose, as_bytes32(p.evidence_hash))
                    for p in payments
                ],
            )
            last = client.send(bank, ledger.address, data, gas=min(16_000_000, per_tx * 60_000 + 100_000))
            if i % 20 == 19:
                client.wait_for_receipt(last)
            progress.update(task, advance=1)
    client.wait_for_receipt(last)
    return deployment, ledger, payee, loan_id, lot_id


def raw_rate(url: str, address: str, start: int, end: int, chunk: int = 2048) -> tuple[float, int]:
    """eth_getLogs over the range with plain HTTP + json.loads: the floor any indexer pays."""
    session = requests.Session()
    count = 0
    t0 = time.perf_counter()
    for lo in range(start, end + 1, chunk):
        hi = min(end, lo + chunk - 1)
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "eth_getLogs",
            "params": [{"address": address, "fromBlock": hex(lo), "toBlock": hex(hi)}],
        }
        response = session.post(url, data=json.dumps(body), headers={"content-type": "application/json"})
        count += len(json.loads(response.content)["result"])
    return time.perf_counter() - t0, count


def backfill(url: str, client: ChainClient, deployment: Any) -> tuple[float, int]:
    engine = create_db_engine(url)
    migrate(engine)
    with Indexer(engine, client, deployment) as indexer:
        t0 = time.perf_counter()
        indexer.run_once()
        elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        count = int(conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one())
    engine.dispose()
    return elapsed, count


def _backfill_child(url: str, rpc_url: str, deployment: Any, idle: bool, out: Any) -> None:
    """In a fresh process: the backfill (or nothing, for the baseline), then the process's peak RSS and the
    decoding worker's (its child, sampled while it runs: it exits when the backfill is done)."""
    elapsed, count = 0.0, 0
    worker_peak = [0]
    done = threading.Event()

    def watch_children() -> None:
        while not done.wait(0.05):
            for task in Path("/proc/self/task").glob("*"):
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for pid in children:
                    worker_peak[0] = max(worker_peak[0], _vm_hwm(Path(f"/proc/{pid}/status")))

    watcher = threading.Thread(target=watch_children, daemon=True)
    watcher.start()
    if not idle:
        elapsed, count = backfill(url, ChainClient(rpc_url, tx_timeout=300), deployment)
    done.set()
    watcher.join()
    out.put((elapsed, count, peak_rss_bytes(), worker_peak[0]))


def _vm_hwm(status: Path) -> int:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_bytes() -> int:
    """This process's peak RSS. VmHWM belongs to the address space exec made; getrusage's ru_maxrss keeps the
    high-water mark of the forking parent across exec, so a child of a big parent would report the parent."""
    return _vm_hwm(Path("/proc/self/status")) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def backfill_in_child(
    url: str, rpc_url: str, deployment: Any, idle: bool = False
) -> tuple[float, int, int, int]:
    """(seconds, events, peak RSS bytes, the decoding worker's peak RSS bytes) of a backfill run in a
    spawned child process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_backfill_child, args=(url, rpc_url, deployment, idle, queue))
    child.start()
    result = queue.get(timeout=3600)
    child.join(60)
    return result


def freshness(
    url: str,
    client: ChainClient,
    deployment: Any,
    ledger: Any,
    payee: Any,
    loan_id: str,
    lot_id: str,
    samples: int,
) -> list[float]:
    """Receipt -> the event row is queryable, in ms, with the default poll interval, following the tip."""
    engine = create_db_engine(url)
    migrate(engine)
    indexer = Indexer(engine, client, deployment).open()
    indexer.run_once()
    stop = threading.Event()
    thread = threading.Thread(target=indexer.run_forever, args=(stop,), daemon=True)
    thread.start()
    reader = create_db_engine(url)
    out: list[float] = []
    try:
        for i in range(samples):
            time.sleep(0.05 + (i % 7) * 0.03)
            result = ledger.pay(
                payee, loan_id=loan_id, from_lot=lot_id, payee=payee.address, amount=1, purpose=1
            )
            t0 = time.perf_counter()
            paid = result.event("Paid")
            # By the event's key: a query that scanned the table would measure the scan, not the indexer.
            query = sa.text("SELECT 1 FROM events WHERE chain_id = :c AND block_hash = :b AND log_index = :i")
            key = {"c": deployment.chain_id, "b": paid.block_hash, "i": paid.log_index}
            with reader.connect() as conn:
                while conn.execute(query, key).first() is None:
                    conn.rollback()
                    time.sleep(0.002)
            out.append((time.perf_counter() - t0) * 1000)
    finally:
        stop.set()
        thread.join(5)
        indexer.close()
        engine.dispose()
        reader.dispose()
    return out


def fresh_pg() -> tuple[str, Any]:
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"fundflow_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return sa.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--per-tx", type=int, default=200)
    parser.add_argument("--samples", type=int, default=60, help="freshness samples")
    parser.add_argument("--passes", type=int, default=3, help="backfills per database (median reported)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--kind", choices=("hardhat", "anvil"), default="hardhat", help="local chain node")
    parser.add_argument("--rss", action="store_true", help="backfill SQLite in a child; report its peak RSS")
    parser.add_argument("--json", type=Path, default=ROOT / "var" / "bench" / "indexer.json")
    args = parser.parse_args()
    out_dir = ROOT / "var" / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: dict[str, dict[str, Any]] = {}
    with LocalChain(kind=args.kind, log_path=out_dir / f"{args.kind}.log") as node:
        client = ChainClient(node.url, tx_timeout=300)
        deployment, ledger, payee, loan_id, lot_id = generate(client, args.events, args.per_tx)
        end = client.block_number()
        # The node's own speed at serving logs swings by half from one pass to the next (JIT, GC), so the
        # baseline is the median of three passes, and the fastest is kept beside it.
        raws = []
        for _ in range(3):
            raw_s, raw_n = raw_rate(node.url, deployment.address, deployment.block_number, end)
            raws.append(raw_n / raw_s)
        raw = statistics.median(raws)
        console.print(
            f"raw eth_getLogs + json: {raw_n:,} logs, median of 3 passes {raw:,.0f}/s "
            f"(passes: {', '.join(f'{r:,.0f}' for r in raws)})"
        )
        figures["raw_getlogs_rate"] = {"value": round(raw), "unit": "events/s", "baseline": None}
        figures["raw_getlogs_rate_fastest"] = {
            "value": round(max(raws)),
            "unit": "events/s",
            "baseline": None,
        }
        sqlite_file = out_dir / "bench.db"
        sqlite_url = f"sqlite:///{sqlite_file}"

        def fresh_sqlite() -> None:
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{sqlite_file}{suffix}").unlink(missing_ok=True)

        # Like the baseline, each backfill is the median of three passes into a fresh database: on a shared
        # 2-CPU machine one pass can land 15% either side of the next.
        sqlite_rates: list[float] = []
        for attempt in range(args.passes):
            fresh_sqlite()
            if args.rss and attempt == 0:
                s_s, s_n, rss, worker_rss = backfill_in_child(sqlite_url, node.url, deployment)
                idle_rss = backfill_in_child(sqlite_url, node.url, deployment, idle=True)[2]
                figures["indexer_backfill_peak_rss"] = {
                    "value": round(rss / 2**20, 1),
                    "unit": "MiB",
                    "baseline": round(idle_rss / 2**20, 1),
                }
                figures["indexer_backfill_worker_peak_rss"] = {
                    "value": round(worker_rss / 2**20, 1),
                    "unit": "MiB",
                    "baseline": None,
                }
            else:
                s_s, s_n = backfill(sqlite_url, client, deployment)
            sqlite_rates.append(s_n / s_s)
            console.print(f"SQLite backfill: {s_n:,} events in {s_s:.2f} s = {s_n / s_s:,.0f}/s")
        sqlite_rate = statistics.median(sqlite_rates)
        figures["sqlite_backfill_rate"] = {
            "value": round(sqlite_rate),
            "unit": "events/s",
            "baseline": round(raw),
        }
        figures["sqlite_backfill_passes"] = {"value": [round(r) for r in sqlite_rates], "unit": "events/s"}
        figures["sqlite_vs_raw"] = {"value": round(sqlite_rate / raw, 3), "unit": "ratio", "baseline": 0.7}
        if not args.no_postgres:
            pg_rates: list[float] = []
            for _ in range(args.passes):
                url, drop = fresh_pg()
                try:
                    p_s, p_n = backfill(url, client, deployment)
                finally:
                    drop()
                pg_rates.append(p_n / p_s)
                console.print(f"PostgreSQL backfill: {p_n:,} events in {p_s:.2f} s = {p_n / p_s:,.0f}/s")
            pg_rate = statistics.median(pg_rates)
            figures["postgres_backfill_rate"] = {
                "value": round(pg_rate),
                "unit": "events/s",
                "baseline": round(raw),
            }
            figures["postgres_backfill_passes"] = {"value": [round(r) for r in pg_rates], "unit": "events/s"}
            figures["postgres_vs_raw"] = {
                "value": round(pg_rate / raw, 3),
                "unit": "ratio",
                "baseline": 0.5,
            }
        fresh_sqlite()
        lags = freshness(sqlite_url, client, deployment, ledger, payee, loan_id, lot_id, args.samples)
        lags.sort()
        p50 = statistics.median(lags)
        p95 = lags[min(len(lags) - 1, int(round(0.95 * (len(lags) - 1))))]
        p99 = lags[min(len(lags) - 1, int(round(0.99 * (len(lags) - 1))))]
        figures["freshness_p50"] = {"value": round(p50, 1), "unit": "ms", "baseline": None}
        figures["freshness_p95"] = {"value": round(p95, 1), "unit": "ms", "baseline": 250}
        figures["freshness_p99"] = {"value": round(p99, 1), "unit": "ms", "baseline": None}
        figures["freshness_samples"] = {"value": lags, "unit": "ms", "baseline": None}
    table = Table("figure", "value", "unit", "baseline / target")
    for name, fig in figures.items():
        if isinstance(fig["value"], list):
            continue
        table.add_row(
            name, f"{fig['value']:,}", fig["unit"], "" if fig["baseline"] is None else f"{fig['baseline']:,}"
        )
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
