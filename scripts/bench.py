"""The benchmark suite: every figure of issue 8 in one run, as ratios against baselines of the same run.

    .venv/bin/python scripts/bench.py            # full run (make bench)
    .venv/bin/python scripts/bench.py --quick    # small version, a few minutes (make bench QUICK=1)
    .venv/bin/python scripts/bench.py --only reads writes

Sections: gas (scripts/bench_gas.py), writes (library and API vs a plain web3.py loop), indexer
(scripts/bench_indexer.py: backfill, freshness, peak RSS), reads (trail and list latency on PostgreSQL at
growing scale, API memory under load), verify (scripts/bench_verify.py), portability (writes and indexer on
anvil), api (scripts/bench_api.py, when it exists), tip (scripts/bench_tip.py: one block's forward step
and one-block undo, plain and with the monitor, on loans of growing size), scoring-features
(scripts/bench_scoring.py: the behaviour score's features over 100,000 loans). The helper scripts run as
subprocesses whose output goes to var/bench/logs/; their JSON is folded into var/bench/results.json, and
docs/benchmarks.md is regenerated from it. Machines here are shared: read the ratios, not the absolute
numbers.
"""

from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from eth_account import Account
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.chain.client import ChainClient  # noqa: E402
from ledger.chain.contract import (  # noqa: E402
    ENTERPRISE_ROLE,
    LENDER_ROLE,
    PAY_GAS,
    PaymentSpec,
    as_bytes32,
    pay_batch_gas,
)
from ledger.chain.localchain import LocalChain, free_port  # noqa: E402
from ledger.mirror.indexer import Indexer  # noqa: E402
from ledger.mirror.models import lot_key  # noqa: E402
from ledger.store.db import create_db_engine, migrate  # noqa: E402

