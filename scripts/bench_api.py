"""Recorded payments per second through the HTTP API (single and batch) next to a plain web3.py loop
sending equivalent signed `pay` transactions to the same node in the same run. Writes var/bench/api.json.

    .venv/bin/python scripts/bench_api.py [--payments 1000] [--clients 16] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account import Account
from eth_utils import keccak
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from web3 import Web3

from api.app import create_app
from api.services import DirectoryCache, Services
from ledger.chain import ChainClient
from ledger.compiler import load_contract
from ledger.config import Settings
from ledger.contract import ENTERPRISE_ROLE, LENDER_ROLE
from ledger.db import create_db_engine, migrate
from ledger.deploy import connect, deploy_ledger
from ledger.keystore import Keystore
from ledger.localchain import LocalChain, free_port
from ledger.offchain import create_token
from ledger.participants import Directory, Participant

console = Console()


def h(label: str) -> str:
    return "0x" + keccak(text=label).hex()


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--payments", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=250)  # 500 exceeds the 2^24 gas cap per tx
    args = parser.parse_args()
    out_dir = Path("var/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    with LocalChain() as node, tempfile.TemporaryDirectory() as tmp:
        client = ChainClient(node.url)
        operator = Account.create()
        deployment = deploy_ledger(client, operator, load_contract("FundFlowLedger"))
        ledger = connect(client, deployment)
        bank, supplier, payee = Account.create(), Account.create(), Account.create()
        for org, acct, role in (
            (h("bank"), bank, LENDER_ROLE),
            (h("sup"), supplier, ENTERPRISE_ROLE),
            (h("payee"), payee, ENTERPRISE_ROLE),
        ):
            ledger.register_organization(operator, org, h(f"p:{org}"))
            ledger.add_account(operator, org, acct.address)
            ledger.grant_role(operator, role, acct.address)
        loan = h("bench-loan")
        total = args.payments * 2 + args.batches * args.batch_size + 10
        ledger.open_loan(
            bank,
            loan_id=loan,
            borrower=supplier.address,
            borrower_ref=h("r"),
            principal=total * 10,
            currency="CNY",
            allowed_purposes=[1],
            maturity=int(time.time()) + 86400 * 365,
            terms_hash=h("t"),
        )
        lot = ledger.disburse(bank, loan_id=loan, payee=supplier.address, amount=total, purpose=1).event(
            "Disbursed"
        )
        lot_id = lot.args["lotId"]

        # ---------------------------------------------------------------- plain web3.py loop
        w3 = Web3(Web3.HTTPProvider(node.url))
        data = ledger.encode(
            "pay", bytes.fromhex(loan[2:]), bytes.fromhex(lot_id[2:]), payee.address, 1, 1, b"\0" * 32
        )
        gas = int(w3.eth.estimate_gas({"from": supplier.address, "to": ledger.address, "data": data}) * 1.2)
        nonce = w3.eth.get_transaction_count(supplier.address)
        chain_id = w3.eth.chain_id
        fees = client._fee_fields()  # the same fee fields the product sends (zero on free-gas chains)
        with progress() as bar:
            task = bar.add_task("plain web3 loop", total=args.payments)
            start = time.perf_counter()
            for i in range(args.payments):
                signed = supplier.sign_transaction(
                    {
                        "to": ledger.address,
                        "data": data,
                        "gas": gas,
                        **fees,
                        "nonce": nonce + i,
                        "chainId": chain_id,
                        "value": 0,
                    }
                )
                tx = w3.eth.send_raw_transaction(signed.raw_transaction)
                w3.eth.wait_for_transaction_receipt(tx, poll_latency=0.005)
                bar.advance(task)
            plain = args.payments / (time.perf_counter() - start)

        # ---------------------------------------------------------------- the API
        settings = Settings(
            env="test", rpc_url=node.url, data_dir=Path(tmp), keystore_scrypt_n=1024, api_port=free_port()
        )
        engine = create_db_engine(settings.database_url)
        migrate(engine)
        keystore = Keystore(settings.keystore_dir, settings.passphrase(), scrypt_n=1024)
        keystore.import_key("supplier", supplier)
        Directory(settings.participants_file).put(
            Participant(
                name="Supplier",
                role="enterprise",
                org_id=h("sup"),
                profile_salt="0",
                accounts={"supplier": supplier.address},
            )
        )
        token = create_token(engine, participant="Supplier", key_name="supplier", address=supplier.address)
        services = Services(
            settings,
            ChainClient(node.url),
            connect(ChainClient(node.url), deployment),
            deployment,
            engine,
            DirectoryCache(settings.participants_file),
            keystore,
        )
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(services=services), host="127.0.0.1", port=settings.api_port, log_level="warning"
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{settings.api_port}"
        local = threading.local()

        def http() -> httpx.Client:
            if not hasattr(local, "c"):
                local.c = httpx.Client(base_url=url, headers=headers, timeout=120)
            return local.c  # type: ignore[no-any-return]

        def pay_one(i: int) -> Any:
            r = http().post(
                "/v1/payments",
                headers={"Idempotency-Key": f"s{i}"},
                json={"loan": loan, "from_lot": lot_id, "payee": payee.address, "amount": 1, "purpose": 1},
            )
            assert r.status_code == 201, r.text

        def pay_batch(i: int) -> Any:
            payments = [
                {"from_lot": lot_id, "payee": payee.address, "amount": 1, "purpose": 1}
            ] * args.batch_size
            r = http().post(
                "/v1/payments/batch",
                headers={"Idempotency-Key": f"b{i}"},
                json={"loan": loan, "payments": payments},
            )
            assert r.status_code == 201, r.text

        results: dict[str, float] = {}
        with progress() as bar, ThreadPoolExecutor(args.clients) as pool:
            task = bar.add_task("API single payments", total=args.payments)
            start = time.perf_counter()
            for _ in pool.map(pay_one, range(args.payments)):
                bar.advance(task)
            results["api_single"] = args.payments / (time.perf_counter() - start)
            task = bar.add_task(f"API batches of {args.batch_size}", total=args.batches * args.batch_size)
            start = time.perf_counter()
            for _ in pool.map(pay_batch, range(args.batches)):
                bar.advance(task, args.batch_size)
            results["api_batch"] = args.batches * args.batch_size / (time.perf_counter() - start)
        server.should_exit = True
        thread.join(timeout=10)
        remaining = ledger.get_lot(loan, lot_id).remaining
        expected = total - args.payments * 2 - args.batches * args.batch_size
        assert remaining == expected, (remaining, expected)  # every payment recorded exactly once
        engine.dispose()
    report = {
        "node": "hardhat (automine)",
        "payments": args.payments,
        "clients": args.clients,
        "batch_size": args.batch_size,
        "plain_web3_loop_per_s": round(plain, 1),
        "api_single_per_s": round(results["api_single"], 1),
        "api_single_vs_plain": round(results["api_single"] / plain, 2),
        "api_batch_payments_per_s": round(results["api_batch"], 1),
    }
    (out_dir / "api.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print_json(data=report)


if __name__ == "__main__":
    main()
