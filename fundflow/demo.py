"""The demo story, told through the HTTP API: a tech company's R&D project loan paid out in tranches,
entrusted payments to suppliers, onward payments, confirmations, a dispute, a payment outside the declared
use, a collateral valuation, servicing (quarterly interest at 4.35%; the first quarter's interest paid late,
with penalty interest; a principal repayment; an extension granted because the borrower is in financial
difficulty), the resulting class proposed by the loan officer and approved by the bank's risk officer
(maker-checker), and an audit attestation. Then the supply chain (issue 22): Huaxin Motors, the core
enterprise, issues vouchers to its tier-1 supplier under a bank's credit line; they are split down to tier 2
and tier 3, one part is financed at the bank, one short voucher is settled at maturity with a part left unpaid
(`_supply_chain_vouchers`).

The loan was booked in the bank's core system four months before it was brought onto the ledger (a pilot
migration): its interest runs from that value date, so its first quarterly interest date has already passed
when the story starts.

Participants are onboarded on chain by the operator (library call: registering organisations is not an API
action); everything else goes through `http` (an httpx client pointed at the running API). Every POST carries
a fixed Idempotency-Key, so seeding again records nothing twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy.engine import Engine

from ledger.chain.contract import LedgerContract
from ledger.chain.keystore import Keystore
from ledger.chain.participants import Directory, onboard, slugify
from ledger.errors import FundflowError
from ledger.protocol.purposes import Purpose
from ledger.store.offchain import create_token

__all__ = ["DEMO_LOAN", "PARTICIPANTS", "RISK_OFFICER", "SHELL_NAMES", "seed_demo_via_api"]

DEMO_LOAN = "LN-2026-0001"
PARTICIPANTS: list[tuple[str, str]] = [
    ("Lakeside Commercial Bank", "lender"),
    ("Brightpath Robotics", "enterprise"),  # the borrower: a tech company with an R&D project
    ("Eastwind Auto Parts", "enterprise"),  # a tier-1 supplier of Huaxin Motors; also supplies Brightpath
    ("Huaxin Motors", "enterprise"),  # the core enterprise (核心企业): the large carmaker its suppliers serve
    ("Pinecrest Electronics", "enterprise"),
    ("Northriver Steel", "enterprise"),
    ("Greenfield Logistics", "enterprise"),
    ("Harbor Audit Partners", "auditor"),
    ("Westlake Appraisal Co", "appraiser"),  # a third party the bank engages on the demo loan (issue 19)
]
SHELL_NAMES = {  # the README walkthrough's shell variable for each participant's token
    "Lakeside Commercial Bank": "BANK",
    "Brightpath Robotics": "BORROWER",
    "Eastwind Auto Parts": "EASTWIND",
    "Huaxin Motors": "HUAXIN",
    "Pinecrest Electronics": "PINECREST",
    "Northriver Steel": "STEEL",
    "Greenfield Logistics": "LOGISTICS",
    "Harbor Audit Partners": "AUDITOR",
    "Westlake Appraisal Co": "APPRAISER",
}
RISK_OFFICER = "Lakeside Commercial Bank (risk officer)"
"""A second lender account of the bank: approves the loan officer's class changes (maker-checker)."""


def onboard_demo(
    ledger: LedgerContract, operator: LocalAccount, directory: Directory, keystore: Keystore, engine: Engine
) -> tuple[dict[str, str], dict[str, str]]:
    """Register the demo organisations (idempotent); a fresh API token for each: (tokens, addresses)."""
    tokens: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for name, role in PARTICIPANTS:
        _, address = onboard(ledger, operator, directory, keystore, name=name, role=role)
        addresses[name] = address
        tokens[name] = create_token(engine, participant=name, key_name=slugify(name), address=address)
    bank = PARTICIPANTS[0][0]
    key = slugify(bank) + "-risk"
    _, address = onboard(ledger, operator, directory, keystore, name=bank, role="lender", key_name=key)
    addresses[RISK_OFFICER] = address
    tokens[RISK_OFFICER] = create_token(engine, participant=bank, key_name=key, address=address)
    return tokens, addresses