console = Console()
PY = sys.executable
SECTIONS = (
    "gas",
    "writes",
    "indexer",
    "reads",
    "verify",
    "portability",
    "api",
    "tip",
    "cluster",
    "scoring-features",
    "scoring-models",
)
PG_SERVER = os.environ.get("FUNDFLOW_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def h(label: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=label).hex()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ------------------------------------------------------------------------------------------- the results


class Results:
    """Figures by name: {value, unit, baseline, baseline_name, ratio, samples, section}."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.figures: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[str]] = {}

    def add(
        self,
        section: str,
        name: str,
        value: float,
        unit: str,
        *,
        baseline: float | None = None,
        baseline_name: str | None = None,
        samples: list[float] | int | None = None,
        **extra: Any,
    ) -> None:
        ratio = None
        if baseline not in (None, 0) and value is not None:
            ratio = round(float(value) / float(baseline), 3)  # type: ignore[arg-type]
        self.figures[name] = {
            "value": value,
            "unit": unit,
            "baseline": baseline,
            "baseline_name": baseline_name,
            "ratio": ratio,
            "samples": samples,
            "section": section,
            "quick": self.quick,
            **extra,
        }

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


def run_script(name: str, args: list[str], log: Path) -> bool:
    """Run scripts/NAME with ARGS, output to LOG; False (and a note) when it is missing or fails."""
    script = ROOT / "scripts" / name
    if not script.exists():
        return False
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        rc = subprocess.call([PY, str(script), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        console.print(f"[red]{name} failed (exit {rc}); see {log}[/]")
    return rc == 0


# -------------------------------------------------------------------------------------------------- gas


def section_gas(res: Results, out: Path, quick: bool) -> None:
    path = out / "gas.json"
    if not run_script(
        "bench_gas.py", ["--runs", "2" if quick else "5", "--json", str(path)], out / "logs/gas.log"
    ):
        res.note("gas", "scripts/bench_gas.py failed or is missing: no gas figures.")
        return
    for key, fig in json.loads(path.read_text()).items():
        res.add(
            "gas",
            key,
            fig["value"],
            "gas",
            baseline=fig["baseline"],
            baseline_name="ERC-20 transfer (new holder), same node",
            samples=2 if quick else 5,
            floor=fig.get("floor"),
            target=fig.get("target"),
        )


# ----------------------------------------------------------------------------------------------- writes


class WriteRig:
    """A fresh deployment on a local node with one lender, one supplier holding a large lot, and the API."""

    def __init__(self, kind: str, tmp: Path) -> None:
        from ledger.chain.deploy import connect, deploy_ledger

        self.node = LocalChain(kind=kind, log_path=tmp / f"{kind}.log").start()
        self.client = ChainClient(self.node.url, tx_timeout=300)
        self.operator, self.bank = Account.create(), Account.create()
        # One paying account and lot per path: each client keeps its own nonces.
        self.spenders = {path: Account.create() for path in ("lib", "web3", "api")}
        self.supplier = self.spenders["lib"]
        self.payees = [Account.create().address for _ in range(20)]
        self.deployment = deploy_ledger(self.client, self.operator)
        self.ledger = connect(self.client, self.deployment)
        for org in ("org:bank", "org:supplier"):
            self.ledger.register_organization(self.operator, h(org), h("profile"))
        for org, account, role in (
            ("org:bank", self.bank, LENDER_ROLE),
            *(("org:supplier", a, ENTERPRISE_ROLE) for a in self.spenders.values()),
        ):
            self.ledger.add_account(self.operator, h(org), account.address)
            self.ledger.grant_role(self.operator, role, account.address)
        self.loan_id = h(f"bench-writes:{secrets.token_hex(4)}")
        self.ledger.open_loan(
            self.bank,
            loan_id=self.loan_id,
            borrower=self.supplier.address,
            borrower_ref=h("ref"),
            principal=2**62,
            currency="CNY",
            allowed_purposes=(1, 2, 3),
            maturity=int(time.time()) + 10 * 365 * 86400,
            terms_hash=h("terms"),
        )
        self.lots = {
            path: self.ledger.disburse(
                self.bank, loan_id=self.loan_id, payee=account.address, amount=2**58, purpose=1
            )
            .event("Disbursed")
            .args["lotId"]
            for path, account in self.spenders.items()
        }
        self.lot_id = self.lots["lib"]
        self.counter = 0
        self.tmp = tmp
        self._http: Any = None

    def evidence(self) -> str:
        self.counter += 1
        return h(f"evidence:{self.counter}")

    def payee(self) -> str:
        return self.payees[self.counter % len(self.payees)]

    # --- the library
    def lib_single(self, n: int) -> None:
        for _ in range(n):
            self.ledger.pay(
                self.supplier,
                loan_id=self.loan_id,
                from_lot=self.lot_id,
                payee=self.payee(),
                amount=1,
                purpose=1,
                evidence_hash=self.evidence(),
            )

    def specs(self, size: int, path: str = "lib") -> list[PaymentSpec]:
        return [PaymentSpec(self.lots[path], self.payee(), 1, 1, self.evidence()) for _ in range(size)]

    def lib_batch(self, n: int, size: int) -> None:
        for _ in range(n):
            self.ledger.pay_batch(self.supplier, loan_id=self.loan_id, payments=self.specs(size))

    # --- a plain web3.py loop: build_transaction with the gas limit the library computes (so both send the
    # same transactions and neither estimates), sign, send, wait for the receipt
    def web3_contract(self) -> Any:
        from web3 import Web3

        w3 = Web3(Web3.HTTPProvider(self.node.url))
        return w3, w3.eth.contract(address=self.ledger.address, abi=self.deployment.abi)

    def web3_loop(self, n: int, size: int | None) -> None:
        w3, contract = self.web3_contract()
        spender = self.spenders["web3"]
        nonce = w3.eth.get_transaction_count(spender.address, "pending")
        chain_id = w3.eth.chain_id
        for _ in range(n):
            if size is None:
                call = contract.functions.pay(
                    as_bytes32(self.loan_id),
                    as_bytes32(self.lots["web3"]),
                    self.payee(),
                    1,
                    1,
                    self.evidence(),
                )
                gas = PAY_GAS
            else:
                specs = self.specs(size, "web3")
                items = [
                    (as_bytes32(p.from_lot), p.payee, p.amount, p.purpose, as_bytes32(p.evidence_hash))
                    for p in specs
                ]
                call = contract.functions.payBatch(as_bytes32(self.loan_id), items)
                gas = pay_batch_gas(specs)
            tx = call.build_transaction(
                {
                    "from": spender.address,
                    "nonce": nonce,
                    "chainId": chain_id,
                    "gas": gas,
                    "maxFeePerGas": 0,
                    "maxPriorityFeePerGas": 0,
                }
            )
            signed = spender.sign_transaction(tx)
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=300, poll_latency=0.005)
            assert receipt["status"] == 1
            nonce += 1

    # --- the API, in process (FastAPI TestClient): routing, auth, validation, keystore, the library
    def api(self) -> Any:
        if self._http is None:
            from fastapi.testclient import TestClient

            from api.app import create_app

            services, tokens = make_api_services(
                self.tmp / "api",
                f"sqlite:///{self.tmp}/api.db",
                self.client,
                self.ledger,
                self.deployment,
                [("Supplier", "enterprise", h("org:supplier"), "supplier", self.spenders["api"])],
            )
            self._http = TestClient(create_app(services=services)).__enter__()
            self._http.headers["Authorization"] = f"Bearer {tokens['supplier']}"
        return self._http

    def api_single(self, n: int) -> None:
        http = self.api()
        for _ in range(n):
            body = {
                "loan": self.loan_id,
                "from_lot": self.lots["api"],
                "payee": self.payee(),
                "amount": "0.01",
                "purpose": 1,
                "evidence_hash": self.evidence(),
            }
            r = http.post("/v1/payments", json=body, headers={"Idempotency-Key": secrets.token_hex(8)})
            assert r.status_code == 201, r.text

    def api_batch(self, n: int, size: int) -> None:
        http = self.api()
        for _ in range(n):
            payments = [
                {
                    "from_lot": p.from_lot,
                    "payee": p.payee,
                    "amount": "0.01",
                    "purpose": 1,
                    "evidence_hash": p.evidence_hash,
                }
                for p in self.specs(size, "api")
            ]
            r = http.post(
                "/v1/payments/batch",
                json={"loan": self.loan_id, "payments": payments},
                headers={"Idempotency-Key": secrets.token_hex(8)},
            )
            assert r.status_code == 201, r.text

    def close(self) -> None:
        if self._http is not None:
            self._http.__exit__(None, None, None)
        self.node.stop()


def make_api_services(
    data_dir: Path,
    db_url: str,
    client: ChainClient,
    ledger: Any,
    deployment: Any,
    people: list[tuple[str, str, str, str, Any]],
) -> tuple[Any, dict[str, str]]:
    """Services for create_app: a participants directory, a keystore and one token per (name, role, org,
    key, account)."""
    from api.services import DirectoryCache, Services
    from ledger.chain.keystore import Keystore
    from ledger.chain.participants import Directory, Participant
    from ledger.config import Settings
    from ledger.store.offchain import create_token

    settings = Settings(env="test", rpc_url=client.rpc_url, data_dir=data_dir, database_url=db_url)
    engine = create_db_engine(db_url)
    migrate(engine)
    keystore = Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=1024)
    directory = Directory(settings.participants_file)
    tokens: dict[str, str] = {}
    for name, role, org, key, account in people:
        participant = Participant(name=name, role=role, org_id=org, profile_salt="00")
        participant.accounts[key] = account.address
        directory.put(participant)
        if hasattr(account, "key"):
            keystore.import_key(key, account)
        tokens[key] = create_token(engine, participant=name, key_name=key, address=account.address)
    directory.save()
    services = Services(
        settings=settings,
        client=client,
        ledger=ledger,
        deployment=deployment,
        engine=engine,
        directory=DirectoryCache(settings.participants_file),
        keystore=keystore,
    )
    return services, tokens


def section_writes(
    res: Results, out: Path, quick: bool, kind: str = "hardhat", section: str = "writes"
) -> None:
    rounds = 3 if quick else 5
    n_single = 30 if quick else 150
    n_batch, size = (3, 50) if quick else (8, 50)
    prefix = "writes" if kind == "hardhat" else f"{kind}.writes"
    with tempfile.TemporaryDirectory() as tmp:
        rig = WriteRig(kind, Path(tmp))
        try:
            rig.api()  # open the API (keystore unlock, migrations) before timing
            rig.api_single(2)
            rig.lib_single(2)
            rig.web3_loop(2, None)
            cases: list[tuple[str, Callable[[], None], int]] = [
                ("plain_web3_single", lambda: rig.web3_loop(n_single, None), n_single),
                ("library_single", lambda: rig.lib_single(n_single), n_single),
                ("api_single", lambda: rig.api_single(n_single), n_single),
                ("plain_web3_batch", lambda: rig.web3_loop(n_batch, size), n_batch * size),
                ("library_batch", lambda: rig.lib_batch(n_batch, size), n_batch * size),
                ("api_batch", lambda: rig.api_batch(n_batch, size), n_batch * size),
            ]
            rates: dict[str, list[float]] = {name: [] for name, _, _ in cases}
            with progress_bar(f"{section} ({kind})", rounds * len(cases)) as advance:
                for _ in range(rounds):  # interleaved, so load spikes hit every case alike
                    for name, fn, payments in cases:
                        t0 = time.perf_counter()
                        fn()
                        rates[name].append(payments / (time.perf_counter() - t0))
                        advance()
        finally:
            rig.close()
    med = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        kind_of = name.rsplit("_", 1)[1]
        base = f"plain_web3_{kind_of}"
        res.add(
            section,
            f"{prefix}.{name}",
            round(med[name], 1),
            "payments/s",
            baseline=None if name == base else round(med[base], 1),
            baseline_name=None if name == base else f"{prefix}.{base}",
            samples=[round(v, 1) for v in values],
        )


# ---------------------------------------------------------------------------------------------- indexer


def section_indexer(
    res: Results, out: Path, quick: bool, kind: str = "hardhat", section: str = "indexer"
) -> None:
    events = 10_000 if quick else 100_000
    path = out / f"indexer-{kind}.json"
    args = ["--events", str(events), "--samples", "30" if quick else 100, "--kind", kind, "--json", str(path)]
    args = [str(a) for a in args]
    if kind == "hardhat":
        args.append("--rss")
    with progress_bar(f"{section}: bench_indexer.py --events {events:,} ({kind})", None):
        ok = run_script("bench_indexer.py", args, out / f"logs/indexer-{kind}.log")
    if not ok:
        res.note(section, f"scripts/bench_indexer.py failed on {kind}: see var/bench/logs/indexer-{kind}.log")
        return
    figs = json.loads(path.read_text())
    prefix = "indexer" if kind == "hardhat" else f"{kind}.indexer"
    raw = figs["raw_getlogs_rate"]["value"]
    res.add(section, f"{prefix}.raw_getlogs_rate", raw, "events/s", samples=1, events=events)
    for db in ("sqlite", "postgres"):
        if f"{db}_backfill_rate" in figs:
            res.add(
                section,
                f"{prefix}.backfill_{db}",
                figs[f"{db}_backfill_rate"]["value"],
                "events/s",
                baseline=raw,
                baseline_name=f"{prefix}.raw_getlogs_rate (median of 3 passes)",
                samples=figs.get(f"{db}_backfill_passes", {}).get("value", 1),  # median of these passes
                events=events,
            )
    samples = figs.get("freshness_samples", {}).get("value")
    for q in ("p50", "p95", "p99"):
        if f"freshness_{q}" in figs:
            res.add(
                section,
                f"{prefix}.freshness_{q}",
                figs[f"freshness_{q}"]["value"],
                "ms",
                baseline=_POLL_MS,
                baseline_name=f"default poll interval ({_POLL_MS / 1000:g} s)",
                samples=[round(s, 1) for s in samples] if samples else None,
            )
    if kind == "hardhat":
        res.note(section, _indexer_verdicts(figs))
    if "indexer_backfill_peak_rss" in figs:
        fig = figs["indexer_backfill_peak_rss"]
        res.add(
            "memory",
            "memory.indexer_backfill_peak_rss",
            fig["value"],
            "MiB",
            baseline=fig["baseline"],
            baseline_name="idle child process with the same imports",
            samples=1,
            events=events,
        )
    if "indexer_backfill_worker_peak_rss" in figs:
        res.add(
            "memory",
            "memory.indexer_backfill_decoding_worker_peak_rss",
            figs["indexer_backfill_worker_peak_rss"]["value"],
            "MiB",
            samples=1,
            events=events,
        )


_POLL_MS = 1000 * float(inspect.signature(Indexer.__init__).parameters["poll_interval"].default)


def _indexer_verdicts(figs: dict[str, Any]) -> str:
    """Issue 3's targets against this run's figures, in words."""
    raw = figs["raw_getlogs_rate"]["value"]
    parts = []
    for db, name, target in (("sqlite", "SQLite", 0.7), ("postgres", "PostgreSQL", 0.5)):
        if f"{db}_backfill_rate" in figs:
            ratio = figs[f"{db}_backfill_rate"]["value"] / raw
            verdict = "met" if ratio >= target else "not met"
            parts.append(f"{name} backfill {ratio:.2f} of raw (target {target}: {verdict})")
    if "freshness_p95" in figs:
        p95 = figs["freshness_p95"]["value"]
        parts.append(f"freshness p95 {p95:.0f} ms (target <= 250 ms: {'met' if p95 <= 250 else 'not met'})")
    return "; ".join(parts) + "."


def section_portability(res: Results, out: Path, quick: bool) -> None:
    section_writes(res, out, quick, kind="anvil", section="portability")
    section_indexer(res, out, quick, kind="anvil", section="portability")


# ------------------------------------------------------------------------------------------------ reads

READ_ROLES = ("auditor", "lender", "holder")


class ReadDatabase:
    """A PostgreSQL database of synthetic mirrored loans and lots, grown in steps with bulk inserts through
    the project's tables (no chain: a million lots through the chain would take hours)."""

    def __init__(self, url: str, seed: int = 8) -> None:
        from ledger.mirror.models import Loan, Lot
        from ledger.store.offchain import LoanMetadata

        self.url = url
        self.engine = create_db_engine(url)
        migrate(self.engine)
        self.loans_t = Loan.__table__  # type: ignore[attr-defined]
        self.lots_t = Lot.__table__  # type: ignore[attr-defined]
        self.meta_t = LoanMetadata.__table__  # type: ignore[attr-defined]
        self.rng = random.Random(seed)
        self.lenders = [h(f"org:bank-{i}") for i in range(20)]
        self.borrowers = [self.address() for _ in range(2_000)]
        self.holder_address = self.address()  # the enterprise whose received payments are listed
        self.block = 1
        self.total_lots = 0
        self.loan_count = 0
        self.probes: dict[int, str] = {}

    def hex32(self) -> str:
        return f"0x{self.rng.getrandbits(256):064x}"

    def address(self) -> str:
        from eth_utils import to_checksum_address

        return to_checksum_address(f"0x{self.rng.getrandbits(160):040x}")

    def add_loans(self, sizes: list[int], advance: Callable[[int], None]) -> list[str]:
        """Loans of the given lot counts; each a tree (every lot's parent is an earlier lot of the loan).

        Trees stay shallow (~5 levels at 10,000 lots): the trail endpoint answers 500 (RecursionError in
        the nested response model) for trees deeper than about 250 levels."""
        rng = self.rng
        loan_rows, meta_rows, lot_rows, ids = [], [], [], []
        holders = [self.address() for _ in range(max(100, sum(sizes) // 20))]
        now = datetime.now(UTC)
        for size in sizes:
            loan_id = self.hex32()
            ids.append(loan_id)
            self.loan_count += 1
            self.block += 1
            lender = rng.choice(self.lenders)
            loan_rows.append(
                {
                    "loan_id": loan_id,
                    "lender_org": lender,
                    "borrower": rng.choice(self.borrowers),
                    "borrower_ref": self.hex32(),
                    "principal": 10**12,
                    "currency": "CNY",
                    "allowed_purposes": 0b1110,
                    "maturity": 2_000_000_000,
                    "terms_hash": self.hex32(),
                    "disbursed": 10**11,
                    "repaid": 0,
                    "status": rng.choices((1, 2, 3), (85, 12, 3))[0],
                    "risk_class": rng.choices((0, 1, 2, 3, 4), (70, 15, 8, 5, 2))[0],
                    "head": self.hex32(),
                    "event_count": size + 1,
                    "block_number": self.block,
                    "log_index": 0,
                    "transaction_hash": self.hex32(),
                    "updated_block": self.block,
                }
            )
            meta_rows.append(
                {
                    "loan_id": loan_id,
                    "loan_number": f"LN-2026-{self.loan_count:07d}",
                    "terms": {"repayment_schedule": [{"due": "2027-06-30", "amount": "1000000.00"}]},
                    "terms_hash": loan_rows[-1]["terms_hash"],
                    "borrower_salt": "00",
                    "created_by": self.borrowers[0],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            lot_ids: list[str] = []
            for i in range(size):
                lot_id = self.hex32()
                if i % 200 == 0:
                    self.block += 1
                holder = self.holder_address if rng.random() < 0.0005 else rng.choice(holders)
                lot_rows.append(
                    {
                        "loan_id": loan_id,
                        "lot_id": lot_id,
                        "lot_key": lot_key(lot_id),
                        # a parent among the first eighth: trees about log8(size) deep, like supply chains
                        "parent_lot_id": lot_ids[rng.randrange(1 + len(lot_ids) // 8)] if lot_ids else None,
                        "holder": holder,
                        "amount": 1000 + i,
                        "remaining": 500 + i,
                        "purpose": 1 + i % 3,
                        "declared_use": rng.random() > 0.02,
                        "entrusted": None if lot_ids else True,
                        "evidence_hash": self.hex32(),
                        "confirmation": rng.choices(("unconfirmed", "confirmed", "disputed"), (30, 68, 2))[0],
                        "confirmation_hash": None,
                        "confirmation_block": None,
                        "block_number": self.block,
                        "log_index": i % 200,
                        "transaction_hash": self.hex32(),
                    }
                )
                lot_ids.append(lot_id)
            if len(lot_rows) >= 20_000:
                self._flush(loan_rows, meta_rows, lot_rows, advance)
                loan_rows, meta_rows, lot_rows = [], [], []
        self._flush(loan_rows, meta_rows, lot_rows, advance)
        return ids

    def _flush(
        self, loans: list[Any], meta: list[Any], lots: list[Any], advance: Callable[[int], None]
    ) -> None:
        with self.engine.begin() as conn:
            if loans:
                conn.execute(sa.insert(self.loans_t), loans)
                conn.execute(sa.insert(self.meta_t), meta)
            if lots:
                conn.execute(sa.insert(self.lots_t), lots)
        self.total_lots += len(lots)
        advance(len(lots))

    def grow_to(self, total: int, advance: Callable[[int], None]) -> None:
        """Filler loans (1 to ~400 lots, mean about 100) until the database holds `total` lots."""
        sizes: list[int] = []
        planned = self.total_lots
        while planned < total:
            size = min(total - planned, max(1, int(self.rng.expovariate(1 / 100))))
            sizes.append(size)
            planned += size
        if sizes:
            self.add_loans(sizes, advance)
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.execute(sa.text("ANALYZE"))

    def trail_sql(self, loan_id: str) -> float:
        """The trail's own SELECT, straight through SQLAlchemy: the floor under the API's trail."""
        t0 = time.perf_counter()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.lots_t)
                .where(self.lots_t.c.loan_id == loan_id)
                .order_by(self.lots_t.c.block_number, self.lots_t.c.log_index)
            ).all()
        assert rows
        return (time.perf_counter() - t0) * 1000


def serve_reads(data_dir: str, db_url: str, port: int, lender_org: str, holder: str) -> None:
    """The API process of the reads section (`bench.py --serve-reads ...`): create_app over the synthetic
    database, no chain node (reads never touch it), uvicorn on 127.0.0.1:port; tokens go to data_dir."""
    import uvicorn

    from api.app import create_app
    from ledger.chain.compiler import load_contract
    from ledger.chain.contract import LedgerContract
    from ledger.chain.deploy import Deployment, abi_hash

    abi = load_contract("FundFlowLedger").abi
    address = "0x" + "11" * 20
    deployment = Deployment(
        chain_id=31337,
        genesis_hash="0x" + "00" * 32,
        address=address,
        block_number=1,
        block_hash="0x" + "00" * 32,
        tx_hash="0x" + "00" * 32,
        deployer=address,
        abi_hash=abi_hash(abi),
        source_hash="",
        deployed_at="",
        abi=abi,
    )
    client = ChainClient(f"http://127.0.0.1:{free_port()}", request_timeout=1.0)
    people = [
        ("Auditor LLP", "auditor", h("org:auditor"), "auditor", Account.create()),
        ("Bank", "lender", lender_org, "lender", Account.create()),
        ("Holder Co", "enterprise", h("org:holder"), "holder", _AddressOnly(holder)),
    ]
    services, tokens = make_api_services(
        Path(data_dir), db_url, client, LedgerContract(client, address, abi), deployment, people
    )
    (Path(data_dir) / "tokens.json").write_text(json.dumps(tokens))
    uvicorn.run(
        create_app(services=services), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


class _AddressOnly:
    def __init__(self, address: str) -> None:
        self.address = address


def _load_worker(
    base: str, tokens: dict[str, str], paths: list[tuple[str, str]], seconds: float, out: Any, start: Any
) -> None:
    """A load-generator process: once all are ready (barrier), requests in a loop for `seconds`, then
    (count, errors, elapsed) on `out`."""
    count = errors = 0
    with httpx.Client(base_url=base, timeout=60) as http:
        start.wait(600)
        started = time.monotonic()
        deadline = started + seconds
        i = 0
        while time.monotonic() < deadline:
            role, path = paths[i % len(paths)]
            i += 1
            r = http.get(path, headers={"Authorization": f"Bearer {tokens[role]}"})
            count += 1
            errors += r.status_code != 200
    out.put((count, errors, time.monotonic() - started))


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@contextmanager
def fresh_postgres() -> Iterator[str]:
    admin = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"fundflow_bench_reads_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def section_reads(res: Results, out: Path, quick: bool) -> None:
    probe_sizes = [10, 100, 1_000] if quick else [10, 100, 1_000, 10_000]
    scales = [10_000, 50_000] if quick else [10_000, 100_000, 1_000_000]
    reps = {10: 30, 100: 30, 1_000: 15, 10_000: 7} if quick else {10: 60, 100: 60, 1_000: 30, 10_000: 15}
    list_reps = 30 if quick else 60
    load_seconds = 5.0 if quick else 15.0
    with fresh_postgres() as url, tempfile.TemporaryDirectory() as tmp:
        db = ReadDatabase(url)
        with progress_bar("reads: probe loans", sum(probe_sizes)) as advance:
            db.probes = dict(zip(probe_sizes, db.add_loans(probe_sizes, advance), strict=True))
        lender_org = db.lenders[0]
        port = free_port()
        server = subprocess.Popen(
            [PY, __file__, "--serve-reads", tmp, url, str(port), lender_org, db.holder_address],
            cwd=ROOT,
            stdout=open(out / "logs" / "reads-api.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            tokens = _wait_for_api(base, Path(tmp) / "tokens.json", server)
            idle_rss = _rss_kib(server.pid, "VmRSS")
            auth = {role: {"Authorization": f"Bearer {tokens[role]}"} for role in READ_ROLES}
            lists = {
                "loans_filtered": ("auditor", "/v1/loans?status=1&risk_class=2&limit=50"),
                "loans_of_lender": ("lender", "/v1/loans?limit=50"),
                "loans_of_borrower": ("auditor", f"/v1/loans?borrower={db.borrowers[1]}&limit=50"),
                "payments_received_unconfirmed": (
                    "holder",
                    "/v1/payments/received?confirmation=unconfirmed&limit=50",
                ),
            }
            first: dict[str, float] = {}
            with httpx.Client(base_url=base, timeout=120) as http:
                for scale in scales:
                    with progress_bar(
                        f"reads: grow to {scale:,} lots", max(0, scale - db.total_lots)
                    ) as advance:
                        db.grow_to(scale, advance)
                    label = f"{scale // 1000}k" if scale < 1_000_000 else f"{scale // 1_000_000}M"
                    jobs = sum(reps[s] for s in probe_sizes) + list_reps * len(lists)
                    with progress_bar(f"reads: queries at {db.total_lots:,} lots", jobs) as advance:
                        for size, loan_id in db.probes.items():
                            path = f"/v1/loans/{loan_id}/trail"
                            http.get(path, headers=auth["auditor"]).raise_for_status()  # warm
                            api_ms, sql_ms = [], []
                            for _ in range(reps[size]):
                                t0 = time.perf_counter()
                                r = http.get(path, headers=auth["auditor"])
                                api_ms.append((time.perf_counter() - t0) * 1000)
                                assert r.status_code == 200 and r.json()["lot_count"] == size, r.text[:300]
                                sql_ms.append(db.trail_sql(loan_id))
                                advance()
                            sql50 = statistics.median(sql_ms)
                            for q, value in (("p50", statistics.median(api_ms)), ("p95", pct(api_ms, 0.95))):
                                key = f"reads.trail_{size}_lots_{q}@{label}"
                                first.setdefault(f"trail_{size}_{q}", value)
                                res.add(
                                    "reads",
                                    key,
                                    round(value, 2),
                                    "ms",
                                    baseline=round(sql50, 2),
                                    baseline_name="the trail's SELECT alone (SQLAlchemy, p50)",
                                    samples=[round(v, 2) for v in api_ms],
                                    total_lots=db.total_lots,
                                    growth_vs_smallest=round(value / first[f"trail_{size}_{q}"], 2),
                                )
                        for name, (role, path) in lists.items():
                            http.get(path, headers=auth[role]).raise_for_status()
                            ms = []
                            for _ in range(list_reps):
                                t0 = time.perf_counter()
                                r = http.get(path, headers=auth[role])
                                ms.append((time.perf_counter() - t0) * 1000)
                                assert r.status_code == 200, r.text[:300]
                                advance()
                            for q, value in (("p50", statistics.median(ms)), ("p95", pct(ms, 0.95))):
                                smallest = first.setdefault(f"{name}_{q}", value)
                                res.add(
                                    "reads",
                                    f"reads.{name}_{q}@{label}",
                                    round(value, 2),
                                    "ms",
                                    baseline=round(smallest, 2),
                                    baseline_name=f"the same query at {scales[0] // 1000}k lots",
                                    samples=[round(v, 2) for v in ms],
                                    total_lots=db.total_lots,
                                )
            # Read load from separate processes: trails and lists mixed, the API's peak RSS measured.
            paths = [("auditor", f"/v1/loans/{db.probes[s]}/trail") for s in probe_sizes if s <= 1_000]
            paths += list(lists.values())
            context = multiprocessing.get_context("spawn")
            queue = context.Queue()
            start = context.Barrier(4)
            workers = [
                context.Process(target=_load_worker, args=(base, tokens, paths, load_seconds, queue, start))
                for _ in range(4)
            ]
            with progress_bar(f"reads: 4 load processes for {load_seconds:.0f} s", None):
                for w in workers:
                    w.start()
                done = [queue.get(timeout=load_seconds + 300) for _ in workers]
                for w in workers:
                    w.join(30)
            res.add(
                "reads",
                "reads.mixed_load_throughput",
                round(sum(c / t for c, _, t in done), 1),
                "requests/s",
                samples=[round(c / t, 2) for c, _, t in done],
                errors=sum(e for _, e, _ in done),
                total_lots=db.total_lots,
                processes=4,
            )
            res.add(
                "memory",
                "memory.api_peak_rss_under_read_load",
                round(_rss_kib(server.pid, "VmHWM") / 1024, 1),
                "MiB",
                baseline=round(idle_rss / 1024, 1),
                baseline_name="the same API process at start-up (VmRSS)",
                samples=1,
                total_lots=db.total_lots,
            )
        finally:
            server.terminate()
            server.wait(30)
            db.engine.dispose()


def _wait_for_api(base: str, tokens_file: Path, server: subprocess.Popen[bytes]) -> dict[str, str]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the reads API exited while starting; see var/bench/logs/reads-api.log")
        if tokens_file.exists():
            try:
                httpx.get(base + "/docs", timeout=2)
                return dict(json.loads(tokens_file.read_text()))
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    raise RuntimeError("the reads API did not start within 120 s")


# ----------------------------------------------------------------------------------------------- verify


def section_verify(res: Results, out: Path, quick: bool) -> None:
    lots = ["10", "100"] if quick else ["10", "100", "1000", "10000"]
    with progress_bar(f"verify: bench_verify.py --lots {' '.join(lots)}", None):
        ok = run_script("bench_verify.py", ["--lots", *lots], out / "logs/verify.log")
    path = ROOT / "var" / "bench" / "verify.json"
    if not ok or not path.exists():
        res.note(
            "verify", "scripts/bench_verify.py is missing or failed: no verification figures in this run."
        )
        return
    for key, fig in json.loads(path.read_text()).items():
        n = key.removeprefix("lots_")
        res.add(
            "verify",
            f"verify.online_{n}_lots",
            round(fig["verify_online_s"] * 1000, 1),
            "ms",
            baseline=round(fig["rpc_s"] * 1000, 1),
            baseline_name="the same RPC calls alone, two batches",
            samples=5,
            events=fig["events"],
        )
        res.add(
            "verify",
            f"verify.bundle_{n}_lots",
            round(fig["verify_bundle_s"] * 1000, 1),
            "ms",
            baseline=round(fig["verify_online_s"] * 1000, 1),
            baseline_name=f"verify.online_{n}_lots",
            samples=5,
            bundle_kib=round(fig["bundle_bytes"] / 1024, 1),
            bundle_build_ms=round(fig["bundle_build_s"] * 1000, 1),
        )


# ---------------------------------------------------------------------------------------------- the api


def section_api(res: Results, out: Path, quick: bool) -> None:
    """scripts/bench_api.py (the real HTTP server vs plain web3.py, like for like, on Hardhat and anvil)."""
    if not (ROOT / "scripts" / "bench_api.py").exists():
        res.note("api", "scripts/bench_api.py does not exist yet; the writes section covers API throughput.")
        return
    args = ["--out", str(out)]
    if quick:
        args += [
            "--payments",
            "60",
            "--clients",
            "4",
            "--batches",
            "3",
            "--batch-clients",
            "2",
            "--rounds",
            "1",
        ]
    path = out / "api.json"
    path.unlink(missing_ok=True)
    with progress_bar(f"api: bench_api.py {' '.join(args[2:])}", None):
        ok = run_script("bench_api.py", args, out / "logs/api.log")
    if not ok or not path.exists():
        res.note("api", f"scripts/bench_api.py failed or wrote no JSON; see {out / 'logs/api.log'}.")
        return
    report = json.loads(path.read_text())
    for kind, cases in report["nodes"].items():
        for case, fig in cases.items():
            extra = {"senders": fig["senders"], "batch_size": fig["batch_size"], "node": kind}
            base = f"api.{kind}.{case}.plain_web3"
            res.add(
                "api",
                base,
                fig["plain_web3_per_s"],
                "payments/s",
                samples=fig["samples"]["plain_web3"],
                **extra,
            )
            res.add(
                "api",
                f"api.{kind}.{case}.http",
                fig["api_per_s"],
                "payments/s",
                baseline=fig["plain_web3_per_s"],
                baseline_name=base,
                samples=fig["samples"]["api"],
                **extra,
            )
    for line in report["verdicts"]:
        res.note("api", line)


# --------------------------------------------------------------------------------------- bars and output

_PROGRESS: Progress | None = None


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    assert _PROGRESS is not None
    task = _PROGRESS.add_task(description, total=total)
    try:
        yield lambda n=1: _PROGRESS.advance(task, n)  # type: ignore[union-attr]
    finally:
        _PROGRESS.update(task, completed=total or 1, total=total or 1)


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value < 100:
        return f"{value:,.2f}"
    return f"{value:,.0f}" if isinstance(value, int | float) else str(value)


def print_table(res: Results) -> None:
    table = Table("figure", "value", "unit", "baseline", "ratio", title="Fundflow benchmarks")
    for name, fig in res.figures.items():
        table.add_row(name, fmt(fig["value"]), fig["unit"], fmt(fig["baseline"]), fmt(fig["ratio"]))
    console.print(table)


HOW = {
    "scoring-models": """`scripts/bench_scoring_models.py`: the behaviour score's models (issue 21) over
100,000 loans (QUICK 10,000): fitting the optbinning WoE scorecard and the LightGBM challenger, each alone,
and scoring (points, band, probability of default and the top three reason codes per loan). The frame is
synthetic, of the FEATURES' shape (every column, NaN where a feature does not apply): model time depends on
rows and columns, not on where the numbers came from; computing them from the mirror is scoring-features.""",
    "scoring-features": """`scripts/bench_scoring.py`: the behaviour score's `compute_features` (issue
21) over 100,000 loans (QUICK 10,000) in a fresh SQLite file. The mirror rows are bulk-inserted through
the project's tables (driving 100,000 loans through the chain would take hours) with the simulator's
shapes: per loan a 12-instalment schedule in its own stored terms, two disbursements and payments out of
them, repayments (mostly on time, some late or missed), confirmations and disputes, collateral valuations
for half the loans, site visits; one block every ten minutes over two years. Cold = the first call in a
process (each loan's terms hash checked and its schedule computed); warm = the second (schedules cached
by terms hash).""",
    "gas": """`scripts/bench_gas.py` on its own Hardhat node: every operation run with fresh random
32-byte ids and hashes (zero bytes are cheaper in calldata), median `gasUsed` of the rounds. Baseline:
an OpenZeppelin ERC-20 `transfer` to a new holder on the same node. Floor: 21,000 base + the storage the
guarantee needs (22,100 per new lot slot, 5,000 per rewritten slot: parent lot's remaining, loan head);
batches share the base. Gas is deterministic, so these are exact and unaffected by load.""",
    "writes": """Recorded payments per second on a fresh Hardhat node (automine), sequentially, each write
waiting for its receipt: through the API (`POST /v1/payments`, `POST /v1/payments/batch` with 50
payments, FastAPI TestClient in the benchmark process, token auth, idempotency row, keystore signer),
through the library (`LedgerContract.pay` / `pay_batch`: computed gas limit, sign, send, receipt,
decoded events), and the baseline: a plain web3.py loop (`contract.functions.pay(...).build_transaction`
with the same gas limit, so neither side estimates + `sign_transaction` + `send_raw_transaction` +
`wait_for_transaction_receipt`) sending the same calls to the same node. (Before 2026-11 the plain loop
estimated gas per transaction and the library did too; the API's ratios then were against that.) The API
over real HTTP, sequentially and concurrently, is the api section. The cases are interleaved over the
rounds so load spikes hit all alike; value = median of the rounds, ratio = vs plain web3. Each path pays
from its own account and lot (each client keeps its own nonces). Sizes: full 5 rounds of 150 single
payments and 8 batches of 50; QUICK 3 rounds of 30 and 3.""",
    "indexer": """`scripts/bench_indexer.py`: payBatch transactions (200 payments each) fill a fresh
Hardhat node with N events; baseline = plain HTTP `eth_getLogs` over the same range + `json.loads` (what
any indexer must pay), the median of three passes (the node's own speed swings by half between passes);
then a full `Indexer.run_once()` backfill into a fresh SQLite file and a fresh PostgreSQL database.
Freshness: the indexer follows the tip (`run_forever`, default 0.1 s poll); after
each `pay` receipt the benchmark polls SQL until the event row is there; percentiles of the samples
(baseline shown: the poll interval). N = 100,000 events (full) or 10,000 (QUICK); 100 or 30 freshness
samples. Each backfill is the median of three passes into a fresh database, like the baseline. Where the
time goes (CPU per event from /proc during backfills on this 2-CPU machine, 2026-11-28): the node serves the
logs at ~12-16 us per event, and that is the raw rate (42-46k/s, median of 3; single passes range from 27k
to 57k as the node's JIT warms). The indexer adds its decoding worker process, ~13 us (parsing the node's
JSON, decoding, hash checks, rows, marshalling them back), and its own process: ~23 us on SQLite (its main
thread ~19: SQLite's own work for the event row, the lot row, their indexes and the commit ~12, projections
~7; reading the node's answer and unmarshalling ~4 on two fetching threads) or ~15 us on PostgreSQL plus
~13 us in the PostgreSQL server. ~50-56 us of CPU per event on 2 CPUs is at least 25-28 us per event
however well it overlaps, about 0.8 of raw at best. A backfill also pays its pipeline's start (the first
ranges are decoded before the worker is warm, ~0.3 s) and two WAL checkpoints (~0.17 s each) in the
100,000 events. What got it from 0.5 to 0.7 of raw (2026-11-28): lots keyed by chain position with an
8-byte lookup key for lot ids (migration 0007; the hash-keyed key made every batch rewrite most of a
140-byte-per-lot index), the cyclic garbage collector relaxed while the worker runs (walking ~30 fresh
containers per event cost more than building them), the worker's replies as marshal instead of pickle,
three ranges fetched ahead, each range's headers asked before its logs, and no question for the node's
head between batches (a node answers one request at a time, so both had queued behind a prefetched
range). Measured and dropped: write-behind (the next batch prepared while a writer thread commits the
previous: no gain, both CPUs are busy), the worker fetching its ranges itself (it then waited on the node
instead of decoding), a background WAL checkpoint thread, larger SQLite pages (16/32 KiB: within noise), a
lower priority for the worker, and storing the raw log as one blob (row size is not the cost).""",
    "reads": """A fresh PostgreSQL database filled directly with bulk `INSERT`s through the project's tables
(`loans`, `lots`, `loan_metadata`; not through the chain): probe loans of 10..10,000 lots, then filler loans
(exponential sizes, mean ~100 lots, 20 lenders, 2,000 borrowers, trees of lots) until the database holds
each scale, `ANALYZE`d. The API (`create_app`, the real routes `GET /v1/loans/{id}/trail`, `GET /v1/loans`
with filters, `GET /v1/payments/received`) runs under uvicorn in its own process; the benchmark process is
the HTTP client (httpx, one connection, sequential). Trail baseline: the trail's SELECT alone through
SQLAlchemy (so the ratio is the API's tree building + JSON). List baseline: the same request at the smallest
scale, so a ratio near 1 means flat. Then 4 load- generator processes (multiprocessing + httpx) mix trails
and lists for a fixed time against the largest database. Scales: full 11k (the probe loans alone), 100k and
1M lots with probe loans of 10, 100, 1,000 and 10,000 lots; QUICK 10k and 50k with probes up to 1,000.
Requests per figure: 60/60/30/15 trails by size and 60 per list (QUICK 30/30/15 and 30). Indexes: the trail
is served by the lots key (loan_id, block_number, log_index; migration 0007), lender and holder lists by
ix_loans_lender_org and ix_lots_holder; the borrower filter compares lower(borrower), which
ix_loans_borrower cannot serve, so migration 0005 adds an index on lower(borrower). How to read the list
ratios: at the smallest scale (about 110 loans) most filtered pages hold fewer than 50 items, and each item
costs one loan_metadata lookup, so part of the growth to 100k is fuller pages, not a bigger database;
compare 100k with 1M. The holder of `payments_received` receives a fixed share (0.05%) of all lots, so its
result set grows with the database by construction. Trees are kept shallow (about 5 levels at 10,000 lots):
the trail endpoint answers 500 (RecursionError in the nested response model) past about 250 levels.""",
    "verify": """`scripts/bench_verify.py`: loans of 10..10,000 lots made on a Hardhat node and mirrored
into SQLite; `verify_loan` (online, against the chain at a pinned block) vs its RPC calls alone in one
batch; then a proof bundle is built and `verify_bundle` checks it offline (ratio vs online). Median of
5. QUICK: 10 and 100 lots.""",
    "memory": """Indexer: the SQLite backfill of the indexer benchmark (100,000 events in the full run)
runs in a spawned child process that reports its peak RSS (VmHWM of /proc/self/status;
`resource.getrusage`'s ru_maxrss was tried first, but Linux carries the forking parent's high-water mark
across exec, so the child reported the benchmark's own ~440 MiB); baseline = an idle child with the same
imports. API: peak RSS (VmHWM) of the reads API process (uvicorn, its own process) after the query runs
and the 4-process read load on the largest database, baseline = its RSS right after start-up.""",
    "tip": """`scripts/bench_tip.py` (issue 24): one loan of N events (payBatch, 200 payments a
transaction) on its own Hardhat node, mirrored into a fresh SQLite file; then, repeated, one `pay` mined and
indexed (forward step, `Indexer.run_once()` with its node round trips) and that block undone
(`Indexer.rollback_to` its parent: the one-block reorg undo) and indexed again; plain, and with the monitor
`fundflow index` runs (the loan has no structured terms; the monitor's first batch, its sweep, is not timed).
Median ms; baseline: the same figure on the 1,000-event loan. N = 1k, 10k, 100k (QUICK: 1k, 10k).""",
    "portability": """The writes and indexer sections again on anvil (npm `@foundry-rs/anvil`, free gas
like the Hardhat config); ratios are against the baselines measured on anvil in the same run.""",
    "cluster": """`scripts/bench_cluster.py`: locust (headless, 127.0.0.1) against `fundflow up --replicas`
(HAProxy, PostgreSQL, a leader and a standby indexer, Hardhat), 1 replica vs 2, a fresh cluster each. Each
user is an enterprise paying its ring neighbour; task weights: payment 6, batch of 2 payments 1, list
received + confirm 2, trail 3, list loans 3, verification 1; 50-150 ms think time. Levels of 1..64 users
(QUICK 2, 8, 24), 30 s each (QUICK 15 s). Ratio = 2 replicas / 1 replica at the same level. The knee: the
first level whose throughput grew <15% while p95 grew >=50%.""",
    "api": """`scripts/bench_api.py`, the API benchmark, like for like, on Hardhat and on anvil: the
product's own server (`fundflow serve`, uvicorn, its own process, SQLite, idempotency rows, decoded events
in every answer) against a plain web3.py loop (web3's contract object encodes, eth-account signs,
`send_raw_transaction`, `wait_for_transaction_receipt`) sending the same transactions to the same node
with the same gas limit (the API's computed bound; neither side estimates). Single payments: one HTTP
client vs one plain loop (`single_sequential`), then N HTTP clients, each a participant with its own key
and lot, vs N plain web3 threads with their own keys and lots (`single_concurrent`, N = 16; QUICK 4).
Batches of 500 (`POST /v1/payments/batch`) vs the same payBatch transactions, one sender each side, then
M = 4 (QUICK 2). Pairs interleaved over 3 rounds (QUICK 1), medians; ratio = API / plain web3. Every
payment is checked on chain to be recorded exactly once. The notes say which target was met, and how.""",
}


def write_docs(res: Results, path: Path, commit: str, elapsed: float) -> None:
    by_mode: dict[str, set[str]] = {"full": set(), "QUICK": set()}
    for fig in res.figures.values():
        by_mode["QUICK" if fig.get("quick") else "full"].add(fig["section"])
    mode = "; ".join(f"{m} size: {', '.join(sorted(v))}" for m, v in by_mode.items() if v)
    lines = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench.py` (`make bench`; `make bench QUICK=1` for the small version).",
        "All figures of the run are in `var/bench/results.json` (value, unit, baseline, ratio, samples).",
        "The machines are shared and may be loaded by other work during a run, so absolute numbers",
        "are noisy: every figure that can be is shown next to a baseline measured in the same run, and",
        "timings are medians.",
        "",
        f"Last run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit `{commit}`, {elapsed / 60:.1f} min, "
        f"{os.cpu_count()} CPUs. Sections by size ({mode}). `--only` runs replace their sections' figures",
        "and keep the others', so a page can mix a full run of some sections with a QUICK run of the rest.",
        "",
    ]
    order = [
        "gas",
        "writes",
        "indexer",
        "reads",
        "verify",
        "memory",
        "portability",
        "api",
        "tip",
        "cluster",
        "scoring-features",
        "scoring-models",
    ]
    for section in order:
        figs = {k: v for k, v in res.figures.items() if v["section"] == section}
        notes = res.notes.get(section, [])
        if not figs and not notes:
            continue
        modes = {"QUICK" if f.get("quick") else "full" for f in figs.values()}
        lines += [f"## {section.capitalize()}", ""]
        if figs:
            lines += [f"Figures from a {' and a '.join(sorted(modes))} run.", ""]
        lines += [HOW[section].replace("\n", " "), ""]
        lines += [f"> {n}" for n in notes] + ([""] if notes else [])
        if section == "reads":
            lines += _scale_table(figs)
        if figs:
            lines += ["| figure | value | unit | baseline | ratio |", "|---|---:|---|---|---:|"]
            for name, fig in figs.items():
                base = fmt(fig["baseline"])
                if fig.get("baseline_name") and base:
                    base = f"{base} ({fig['baseline_name']})"
                lines.append(
                    f"| {name} | {fmt(fig['value'])} | {fig['unit']} | {base} | {fmt(fig['ratio'])} |"
                )
            lines.append("")
    lines += [
        "## Rerun",
        "",
        "```",
        "make bench            # everything (PostgreSQL on 127.0.0.1:5432, Hardhat, anvil)",
        "make bench QUICK=1    # small version",
        ".venv/bin/python scripts/bench.py --only reads --quick",
        "```",
        "",
        "PostgreSQL server: `FUNDFLOW_BENCH_POSTGRES` (default postgresql+psycopg://postgres@127.0.0.1:5432/test).",
        "",
    ]
    # What people wrote under the marker (the analysis moved from the README, issue 20) survives a rerun.
    kept = path.read_text().partition(HAND_WRITTEN)[2] if path.exists() else ""
    if kept:
        lines += [HAND_WRITTEN + kept.rstrip("\n"), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


HAND_WRITTEN = "<!-- hand-written below this line: scripts/bench.py keeps it when it regenerates the page -->"


def _scale_table(figs: dict[str, dict[str, Any]]) -> list[str]:
    """Each read figure across the database sizes, side by side: flat rows mean the query scales."""
    grid: dict[str, dict[str, Any]] = {}
    scales: dict[str, int] = {}
    for name, fig in figs.items():
        if "@" not in name:
            continue
        stem, label = name.removeprefix("reads.").split("@")
        grid.setdefault(stem, {})[label] = fig["value"]
        scales[label] = fig.get("total_lots", 0)
    if not grid:
        return []
    labels = sorted(scales, key=scales.__getitem__)
    head = " | ".join(f"{scales[label]:,} lots" for label in labels)
    out = [
        "Latency (ms) by database size; the last column is largest / smallest (about 1 = flat):",
        "",
        f"| query | {head} | growth |",
        "|---|" + "---:|" * (len(labels) + 1),
    ]
    for stem, row in grid.items():
        cells = " | ".join(fmt(row.get(label)) for label in labels)
        first, last = row.get(labels[0]), row.get(labels[-1])
        growth = fmt(round(last / first, 2)) if first and last else ""
        out.append(f"| {stem} | {cells} | {growth} |")
    return [*out, ""]


# ---------------------------------------------------------------------------------------------- tip


def section_tip(res: Results, out: Path, quick: bool) -> None:
    """scripts/bench_tip.py: one block at the tip (forward step, one-block undo), plain and with the monitor,
    on one loan of 1k, 10k, 100k events (QUICK: 1k, 10k); each figure against the smallest loan's."""
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    path = out / "tip.json"
    args = ["--sizes", *map(str, sizes), "--reps", "5" if quick else "9", "--json", str(path)]
    with progress_bar(f"tip: bench_tip.py --sizes {' '.join(map(str, sizes))}", None):
        ok = run_script("bench_tip.py", args, out / "logs/tip.log")
    if not ok:
        res.note("tip", "scripts/bench_tip.py failed: see var/bench/logs/tip.log")
        return
    figs = json.loads(path.read_text())
    verdicts = []
    for what in ("forward_plain", "forward_monitor", "undo_plain", "undo_monitor"):
        smallest = figs[f"{what}_{sizes[0]}"]["value"]
        for size in sizes:
            fig = figs[f"{what}_{size}"]
            res.add(
                "tip",
                f"tip.{what}@{size:,}",
                fig["value"],
                "ms",
                baseline=smallest if size != sizes[0] else None,
                baseline_name=f"the same on a {sizes[0]:,}-event loan" if size != sizes[0] else None,
                samples=5 if quick else 9,
                events=fig["events"],
            )
        ratio = figs[f"{what}_{sizes[-1]}"]["value"] / smallest if smallest else None
        if ratio is not None:
            mark = "✓" if ratio <= 2 else "✗"
            verdicts.append(f"{what.replace('_', ' ')} {sizes[-1]:,} vs {sizes[0]:,}: {ratio:.2f}x {mark}")
    res.note("tip", "Target (issue 24): the largest loan within 2x of the smallest. " + "; ".join(verdicts))


# ---------------------------------------------------------------------------------------------- cluster


def section_cluster(res: Results, out: Path, quick: bool) -> None:
    """scripts/bench_cluster.py: locust against `fundflow up --replicas` behind HAProxy, 1 replica vs 2."""
    path = out / "cluster.json"
    path.unlink(missing_ok=True)
    args = ["--out", str(out)] + (["--quick"] if quick else [])
    with progress_bar(f"cluster: bench_cluster.py {' '.join(args[2:])}", None):
        ok = run_script("bench_cluster.py", args, out / "logs/cluster.log")
    if not ok or not path.exists():
        res.note(
            "cluster", f"scripts/bench_cluster.py failed or wrote no JSON; see {out / 'logs/cluster.log'}."
        )
        return
    report = json.loads(path.read_text())
    runs = report["runs"]
    top = max(report["users"])
    base_run = {lv["users"]: lv["kinds"] for lv in runs["1"]["levels"]}
    for replicas, run in runs.items():
        knee = run["knee_users"] or "none up to the top level"
        res.note("cluster", f"{replicas} replica(s): knee at {knee} users.")
        for level in run["levels"]:
            users = level["users"]
            # every level's total; each request kind at the highest level only (the page stays readable)
            kinds = level["kinds"] if users == top else {"total": level["kinds"]["total"]}
            for kind, fig in kinds.items():
                stem = f"u{users}.{kind.replace(' ', '_')}"
                base = base_run.get(users, {}).get(kind) if replicas != "1" else None
                for key, unit in (("per_s", "req/s"), ("p50_ms", "ms"), ("p95_ms", "ms"), ("p99_ms", "ms")):
                    res.add(
                        "cluster",
                        f"cluster.r{replicas}.{stem}.{key}",
                        fig[key],
                        unit,
                        baseline=base[key] if base else None,
                        baseline_name=f"cluster.r1.{stem}.{key}" if base else None,
                        failures=fig["failures"],
                        requests=fig["requests"],
                    )


# ---------------------------------------------------------------------------------------------- scoring


def section_scoring_features(res: Results, out: Path, quick: bool) -> None:
    """scripts/bench_scoring.py: the behaviour score's `compute_features` over 100,000 loans (QUICK: 10,000)
    of bulk-inserted mirror rows, cold and warm (schedules cached)."""
    loans = 10_000 if quick else 100_000
    path = out / "scoring.json"
    path.unlink(missing_ok=True)
    with progress_bar(f"scoring-features: bench_scoring.py --loans {loans:,}", None):
        ok = run_script(
            "bench_scoring.py", ["--loans", str(loans), "--json", str(path)], out / "logs/scoring.log"
        )
    if not ok or not path.exists():
        res.note("scoring-features", "scripts/bench_scoring.py failed: see var/bench/logs/scoring.log")
        return
    fig = json.loads(path.read_text())
    for when in ("cold", "warm"):
        res.add(
            "scoring-features",
            f"scoring.features_{when}@{loans:,}",
            fig[f"{when}_s"],
            "s",
            baseline=fig["cold_s"] if when == "warm" else None,
            baseline_name="the cold call" if when == "warm" else None,
            loans_per_s=fig[f"{when}_loans_per_s"],
            rows=fig["rows_inserted"],
        )
    res.note(
        "scoring-features",
        f"{fig['loans_scored']:,} loans ({fig['rows_inserted']:,} mirror rows) on {fig['database']}: "
        f"cold {fig['cold_s']} s ({fig['cold_loans_per_s']:,} loans/s), warm {fig['warm_s']} s "
        f"({fig['warm_loans_per_s']:,} loans/s).",
    )


def section_scoring_models(res: Results, out: Path, quick: bool) -> None:
    """scripts/bench_scoring_models.py: training (scorecard, challenger) and scoring 100,000 loans (QUICK:
    10,000) of a synthetic frame of the FEATURES' shape."""
    loans = 10_000 if quick else 100_000
    path = out / "scoring_models.json"
    path.unlink(missing_ok=True)
    with progress_bar(f"scoring-models: bench_scoring_models.py --loans {loans:,}", None):
        ok = run_script(
            "bench_scoring_models.py",
            ["--loans", str(loans), "--json", str(path)],
            out / "logs/scoring_models.log",
        )
    if not ok or not path.exists():
        res.note(
            "scoring-models", "scripts/bench_scoring_models.py failed: see var/bench/logs/scoring_models.log"
        )
        return
    fig = json.loads(path.read_text())
    res.add("scoring-models", f"scoring.train_scorecard@{loans:,}", fig["train_scorecard_s"], "s")
    res.add("scoring-models", f"scoring.train_challenger@{loans:,}", fig["train_challenger_s"], "s")
    res.add(
        "scoring-models",
        f"scoring.score@{loans:,}",
        fig["score_s"],
        "s",
        loans_per_s=fig["score_loans_per_s"],
    )
    res.note(
        "scoring-models",
        f"{fig['loans']:,} loans x {fig['features']} features: scorecard fitted in "
        f"{fig['train_scorecard_s']} s, challenger in {fig['train_challenger_s']} s; scored (points, band, "
        "PD, three reasons) in "
        f"{fig['score_s']} s ({fig['score_loans_per_s']:,} loans/s).",
    )


RUNNERS: dict[str, Callable[[Results, Path, bool], None]] = {
    "gas": section_gas,
    "writes": section_writes,
    "indexer": section_indexer,
    "reads": section_reads,
    "verify": section_verify,
    "portability": section_portability,
    "api": section_api,
    "tip": section_tip,
    "cluster": section_cluster,
    "scoring-features": section_scoring_features,
    "scoring-models": section_scoring_models,
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-reads":
        serve_reads(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small version (a few minutes)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench", help="results directory")
    parser.add_argument("--docs", type=str, default=str(ROOT / "docs" / "benchmarks.md"), help="'' = none")
    parser.add_argument("--docs-only", action="store_true", help="regenerate the docs from results.json")
    args = parser.parse_args()
    global _PROGRESS
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    res = Results(args.quick)
    results_file = args.out / "results.json"
    if args.only and results_file.exists():  # a partial run updates the previous figures
        previous = json.loads(results_file.read_text())
        res.figures = {
            k: v for k, v in previous.get("figures", {}).items() if v.get("section") not in args.only
        }
        res.notes = {k: v for k, v in previous.get("notes", {}).items() if k not in args.only}
        for fig in res.figures.values():
            fig.setdefault("quick", previous.get("quick"))
    if args.docs_only:
        saved = json.loads(results_file.read_text())
        res.figures, res.notes = saved["figures"], saved["notes"]
        for fig in res.figures.values():
            fig.setdefault("quick", saved["quick"])
        write_docs(res, Path(args.docs), saved["commit"], saved["seconds"])
        console.print(f"wrote {args.docs}")
        return
    started = time.perf_counter()
    sections = [s for s in SECTIONS if not args.only or s in args.only]
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        _PROGRESS = progress
        overall = progress.add_task("[bold]sections", total=len(sections))
        for section in sections:
            progress.update(overall, description=f"[bold]section {section}")
            try:
                RUNNERS[section](res, args.out, args.quick)
            except Exception as exc:  # one broken section must not lose the others' figures
                console.print(f"[red]section {section} failed: {type(exc).__name__}: {exc}[/]")
                res.note(section, f"this section failed in this run: {type(exc).__name__}: {exc}")
            progress.advance(overall)
    elapsed = time.perf_counter() - started
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    results_file.write_text(
        json.dumps(
            {
                "quick": args.quick,
                "commit": commit,
                "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                "seconds": round(elapsed, 1),
                "notes": res.notes,
                "figures": res.figures,
            },
            indent=2,
        )
        + "\n"
    )
    print_table(res)
    console.print(f"wrote {results_file}")
    if args.docs:
        write_docs(res, Path(args.docs), commit, elapsed)
        console.print(f"wrote {args.docs}")


if __name__ == "__main__":
    main()
