"""Load test of the production shape: `fundflow up --replicas N`'s cluster (fundflow/cluster.py) driven by
locust in headless mode (scripts/locustfile.py), 1 replica against N, at increasing concurrency.

    .venv/bin/python scripts/bench_cluster.py --out var/bench [--quick] [--replicas 2]

For each replica count a fresh cluster (local Hardhat chain, PostgreSQL database of its own, HAProxy, leader
and standby indexer) is set up: a loan of the demo cast with one lot per paying enterprise. Then locust runs
each concurrency level for a fixed time (127.0.0.1 only) and its CSV gives throughput and p50/p95/p99 per
request kind. The knee is the first level whose throughput grew less than 15% over the previous one while its
p95 grew by half or more: past it, more users only queue. Writes `<out>/cluster.json`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fundflow.cluster import Cluster  # noqa: E402
from ledger.chain.localchain import free_port  # noqa: E402
from ledger.config import Settings  # noqa: E402

PAYERS = ["Brightpath Robotics", "Eastwind Auto Parts", "Pinecrest Electronics", "Northriver Steel"]
BANK, AUDITOR = "Lakeside Commercial Bank", "Harbor Audit Partners"
SERVER = os.environ.get("FUNDFLOW_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def set_up(cluster: Cluster, path: Path) -> None:
    tokens, addresses = cluster.onboard()
    bank = {"Authorization": f"Bearer {tokens[BANK]}"}
    with httpx.Client(base_url=cluster.url, timeout=60) as http:
        r = http.post(
            "/v1/loans?wait=true",
            json={
                "borrower": addresses[PAYERS[0]],
                "principal": "100000000.00",
                "allowed_purposes": [1, 3, 4],
                "maturity": int(time.time()) + 365 * 86400,
                "terms": {"repayment_schedule": [{"due": "2027-06-30", "amount": "100000000.00"}]},
            },
            headers=bank,
        )
        r.raise_for_status()
        loan = r.json()["loan_id"]
        payers = []
        for i, name in enumerate(PAYERS):
            r = http.post(
                f"/v1/loans/{loan}/disbursements?wait=true",
                json={"payee": addresses[name], "amount": "1000000.00", "purpose": 1},
                headers=bank,
            )
            r.raise_for_status()
            payers.append(
                {
                    "name": name,
                    "token": tokens[name],
                    "lot": r.json()["lot_ids"][0],
                    "pays": PAYERS[(i + 1) % 4],
                }
            )
    setup = {"loan": loan, "payers": payers, "addresses": addresses, "auditor_token": tokens[AUDITOR]}
    path.write_text(json.dumps(setup), encoding="utf-8")


def run_level(url: str, users: int, seconds: int, setup: Path, prefix: Path, log: Path) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(ROOT / "scripts" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{seconds}s",
        "--stop-timeout",
        "10",
        "--host",
        url,
        "--csv",
        str(prefix),
        "--exit-code-on-error",
        "0",
    ]
    env = dict(os.environ) | {"FUNDFLOW_LOAD_SETUP": str(setup)}
    with open(log, "ab") as out:
        subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=seconds + 60)
    kinds: dict[str, Any] = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = "total" if row["Name"] == "Aggregated" else row["Name"]
            kinds[name] = {
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "per_s": round(float(row["Requests/s"]), 2),
                "p50_ms": float(row["50%"] or 0),
                "p95_ms": float(row["95%"] or 0),
                "p99_ms": float(row["99%"] or 0),
            }
    return kinds


def knee(levels: list[dict[str, Any]]) -> int | None:
    for prev, cur in zip(levels, levels[1:], strict=False):
        p, c = prev["kinds"]["total"], cur["kinds"]["total"]
        if c["per_s"] < p["per_s"] * 1.15 and c["p95_ms"] >= p["p95_ms"] * 1.5:
            return int(cur["users"])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--replicas", type=int, default=2, help="N, compared with 1")
    args = parser.parse_args()
    users = [2, 8, 24] if args.quick else [1, 2, 4, 8, 16, 32, 64]
    seconds = 15 if args.quick else 30
    work = args.out / "cluster"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"users": users, "seconds_per_level": seconds, "runs": {}}
    for replicas in (1, args.replicas):
        settings = Settings(
            env="test",
            data_dir=work / f"r{replicas}",
            chain_port=free_port(),
            api_port=free_port(),
            keystore_scrypt_n=1024,
        )
        with Cluster(settings, replicas=replicas, server_url=SERVER) as cluster:
            setup = work / f"setup-r{replicas}.json"
            set_up(cluster, setup)
            levels = []
            for u in users:
                kinds = run_level(
                    cluster.url, u, seconds, setup, work / f"r{replicas}-u{u}", work / "locust.log"
                )
                levels.append({"users": u, "kinds": kinds})
                t = kinds["total"]
                print(
                    f"replicas {replicas} users {u}: {t['per_s']} req/s p50 {t['p50_ms']} p95 {t['p95_ms']} "
                    f"p99 {t['p99_ms']} ms, {t['failures']} failures",
                    flush=True,
                )
        report["runs"][str(replicas)] = {"levels": levels, "knee_users": knee(levels)}
    (args.out / "cluster.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