class _Client:
    def __init__(self, http: httpx.Client, tokens: dict[str, str]) -> None:
        self.http = http
        self.tokens = tokens

    def post(self, who: str, path: str, body: Any, key: str) -> dict[str, Any]:
        r = self.http.post(
            path + ("&" if "?" in path else "?") + "wait=true",
            json=body,
            headers={"Authorization": f"Bearer {self.tokens[who]}", "Idempotency-Key": f"demo:{key}"},
        )
        if r.status_code >= 300:
            raise FundflowError(f"demo step {key} failed: {r.status_code} {r.text}")
        return dict(r.json())

    def get(self, who: str, path: str) -> dict[str, Any]:
        r = self.http.get(path, headers={"Authorization": f"Bearer {self.tokens[who]}"})
        if r.status_code >= 300:
            raise FundflowError(f"demo read {path} failed: {r.status_code} {r.text}")
        return dict(r.json())

    def upload(self, who: str, name: str, text: str) -> str:
        r = self.http.post(
            "/v1/documents",
            content=text.encode(),
            headers={
                "Authorization": f"Bearer {self.tokens[who]}",
                "Content-Type": "text/plain",
                "X-Filename": name,
            },
        )
        r.raise_for_status()
        return str(r.json()["hash"])


def seed_demo_via_api(
    http: httpx.Client, tokens: dict[str, str], addresses: dict[str, str]
) -> dict[str, Any]:
    api = _Client(http, tokens)
    bank, borrower, eastwind = "Lakeside Commercial Bank", "Brightpath Robotics", "Eastwind Auto Parts"
    electronics, steel, logistics = "Pinecrest Electronics", "Northriver Steel", "Greenfield Logistics"
    auditor = "Harbor Audit Partners"
    existing = http.get(f"/v1/loans/{DEMO_LOAN}", headers={"Authorization": f"Bearer {tokens[bank]}"})
    if existing.status_code == 200:
        return dict(existing.json())

    contract = api.upload(bank, "loan-contract.txt", "R&D project loan agreement LN-2026-0001 (demo)")
    year = time.gmtime().tm_year + 1
    today = datetime.now(UTC).date()
    interest = {
        "method": "interest_only",  # 先息后本: interest quarterly, principal at the end
        "annual_rate": "0.0435",
        "day_count": "ACT/365",
        "start_date": (today - timedelta(days=120)).isoformat(),  # value date in the core system
        "first_due_date": (today - timedelta(days=30)).isoformat(),
        "periods": 8,
        "period_months": 3,
        "grace_days": 3,
    }
    terms: dict[str, Any] = {
        "loan_type": "project",
        "interest": interest,
        "inspection_schedule": [{"due": f"{year}-03-31", "kind": "site_visit"}],
        "counterparties": [addresses[electronics], addresses[eastwind], addresses[steel]],
        "approval_threshold": "1000000.00",
        "contract_document": contract,
    }
    api.post(
        bank,
        "/v1/loans",
        {
            "loan_number": DEMO_LOAN,
            "borrower": addresses[borrower],
            "borrower_id": "91330100MA2DEMO002R",
            "principal": "8000000.00",
            "currency": "CNY",
            "allowed_purposes": [
                Purpose.RAW_MATERIALS,
                Purpose.EQUIPMENT,
                Purpose.SERVICES,
                Purpose.WAGES,
                Purpose.LOGISTICS,
            ],
            "maturity": f"{year + 1}-06-30",
            "terms": terms,
        },
        "open",
    )
    loan = f"/v1/loans/{DEMO_LOAN}"

    def lot(result: dict[str, Any]) -> str:
        return str(result["lot_ids"][0])

    # Tranche 1: entrusted payments (受托支付) straight to suppliers, and a self-paid part for wages.
    invoice = api.upload(bank, "test-bench-invoice.txt", "Pinecrest: 4 robot test benches, 1,500,000.00")
    to_electronics = lot(
        api.post(
            bank,
            f"{loan}/disbursements",
            {
                "payee": addresses[electronics],
                "amount": "1500000.00",
                "purpose": Purpose.EQUIPMENT,
                "evidence_hash": invoice,
            },
            "t1-electronics",
        )
    )
    order = api.upload(bank, "actuator-order.txt", "Eastwind: actuator prototypes, 2,000,000.00")
    to_eastwind = lot(
        api.post(
            bank,
            f"{loan}/disbursements",
            {
                "payee": addresses[eastwind],
                "amount": "2000000.00",
                "purpose": Purpose.RAW_MATERIALS,
                "evidence_hash": order,
            },
            "t1-core",
        )
    )
    to_borrower = lot(
        api.post(
            bank,
            f"{loan}/disbursements",
            {"payee": addresses[borrower], "amount": "800000.00", "purpose": Purpose.WAGES},
            "t1-wages",
        )
    )

    # Onward payments down the chain: Eastwind Auto Parts pays steel and freight in one batch.
    batch = api.post(
        eastwind,
        "/v1/payments/batch",
        {
            "loan": DEMO_LOAN,
            "payments": [
                {
                    "from_lot": to_eastwind,
                    "payee": addresses[steel],
                    "amount": "900000.00",
                    "purpose": Purpose.RAW_MATERIALS,
                },
                {
                    "from_lot": to_eastwind,
                    "payee": addresses[logistics],
                    "amount": "60000.00",
                    "purpose": Purpose.LOGISTICS,
                },
            ],
        },
        "core-batch",
    )
    steel_lot, freight_lot = batch["lot_ids"]
    chips = api.post(
        electronics,
        "/v1/payments",
        {
            "loan": DEMO_LOAN,
            "from_lot": to_electronics,
            "payee": addresses[steel],
            "amount": "300000.00",
            "purpose": Purpose.RAW_MATERIALS,
        },
        "chips",
    )
    # Outside the declared use: part of the wage money goes to a brokerage account. Recorded and flagged.
    brokerage = "0x" + keccak(text="fundflow-demo:brokerage-account").hex()[-40:]
    api.post(
        borrower,
        "/v1/payments",
        {
            "loan": DEMO_LOAN,
            "from_lot": to_borrower,
            "payee": brokerage,
            "amount": "200000.00",
            "purpose": Purpose.SECURITIES,
        },
        "brokerage",
    )

    # Payees confirm receipt (收款确认) or dispute what they received.
    api.post(
        electronics, f"/v1/lots/{to_electronics}/confirm", {"evidence_hash": invoice}, "confirm-electronics"
    )
    api.post(eastwind, f"/v1/lots/{to_eastwind}/confirm", {"evidence_hash": order}, "confirm-core")
    api.post(steel, f"/v1/lots/{steel_lot}/confirm", {}, "confirm-steel")
    api.post(steel, f"/v1/lots/{lot(chips)}/confirm", {}, "confirm-chips")
    reason = api.upload(
        logistics, "freight-dispute.txt", "Invoice says 60,000.00; only 2 of 3 trucks arrived"
    )
    api.post(logistics, f"/v1/lots/{freight_lot}/dispute", {"reason_hash": reason}, "dispute-freight")

    # Tranche 2 after the milestone review, then servicing.
    api.post(
        bank,
        f"{loan}/disbursements",
        {"payee": addresses[electronics], "amount": "1200000.00", "purpose": Purpose.SERVICES},
        "t2-electronics",
    )
    api.post(
        bank,
        f"{loan}/collateral",
        {"collateral_id": "0x" + keccak(text="demo:patents").hex(), "value": "5000000.00"},
        "collateral",
    )
    # The first quarter's interest (due 30 days ago) is paid late: the API applies the amount to penalty
    # interest, then interest, then principal, and the split goes on chain.
    api.post(bank, f"{loan}/repayments", {"amount": "100000.00"}, "repay-1")
    api.post(bank, f"{loan}/repayments", {"amount": "250000.00"}, "repay-2")
    # The borrower's main customer delays payment: the bank extends the loan by a year for a debtor in
    # financial difficulty. A restructured asset: at least 关注, observation period, days past due kept.
    extended = {**terms, "interest": {**interest, "periods": 12}}
    api.post(
        bank,
        f"{loan}/restructure",
        {
            "maturity": f"{year + 2}-06-30",
            "terms": extended,
            "change": "extension",
            "financial_difficulty": True,
        },
        "extend",
    )
    proposal = api.post(
        bank,
        f"{loan}/classification",
        {
            "risk_class": "special_mention",
            "reason": "Restructured: one-year extension granted on the borrower's financial difficulty (main "
            "customer delays payment); first-quarter interest was paid 30 days late; funds were once used "
            "outside the declared purposes.",
        },
        "propose-class",
    )
    api.post(RISK_OFFICER, f"/v1/classification-proposals/{proposal['id']}/approve", {}, "approve-class")
    _post_loan_file(api, addresses, year)
    _supply_chain_vouchers(api, addresses, year)
    report = api.upload(auditor, "audit-report.txt", "Trail of LN-2026-0001 verified against the chain")
    api.post(auditor, f"{loan}/attestations", {"report_hash": report}, "attest")
    final = http.get(loan, headers={"Authorization": f"Bearer {tokens[auditor]}"})
    final.raise_for_status()
    return dict(final.json())


