"""Gas per ledger operation, next to an ERC-20 transfer measured on the same node and to the storage floor.

Starts its own Hardhat node on a free port, deploys FundFlowLedger and a plain OpenZeppelin ERC-20, runs each
operation several times with fresh ids and reports the median gas used. Gas is deterministic for the same
calldata shape, so the medians are exact, but ids and hashes are random 32-byte values (as in production),
because zero bytes in calldata are cheaper than non-zero ones.

The floor of an operation is what any contract must pay for the state the ledger guarantees: the 21,000 base
cost plus, per payment, one new storage slot (22,100: a cold zero-to-non-zero SSTORE), rewriting the parent
lot's remaining amount (5,000: cold SLOAD + SSTORE) and rewriting the loan's head (5,000). Calldata, events
and checks come on top.

The supply-chain voucher contract (issue 22) is measured on the same node: issue (确权), split and transfer,
financing asked and accepted, settlement at maturity. Its split-and-transfer to one recipient is held to the
ledger's `pay` measured in the same run (the issue's bound), and its floor is a payment's.

Usage: python scripts/bench_gas.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

from eth_abi import encode as abi_encode
from eth_account import Account
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.chain.client import ChainClient  # noqa: E402
from ledger.chain.compiler import load_contract  # noqa: E402
from ledger.chain.contract import AUDITOR_ROLE, ENTERPRISE_ROLE, LENDER_ROLE, LedgerContract, PaymentSpec  # noqa: E402
from ledger.chain.deploy import connect, connect_vouchers, deploy_ledger  # noqa: E402
from ledger.chain.localchain import LocalChain  # noqa: E402
from ledger.chain.vouchers import VoucherContract  # noqa: E402

# (operation, target gas from the foundation issue or None, floor)
BASE, NEW_SLOT, REWRITE = 21_000, 22_100, 5_000
TARGETS: dict[str, int] = {
    "pay": 65_000,
    "pay (batch of 50, each)": 32_000,
    "disburse": 80_000,
    "confirm": 35_000,
}
FLOORS: dict[str, int] = {
    "disburse": BASE + NEW_SLOT + REWRITE + REWRITE,  # new lot, loan's disbursed total, head
    "pay": BASE + NEW_SLOT + REWRITE + REWRITE,  # new lot, parent remaining, head
    "pay (batch of 10, each)": NEW_SLOT + BASE // 10,
    "pay (batch of 50, each)": NEW_SLOT + BASE // 50,
    "pay (batch of 200, each)": NEW_SLOT + BASE // 200,
    "confirm": BASE + NEW_SLOT + REWRITE,  # the lot's answer (a slot of its own, see the contract), head
    "dispute": BASE + NEW_SLOT + REWRITE,
    "confirm after dispute": BASE + REWRITE + REWRITE,  # the lot's answer rewritten, head
    "repay": BASE + REWRITE + REWRITE,
    "attest": BASE,
    "ERC-20 transfer (new holder)": BASE + NEW_SLOT + REWRITE,
    # vouchers: the new part, the parent's remaining, the head (as a payment)
    "voucher: split and transfer (one recipient)": BASE + NEW_SLOT + REWRITE + REWRITE,
}


def rand32() -> str:
    return "0x" + secrets.token_bytes(32).hex()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="repetitions per operation (median reported)")
    parser.add_argument("--json", type=Path, default=Path("var/bench/gas.json"))
    args = parser.parse_args()
    console = Console()

    with LocalChain() as node:
        client = ChainClient(node.url)
        operator = Account.create()
        deployment = deploy_ledger(client, operator, vouchers=True)
        ledger = connect(client, deployment)
        vouchers = connect_vouchers(client, deployment)
        cast: dict = {name: Account.create() for name in ("bank", "borrower", "supplier", "payee", "auditor")}
        orgs: dict[str, str] = {}
        for name, role in (
            ("bank", LENDER_ROLE),
            ("borrower", ENTERPRISE_ROLE),
            ("supplier", ENTERPRISE_ROLE),
            ("payee", ENTERPRISE_ROLE),
            ("auditor", AUDITOR_ROLE),
        ):
            org = orgs[name] = rand32()
            ledger.register_organization(operator, org, rand32())
            ledger.add_account(operator, org, cast[name].address)
            ledger.grant_role(operator, role, cast[name].address)
        # a third party (issue 19): an organisation with one account and no business role
        cast["appraiser"] = Account.create()
        cast["appraiser_org"] = rand32()
        ledger.register_organization(operator, cast["appraiser_org"], rand32())
        ledger.add_account(operator, cast["appraiser_org"], cast["appraiser"].address)

        # supply-chain vouchers (issue 22): the borrower is the core enterprise, Bank A grants its line
        cast["core_org"], cast["bank_org"] = orgs["borrower"], orgs["bank"]
        vouchers.set_credit_line(
            cast["bank"],
            core_org=orgs["borrower"],
            limit=10**17,
            expiry=int(time.time()) + 10**8,
            terms_hash=rand32(),
        )

        token_build = load_contract("ReferenceToken")
        data = token_build.bytecode.removeprefix("0x") + abi_encode(["uint256"], [10**30]).hex()
        token = client.transact(operator, None, "0x" + data).contract_address
        assert token is not None

        gas: dict[str, list[float]] = {}
        record = lambda name, value: gas.setdefault(name, []).append(value)  # noqa: E731
        with Progress(console=console) as progress:
            task = progress.add_task("measuring gas", total=args.runs)
            for _ in range(args.runs):
                _one_round(ledger, client, cast, token, operator, record)
                _voucher_round(vouchers, client, cast, record)
                progress.advance(task)
        # The issue's bound: a split-and-transfer in one call costs no more than a ledger payment.
        TARGETS[SPLIT_ONE] = int(statistics.median(gas["pay"]))

    table = Table("operation", "gas (median)", "vs ERC-20 transfer", "floor", "target", "meets")
    erc20 = statistics.median(gas["ERC-20 transfer (new holder)"])
    results = {}
    for name, values in gas.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        floor = FLOORS.get(name)
        table.add_row(
            name,
            f"{median:,.0f}",
            f"{median / erc20:.2f}×",
            f"{floor:,}" if floor else "",
            f"≤ {target:,}" if target else "",
            ("yes" if median <= target else "[red]no[/]") if target else "",
        )
        results[f"gas.{name}"] = {
            "value": median,
            "unit": "gas",
            "baseline": erc20,
            "floor": floor,
            "target": target,
        }
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written to {args.json}")


SPLIT_ONE = "voucher: split and transfer (one recipient)"


def _voucher_round(vouchers: VoucherContract, client: ChainClient, cast: dict, record) -> None:
    """A voucher's life: 确权 (issue), split and transfer to one and to ten suppliers, financing asked and
    accepted at a discount, and settlement at maturity (the node's clock moved three days on)."""
    core, supplier, bank = cast["borrower"], cast["supplier"], cast["bank"]
    voucher = rand32()
    now = client.get_header().timestamp
    r = vouchers.issue_voucher(
        core,
        voucher_id=voucher,
        holder=supplier.address,
        face_value=10**12,
        maturity=now + 2 * 86_400,
        currency="CNY",
        invoice_hash=rand32(),
    )
    record("voucher: issue (确权)", r.gas_used)
    r = vouchers.split_transfer(supplier, voucher, 1, [(Account.create().address, 12_345_67)])
    record(SPLIT_ONE, r.gas_used)
    pieces = [(Account.create().address, 1_000 + i) for i in range(10)]
    record(
        "voucher: split and transfer (10 recipients, each)",
        vouchers.split_transfer(supplier, voucher, 1, pieces).gas_used / 10,
    )
    r = vouchers.request_financing(
        supplier, voucher_id=voucher, part_id=1, bank_org=cast["bank_org"], discount_rate_bps=350
    )
    record("voucher: request financing", r.gas_used)
    r = vouchers.accept_financing(bank, voucher_id=voucher, part_id=1, payment_ref=rand32())
    record("voucher: accept financing (贴现)", r.gas_used)
    client.rpc("evm_increaseTime", [3 * 86_400])
    client.rpc("evm_mine")
    record(
        "voucher: settle at maturity",
        vouchers.settle(core, voucher_id=voucher, part_id=1, payment_ref=rand32()).gas_used,
    )


def _one_round(ledger: LedgerContract, client: ChainClient, cast: dict, token: str, operator, record) -> None:
    bank, borrower, supplier, payee, auditor = (
        cast[k] for k in ("bank", "borrower", "supplier", "payee", "auditor")
    )
    loan = rand32()
    r = ledger.open_loan(
        bank,
        loan_id=loan,
        borrower=borrower.address,
        borrower_ref=rand32(),
        principal=10**15,
        currency="CNY",
        allowed_purposes=[1, 2, 3],
        maturity=int(time.time()) + 10**7,
        terms_hash=rand32(),
    )
    record("open loan", r.gas_used)
    r = ledger.disburse(
        bank, loan_id=loan, payee=supplier.address, amount=10**12, purpose=1, evidence_hash=rand32()
    )
    record("disburse", r.gas_used)
    lot = r.event("Disbursed").args["lotId"]
    r = ledger.pay(
        supplier,
        loan_id=loan,
        from_lot=lot,
        payee=Account.create().address,
        amount=12_345_67,
        purpose=1,
        evidence_hash=rand32(),
    )
    record("pay", r.gas_used)
    child = r.event("Paid").args["lotId"]
    for n in (10, 50, 200):
        payments = [PaymentSpec(lot, Account.create().address, 1_000 + i, 1, rand32()) for i in range(n)]
        r = ledger.pay_batch(supplier, loan_id=loan, payments=payments)
        record(f"pay (batch of {n}, each)", r.gas_used / n)
    r = ledger.disburse(
        bank, loan_id=loan, payee=payee.address, amount=10**9, purpose=1, evidence_hash=rand32()
    )
    payee_lot = r.event("Disbursed").args["lotId"]
    record(
        "confirm", ledger.confirm_lot(payee, loan_id=loan, lot_id=payee_lot, evidence_hash=rand32()).gas_used
    )
    # A lot is answered once per kind and only forward (confirmed is final), so the dispute and the
    # confirmation that withdraws it are measured on a second lot.
    r = ledger.disburse(
        bank, loan_id=loan, payee=payee.address, amount=10**9, purpose=1, evidence_hash=rand32()
    )
    disputed_lot = r.event("Disbursed").args["lotId"]
    record(
        "dispute", ledger.dispute_lot(payee, loan_id=loan, lot_id=disputed_lot, reason_hash=rand32()).gas_used
    )
    record(
        "confirm after dispute",
        ledger.confirm_lot(payee, loan_id=loan, lot_id=disputed_lot, evidence_hash=rand32()).gas_used,
    )
    record("repay", ledger.repay(bank, loan_id=loan, amount=10**6, evidence_hash=rand32()).gas_used)
    # loan servicing (issue 18): the split repayment (all three parts, and interest only), a change of terms
    record(
        "repay allocated (principal, interest, penalty)",
        ledger.repay_allocated(
            bank, loan_id=loan, principal=10**6, interest=12_345, penalty=678, evidence_hash=rand32()
        ).gas_used,
    )
    record(
        "repay allocated (interest only)",
        ledger.repay_allocated(
            bank, loan_id=loan, principal=0, interest=12_345, penalty=0, evidence_hash=rand32()
        ).gas_used,
    )
    record("classify", ledger.classify(bank, loan_id=loan, risk_class=1, reason_hash=rand32()).gas_used)
    record(
        "value collateral",
        ledger.value_collateral(
            bank, loan_id=loan, collateral_id=rand32(), value=10**9, evidence_hash=rand32()
        ).gas_used,
    )
    record(
        "record inspection",
        ledger.record_inspection(bank, loan_id=loan, kind=0, report_hash=rand32()).gas_used,
    )
    record(
        "file record (guarantee)",
        ledger.file_record(
            bank, loan_id=loan, record_kind=0, record_id=rand32(), content_hash=rand32()
        ).gas_used,
    )
    record(
        "file record (engage an appraiser, issue 19)",
        ledger.file_record(
            bank, loan_id=loan, record_kind=4, record_id=cast["appraiser_org"], content_hash=rand32()
        ).gas_used,
    )
    item = rand32()
    record(
        "file record (collateral item)",
        ledger.file_record(bank, loan_id=loan, record_kind=8, record_id=item, content_hash=rand32()).gas_used,
    )
    record(
        "file appraisal (engaged appraiser)",
        ledger.file_appraisal(cast["appraiser"], loan_id=loan, item_id=item, content_hash=rand32()).gas_used,
    )
    record(
        "attest",
        ledger.attest(auditor, loan_id=loan, head=ledger.head_of(loan), report_hash=rand32()).gas_used,
    )
    del child
    transfer = "0xa9059cbb" + abi_encode(["address", "uint256"], [Account.create().address, 12_345_67]).hex()
    record("ERC-20 transfer (new holder)", client.transact(operator, token, transfer).gas_used)


if __name__ == "__main__":
    main()
