"""Verification benchmark: online verification of a loan with 10 / 100 / 1,000 lots against a SQLite mirror,
split into the RPC round trip and the local work, and the same trail through a proof bundle (build, verify).

    .venv/bin/python scripts/bench_verify.py
    .venv/bin/python scripts/bench_verify.py --lots 10 100 1000 5000

Runs its own Hardhat node; lots come from one disbursement and payBatch (200 payments per transaction).
Writes var/bench/verify.json. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_account import Account
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.audit.bundle import build_bundle, bundle_to_text, heads_slot, verify_bundle  # noqa: E402
from ledger.audit.verify import verify_loan  # noqa: E402
from ledger.chain.client import ChainClient  # noqa: E402
from ledger.chain.compiler import load_contract  # noqa: E402
from ledger.chain.contract import ENTERPRISE_ROLE, LENDER_ROLE, LedgerContract, PaymentSpec  # noqa: E402
from ledger.chain.deploy import connect, deploy_ledger  # noqa: E402
from ledger.chain.localchain import LocalChain  # noqa: E402
from ledger.mirror.indexer import Indexer  # noqa: E402
from ledger.store.db import create_db_engine, migrate  # noqa: E402

console = Console()


def _h(label: str) -> str:
    from eth_utils import keccak

    return "0x" + keccak(text=label).hex()


def make_loan(
    ledger: LedgerContract, bank: Any, supplier: Any, payees: list[Any], lots: int, label: str
) -> str:
    loan_id = _h(f"bench-loan:{label}")
    ledger.open_loan(
        bank,
        loan_id=loan_id,
        borrower=supplier.address,
        borrower_ref=_h("ref"),
        principal=10**15,
        currency="CNY",
        allowed_purposes=(1, 2, 3),
        maturity=int(time.time()) + 365 * 86400,
        terms_hash=_h("terms"),
    )
    root = ledger.disburse(bank, loan_id=loan_id, payee=supplier.address, amount=10**14, purpose=1)
    root_lot = root.event("Disbursed").args["lotId"]
    left = lots - 1
    while left > 0:
        n = min(left, 200)
        ledger.pay_batch(
            supplier,
            loan_id=loan_id,
            payments=[
                PaymentSpec(root_lot, payees[i % len(payees)].address, 1_000 + i, 1 + i % 3, _h(f"ev{i}"))
                for i in range(n)
            ],
        )
        left -= n
    return loan_id


def timed(fn: Callable[[], Any], runs: int = 5) -> tuple[float, Any]:
    results = []
    value = None
    for _ in range(runs):
        start = time.perf_counter()
        value = fn()
        results.append(time.perf_counter() - start)
    return statistics.median(results), value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()
    compiled = load_contract("FundFlowLedger")
    slot = heads_slot(compiled.storage_layout)
    figures: dict[str, Any] = {}
    table = Table(
        "lots",
        "events",
        "verify online",
        "of which RPC",
        "local work",
        "bundle build",
        "bundle size",
        "verify bundle",
        title="verification (median of 5)",
    )
    with LocalChain() as node, tempfile.TemporaryDirectory() as tmp:
        # A batch of 10,000 eth_calls (the RPC-only baseline at 10,000 lots) can take a slow node over the
        # default 10 s to answer.
        client = ChainClient(node.url, request_timeout=300)
        operator = Account.create()
        deployment = deploy_ledger(client, operator, compiled)
        ledger = connect(client, deployment)
        bank, supplier = Account.create(), Account.create()
        payees = [Account.create() for _ in range(5)]
        ledger.register_organization(operator, _h("org:bank"), _h("p"))
        ledger.add_account(operator, _h("org:bank"), bank.address)
        ledger.grant_role(operator, LENDER_ROLE, bank.address)
        ledger.register_organization(operator, _h("org:ent"), _h("p"))
        for account in [supplier, *payees]:
            ledger.add_account(operator, _h("org:ent"), account.address)
            ledger.grant_role(operator, ENTERPRISE_ROLE, account.address)
        loans = {n: make_loan(ledger, bank, supplier, payees, n, str(n)) for n in args.lots}
        engine = create_db_engine(f"sqlite:///{tmp}/bench.db")
        migrate(engine)
        with Indexer(engine, client, deployment) as indexer:
            indexer.run_once()
        for n, loan_id in loans.items():
            online, result = timed(lambda loan_id=loan_id: verify_loan(engine, ledger, loan_id))
            assert result.ok, result.problems()[:3]
            # The RPC part alone: the two batches verify_loan sends (header, headOf x2, logs; then getLoan
            # and getLot per lot).
            calls: list[tuple[str, list[Any]]] = [("eth_getBlockByNumber", ["latest", False])]
            calls += [
                ("eth_call", [{"to": ledger.address, "data": ledger.encode("headOf", bytes(32))}, "latest"])
            ] * 2
            calls.append(
                (
                    "eth_getLogs",
                    [
                        {
                            "address": ledger.address,
                            "fromBlock": hex(deployment.block_number),
                            "topics": [None, loan_id],
                        }
                    ],
                )
            )
            reads: list[tuple[str, list[Any]]] = [
                ("eth_call", [{"to": ledger.address, "data": ledger.encode("headOf", bytes(32))}, "latest"])
            ] * (n + 1)
            rpc, _ = timed(lambda calls=calls, reads=reads: (client.batch(calls), client.batch(reads)))
            build, bundle = timed(
                lambda loan_id=loan_id: build_bundle(
                    ledger, loan_id, storage_slot=slot, from_block=deployment.block_number
                ),
                runs=3,
            )
            text = bundle_to_text(bundle)
            anchor = str(bundle["header"]["hash"])
            offline, _ = timed(
                lambda text=text, anchor=anchor: verify_bundle(text, trusted_block_hash=anchor)
            )
            events = len(result.events)
            table.add_row(
                f"{n:,}",
                f"{events:,}",
                f"{online * 1000:,.0f} ms",
                f"{rpc * 1000:,.0f} ms",
                f"{max(online - rpc, 0) * 1000:,.0f} ms",
                f"{build * 1000:,.0f} ms",
                f"{len(text) / 1024:,.0f} KiB",
                f"{offline * 1000:,.0f} ms",
            )
            figures[f"lots_{n}"] = {
                "events": events,
                "verify_online_s": online,
                "rpc_s": rpc,
                "local_s": max(online - rpc, 0),
                "bundle_build_s": build,
                "bundle_bytes": len(text),
                "verify_bundle_s": offline,
            }
        engine.dispose()
    console.print(table)
    out = ROOT / "var" / "bench" / "verify.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