SECOND_LOAN = "LN-2026-0002"


def _post_loan_file(api: _Client, addresses: dict[str, str], year: int) -> None:
    """The post-loan file (issue 19): a video interview and a site visit on the demo loan; Eastwind Auto Parts
    guarantees it and borrows too, guaranteed back by Brightpath Robotics (a mutual guarantee, 互保, which
    the monitor raises on both loans); the second loan's scheduled site visit was due yesterday (a missed
    visit), and recording it resolves the alert."""
    bank, borrower, eastwind = "Lakeside Commercial Bank", "Brightpath Robotics", "Eastwind Auto Parts"
    today = time.strftime("%Y-%m-%d", time.gmtime())
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86_400))
    loan = f"/v1/loans/{DEMO_LOAN}"
    interview = {
        "kind": "video_interview",
        "visit_date": today,
        "attendees": ["Account manager Wang (Lakeside)", "CFO (Brightpath)"],
        "findings": "Order book reviewed on video; two new OEM contracts signed.",
    }
    api.post(bank, f"{loan}/visits", interview, "visit-interview")
    site_visit = {
        "kind": "site_visit",
        "visit_date": today,
        "place": "Brightpath Robotics, assembly plant 2",
        "attendees": ["Account manager Wang (Lakeside)", "Plant manager (Brightpath)"],
        "findings": "Both assembly lines running; purchased equipment installed and tagged.",
        "follow_ups": [
            {"action": "Collect the Q4 VAT returns", "owner": "Manager Wang", "due_date": f"{year}-01-31"}
        ],
    }
    api.post(bank, f"{loan}/visits", site_visit, "visit-site")
    api.post(
        bank,
        f"{loan}/guarantees",
        {
            "guarantor": addresses[eastwind],
            "kind": "joint_surety",
            "amount": "3000000.00",
            "start": today,
            "expiry": f"{year + 2}-06-30",
            "capacity": "10000000.00",
        },
        "guarantee-core",
    )
    api.post(
        bank,
        "/v1/loans",
        {
            "loan_number": SECOND_LOAN,
            "borrower": addresses[eastwind],
            "principal": "2000000.00",
            "allowed_purposes": [Purpose.RAW_MATERIALS, Purpose.EQUIPMENT],
            "maturity": f"{year + 1}-03-31",
            "terms": {"inspection_schedule": [{"due": yesterday, "kind": "site_visit"}]},
        },
        "open-2",
    )
    second = f"/v1/loans/{SECOND_LOAN}"
    api.post(
        bank,
        f"{second}/disbursements",
        {"payee": addresses["Northriver Steel"], "amount": "800000.00", "purpose": Purpose.RAW_MATERIALS},
        "t1-second",
    )
    api.post(
        bank,
        f"{second}/guarantees",
        {
            "guarantor": addresses[borrower],
            "kind": "joint_surety",
            "amount": "2000000.00",
            "start": today,
            "expiry": f"{year + 1}-03-31",
        },
        "guarantee-back",
    )
    api.post(
        bank,
        f"{second}/visits",
        {
            "kind": "site_visit",
            "visit_date": today,
            "place": "Eastwind Auto Parts, stamping plant",
            "attendees": ["Account manager Li (Lakeside)"],
            "findings": "Made a day after the contract's date: the steel coil in stock matches the invoice.",
        },
        "visit-second",
    )
    # the collateral register: the bank registers the financed assembly line (a 30% haircut), engages an
    # appraiser on the loan, and the appraiser signs its valuation (the contract checks the engagement)
    item = api.post(
        bank,
        f"{loan}/collateral-register",
        {
            "item_ref": "M-1",
            "type": "equipment",
            "description": "Assembly line 2: CNC cells and two robot arms (抵押设备)",
            "registration_number": "DJ-DEMO-0001",
            "haircut_bp": 3000,
            "revaluation_days": 180,
        },
        "collateral-item",
    )["item_id"]
    appraiser = "Westlake Appraisal Co"
    api.post(
        bank,
        f"{loan}/engagements",
        {"participant": appraiser, "role": "appraiser", "engaged_on": today, "scope": "value item M-1"},
        "engage-appraiser",
    )
    api.post(
        appraiser,
        f"{loan}/collateral-register/{item}/appraisals",
        {"value": "2600000.00", "valued_on": today, "method": "replacement cost less depreciation (成本法)"},
        "appraisal",
    )


