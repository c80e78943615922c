"""A realistic demo: a bank, a core enterprise that borrows, its suppliers and an auditor, and one working-
capital loan whose money flows through two tiers of suppliers, with one payment outside the declared use.

All names are fictional. Seeding is idempotent: participants are onboarded only once and the demo loan is
opened only if the chain does not have it yet.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from ledger.contract import LedgerContract, PaymentSpec, RiskClass
from ledger.keystore import Keystore
from ledger.participants import Directory, onboard, slugify
from ledger.purposes import Purpose

__all__ = ["DEMO_LOAN_NUMBER", "DEMO_PARTICIPANTS", "DemoLoan", "seed_demo"]

DEMO_PARTICIPANTS: list[tuple[str, str]] = [
    ("Lakeside Commercial Bank", "lender"),
    ("Eastwind Auto Parts", "enterprise"),  # the borrower, a core enterprise
    ("Northriver Steel", "enterprise"),
    ("Greenfield Logistics", "enterprise"),
    ("Pinecrest Electronics", "enterprise"),
    ("Redrock Mining", "enterprise"),
    ("Harbor Audit Partners", "auditor"),
]
DEMO_LOAN_NUMBER = "LN-2026-0001"
_FEN = 100  # amounts are in fen (minor unit of CNY)


@dataclass
class DemoLoan:
    loan_number: str
    loan_id: str
    head: str
    lots: int


def _doc(label: str) -> str:
    """Stand-in hash for a demo document (a real deployment hashes the uploaded file)."""
    return "0x" + keccak(text=f"fundflow-demo-document:{label}").hex()


def seed_demo(
    ledger: LedgerContract, operator: LocalAccount, directory: Directory, keystore: Keystore, state_file: Path
) -> DemoLoan:
    accounts: dict[str, LocalAccount] = {}
    for name, role in DEMO_PARTICIPANTS:
        _, address = onboard(ledger, operator, directory, keystore, name=name, role=role)
        accounts[name] = keystore.unlock(slugify(name))
        assert accounts[name].address == address

    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    loan = state.get(DEMO_LOAN_NUMBER)
    if loan and int(ledger.head_of(loan["loan_id"]), 16) != 0:
        return DemoLoan(
            DEMO_LOAN_NUMBER, loan["loan_id"], ledger.head_of(loan["loan_id"]), loan.get("lots", 0)
        )

    bank = accounts["Lakeside Commercial Bank"]
    borrower = accounts["Eastwind Auto Parts"]
    steel = accounts["Northriver Steel"]
    logistics = accounts["Greenfield Logistics"]
    electronics = accounts["Pinecrest Electronics"]
    mining = accounts["Redrock Mining"]
    auditor = accounts["Harbor Audit Partners"]

    loan_id = "0x" + secrets.token_bytes(32).hex()
    salt = secrets.token_hex(16)
    # The borrower's registration number never goes on chain; only this salted hash does.
    borrower_ref = "0x" + keccak(text=f"{salt}:91330100MA2DEMO001X").hex()
    ledger.open_loan(
        bank,
        loan_id=loan_id,
        borrower=borrower.address,
        borrower_ref=borrower_ref,
        principal=5_000_000 * _FEN,
        currency="CNY",
        allowed_purposes=[Purpose.RAW_MATERIALS, Purpose.EQUIPMENT, Purpose.LOGISTICS, Purpose.WAGES],
        maturity=int(time.time()) + 365 * 86400,
        terms_hash=_doc("loan-contract"),
    )
    # Entrusted payment (受托支付) straight to the steel supplier, and a self-paid part to the borrower.
    to_steel = (
        ledger.disburse(
            bank,
            loan_id=loan_id,
            payee=steel.address,
            amount=2_000_000 * _FEN,
            purpose=Purpose.RAW_MATERIALS,
            evidence_hash=_doc("steel-purchase-contract"),
        )
        .event("Disbursed")
        .args["lotId"]
    )
    to_electronics = (
        ledger.disburse(
            bank,
            loan_id=loan_id,
            payee=electronics.address,
            amount=900_000 * _FEN,
            purpose=Purpose.EQUIPMENT,
            evidence_hash=_doc("equipment-invoice"),
        )
        .event("Disbursed")
        .args["lotId"]
    )
    to_borrower = (
        ledger.disburse(
            bank,
            loan_id=loan_id,
            payee=borrower.address,
            amount=600_000 * _FEN,
            purpose=Purpose.WAGES,
            evidence_hash=_doc("payroll-plan"),
        )
        .event("Disbursed")
        .args["lotId"]
    )

    # Second tier: the steel supplier buys ore and pays freight in one batch.
    batch = ledger.pay_batch(
        steel,
        loan_id=loan_id,
        payments=[
            PaymentSpec(
                to_steel, mining.address, 1_200_000 * _FEN, Purpose.RAW_MATERIALS, _doc("ore-invoice")
            ),
            PaymentSpec(to_steel, logistics.address, 80_000 * _FEN, Purpose.LOGISTICS, _doc("freight-bill")),
        ],
    )
    ore_lot, freight_lot = (e.args["lotId"] for e in batch.events if e.name == "Paid")
    # Outside the declared use: part of the steel money goes to a securities account. Recorded and flagged.
    securities_account = "0x" + keccak(text="fundflow-demo:brokerage-account").hex()[-40:]
    ledger.pay(
        steel,
        loan_id=loan_id,
        from_lot=to_steel,
        payee=securities_account,
        amount=300_000 * _FEN,
        purpose=Purpose.SECURITIES,
        evidence_hash=_doc("transfer-order"),
    )
    ledger.pay(
        borrower,
        loan_id=loan_id,
        from_lot=to_borrower,
        payee=logistics.address,
        amount=45_000 * _FEN,
        purpose=Purpose.LOGISTICS,
        evidence_hash=_doc("delivery-note"),
    )
    ledger.pay(
        electronics,
        loan_id=loan_id,
        from_lot=to_electronics,
        payee=steel.address,
        amount=150_000 * _FEN,
        purpose=Purpose.RAW_MATERIALS,
        evidence_hash=_doc("casing-order"),
    )

    # Payees confirm (确权) or dispute what they received.
    ledger.confirm_lot(mining, loan_id=loan_id, lot_id=ore_lot, evidence_hash=_doc("ore-receipt"))
    ledger.dispute_lot(logistics, loan_id=loan_id, lot_id=freight_lot, reason_hash=_doc("freight-dispute"))

    ledger.value_collateral(
        bank,
        loan_id=loan_id,
        collateral_id=_doc("collateral:plant-and-machinery"),
        value=3_500_000 * _FEN,
        evidence_hash=_doc("valuation-report"),
    )
    ledger.record_inspection(bank, loan_id=loan_id, kind=0, report_hash=_doc("site-visit-report"))
    ledger.classify(
        bank, loan_id=loan_id, risk_class=RiskClass.SPECIAL_MENTION, reason_hash=_doc("classification-memo")
    )
    ledger.repay(bank, loan_id=loan_id, amount=250_000 * _FEN, evidence_hash=_doc("repayment-slip"))
    head = ledger.head_of(loan_id)
    ledger.attest(auditor, loan_id=loan_id, head=head, report_hash=_doc("audit-report"))

    state[DEMO_LOAN_NUMBER] = {"loan_id": loan_id, "borrower_salt": salt, "lots": 9}
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    return DemoLoan(DEMO_LOAN_NUMBER, loan_id, head, 9)