def _voucher_id(label: str) -> str:
    return "0x" + keccak(text=f"fundflow-demo:voucher:{label}").hex()


def _supply_chain_vouchers(api: _Client, addresses: dict[str, str], year: int) -> None:
    """Supply-chain vouchers (issue 22). The core enterprise is Huaxin Motors, the large carmaker its
    suppliers serve. Lakeside grants it a credit line (授信额度); Huaxin acknowledges what it owes Eastwind
    Auto Parts for an invoice by issuing it a voucher (确权); Eastwind splits it and passes a part to
    Northriver Steel (tier 2), which passes a piece on to Greenfield Logistics (tier 3); Northriver Steel has
    its part financed at Lakeside at a discount (贴现). A second voucher is short (it matures while the demo
    runs, so the story reaches maturity): Eastwind passes part of it to Pinecrest Electronics; at maturity
    Huaxin settles Eastwind's part (到期兑付) and leaves Pinecrest's unpaid, which is then overdue
    (到期未兑付)."""
    bank, huaxin, eastwind = "Lakeside Commercial Bank", "Huaxin Motors", "Eastwind Auto Parts"
    steel, logistics, electronics = "Northriver Steel", "Greenfield Logistics", "Pinecrest Electronics"
    line = {"core": huaxin, "limit": "50000000.00", "expiry": f"{year}-12-31"}
    api.post(bank, "/v1/vouchers/credit-lines", line, "voucher-line")

    # the short voucher first: its maturity runs while the long one is split and financed. It is counted from
    # the chain's clock (what the contract compares), as of the block that set the line.
    as_of = api.get(huaxin, "/v1/vouchers")["as_of"]
    due, started = int(as_of) + 20, time.monotonic()
    short = _voucher_id("HX-2026-0002")
    invoice = api.upload(
        huaxin, "eastwind-invoice-0902.txt", "Eastwind Auto Parts EW-0902: seat frames, 300,000.00"
    )
    body = {"voucher_id": short, "holder": addresses[eastwind], "face_value": "300000.00", "maturity": due,
            "invoice_hash": invoice}  # fmt: skip
    api.post(huaxin, "/v1/vouchers", body, "voucher-short")
    to_pinecrest = {"transfers": [{"to": addresses[electronics], "amount": "120000.00"}]}
    api.post(eastwind, f"/v1/vouchers/{short}/parts/1/split", to_pinecrest, "voucher-short-split")

    voucher = _voucher_id("HX-2026-0001")
    invoice = api.upload(
        huaxin, "eastwind-invoice-0815.txt", "Eastwind Auto Parts EW-0815: brake assemblies, 6,000,000.00"
    )
    body = {"voucher_id": voucher, "holder": addresses[eastwind], "face_value": "6000000.00",
            "maturity": f"{year}-06-30", "invoice_hash": invoice}  # fmt: skip
    api.post(huaxin, "/v1/vouchers", body, "voucher-issue")
    parts = f"/v1/vouchers/{voucher}/parts"
    split = api.post(eastwind, f"{parts}/1/split", {"transfers": [
        {"to": addresses[steel], "amount": "2500000.00"}]}, "voucher-split-steel")  # fmt: skip
    steel_part = split["parts"][0]["part_id"]
    api.post(steel, f"{parts}/{steel_part}/split", {"transfers": [
        {"to": addresses[logistics], "amount": "400000.00"}]}, "voucher-split-logistics")  # fmt: skip
    ask = {"bank": bank, "discount_rate_bps": 365}
    api.post(steel, f"{parts}/{steel_part}/financing", ask, "voucher-finance")
    api.post(bank, f"{parts}/{steel_part}/financing/accept", {}, "voucher-accept")

    # at maturity Huaxin pays Eastwind's part of the short voucher; Pinecrest's stays unpaid: overdue
    time.sleep(max(0.0, 21 - (time.monotonic() - started)))
    api.post(huaxin, f"/v1/vouchers/{short}/parts/1/settle", {}, "voucher-short-settle")
