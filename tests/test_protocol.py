"""ledger.protocol: the contract's codes and limits mirror the contract; the one canonical JSON, the one
LoanTerms and the one terms hash keep the bytes stored data and the bundle format depend on."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import World, open_loan, reverts
from pydantic import ValidationError

from ledger.protocol import codes
from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import (
    MAX_AMOUNT,
    MAX_BATCH,
    MAX_INSPECTION_KIND,
    MAX_MATURITY,
    MAX_PURPOSE,
    EventKind,
    InspectionKind,
    LoanStatus,
    RiskClass,
)
from ledger.protocol.terms import Installment, LoanTerms, ScheduledInspection, terms_hash

ROOT = Path(__file__).resolve().parent.parent
INTERFACE = (ROOT / "contracts" / "interfaces" / "IFundFlowLedger.sol").read_text()
IMPLEMENTATION = (ROOT / "contracts" / "FundFlowLedger.sol").read_text()


def _solidity_enum(name: str) -> list[str]:
    match = re.search(rf"enum {name}\s*{{(.*?)}}", INTERFACE, re.S)
    assert match, f"enum {name} not found in IFundFlowLedger.sol"
    body = re.sub(r"//[^\n]*", "", match[1])
    return [m.strip() for m in body.split(",") if m.strip()]


def _upper_snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).upper()


def _constant(name: str) -> int:
    match = re.search(rf"constant {name} = (\d+);", IMPLEMENTATION)
    assert match, f"constant {name} not found in FundFlowLedger.sol"
    return int(match[1])


# ---------------------------------------------------------------------------------------------- codes


def test_event_kinds_follow_the_contracts_enum_order() -> None:
    solidity = _solidity_enum("EventKind")
    assert solidity[0] == "None"
    assert [(k.name, int(k)) for k in EventKind] == [(n, i) for i, n in enumerate(solidity) if i]


def test_voucher_event_kinds_and_part_states_follow_the_voucher_contracts_enums() -> None:
    voucher_interface = (ROOT / "contracts" / "interfaces" / "ISupplyChainVouchers.sol").read_text()

    def enum(name: str) -> list[str]:
        match = re.search(rf"enum {name}\s*{{(.*?)}}", voucher_interface, re.S)
        assert match, f"enum {name} not found in ISupplyChainVouchers.sol"
        return [m.strip() for m in match.group(1).split(",") if m.strip()]

    kinds = enum("VoucherEventKind")
    assert [(k.name, int(k)) for k in codes.VoucherEventKind] == [(n, i) for i, n in enumerate(kinds) if i]
    assert [(s.name, int(s)) for s in codes.PartState] == [
        (_upper_snake(n), i) for i, n in enumerate(enum("PartState"))
    ]
    assert all(s.label and s.label_zh for s in codes.PartState)


def test_loan_status_and_risk_class_follow_the_contracts_enums() -> None:
    assert [(s.name, int(s)) for s in LoanStatus] == [
        (_upper_snake(n), i) for i, n in enumerate(_solidity_enum("LoanStatus"))
    ]
    assert [(c.name, int(c)) for c in RiskClass] == [
        (_upper_snake(n), i) for i, n in enumerate(_solidity_enum("RiskClass"))
    ]


def test_limits_are_the_contracts() -> None:
    assert _constant("MAX_BATCH") == MAX_BATCH
    assert _constant("_MAX_PURPOSE") == MAX_PURPOSE
    assert MAX_INSPECTION_KIND == _constant("_MAX_INSPECTION_KIND") == max(InspectionKind)
    assert re.search(r"\buint64 principal;", INTERFACE) and MAX_AMOUNT == 2**64 - 1
    assert re.search(r"\buint40 maturity;", INTERFACE) and MAX_MATURITY == 2**40 - 1


def test_role_ids_and_max_batch_are_what_the_deployed_contract_computes(world: World) -> None:
    ledger = world.ledger
    for name in ("DEFAULT_ADMIN_ROLE", "OPERATOR_ROLE", "LENDER_ROLE", "ENTERPRISE_ROLE", "AUDITOR_ROLE"):
        assert "0x" + ledger.read(name)[0].hex() == getattr(codes, name), name
    assert ledger.read("MAX_BATCH") == (MAX_BATCH,)
    assert ledger.has_role(codes.LENDER_ROLE, world.cast.bank.address)


def test_the_highest_inspection_kind_is_accepted_and_the_next_refused(world: World) -> None:
    loan = open_loan(world, "inspection-kinds")
    bank = world.cast.bank
    world.ledger.record_inspection(bank, loan_id=loan, kind=MAX_INSPECTION_KIND, report_hash="0x" + "11" * 32)
    with reverts("LedgerInvalidInspectionKind", kind=MAX_INSPECTION_KIND + 1):
        world.ledger.record_inspection(
            bank, loan_id=loan, kind=MAX_INSPECTION_KIND + 1, report_hash="0x" + "11" * 32
        )


def test_statuses_and_risk_classes_have_their_chinese_and_english_names() -> None:
    assert [(s.en, s.zh) for s in LoanStatus] == [
        ("unknown", "未知"),
        ("open", "存续"),
        ("repaid", "已结清"),
        ("written off", "已核销"),
    ]
    assert [(c.en, c.zh) for c in RiskClass] == [
        ("normal", "正常"),
        ("special mention", "关注"),
        ("substandard", "次级"),
        ("doubtful", "可疑"),
        ("loss", "损失"),
    ]


def test_every_table_of_names_is_built_from_the_protocol_enums() -> None:
    from api import errors, i18n, schemas
    from ledger.chain import contract
    from ledger.monitoring import classification, rules
    from ledger.protocol import hashchain

    assert (contract.LoanStatus, contract.RiskClass) == (LoanStatus, RiskClass)
    assert (contract.LENDER_ROLE, contract.MAX_BATCH, hashchain.EventKind) == (
        codes.LENDER_ROLE,
        MAX_BATCH,
        EventKind,
    )
    assert i18n.STATUSES == {1: ("open", "存续"), 2: ("repaid", "已结清"), 3: ("written off", "已核销")}
    assert i18n.RISK_CLASSES == {
        0: ("normal", "正常"),
        1: ("special mention", "关注"),
        2: ("substandard", "次级"),
        3: ("doubtful", "可疑"),
        4: ("loss", "损失"),
    }
    assert errors._STATUS_NAMES == {0: "unknown", 1: "open", 2: "repaid", 3: "written off"}
    assert schemas.RISK_CLASSES == {
        "normal": 0,
        "special_mention": 1,
        "substandard": 2,
        "doubtful": 3,
        "loss": 4,
    }
    assert list(classification.CLASS_LABELS.values()) == [
        "正常 (normal)",
        "关注 (special mention)",
        "次级 (substandard)",
        "可疑 (doubtful)",
        "损失 (loss)",
    ]
    assert (rules.LOAN_OPEN, rules.LOAN_WRITTEN_OFF, classification.LOAN_REPAID) == (1, 3, 2)


def test_the_protocol_package_imports_no_database_node_or_api_code() -> None:
    modules = ["canonical", "codes", "events", "hashchain", "money", "purposes", "terms"]
    probe = (
        f"import sys\nimport {', '.join('ledger.protocol.' + m for m in modules)}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'sqlmodel', 'web3', 'api')"
        " or m.startswith(('ledger.store', 'ledger.mirror', 'ledger.chain')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == ""


# ------------------------------------------------------------------------------------------ canonical JSON

VALUE = {"b": "é✓", "a": [1, {"z": None, "y": 1.5}], "c": True}


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json(VALUE) == '{"a":[1,{"y":1.5,"z":null}],"b":"é✓","c":true}'.encode()


def test_canonical_json_ascii_form_escapes_non_ascii_as_the_bundle_format_says() -> None:
    assert (
        canonical_json(VALUE, ascii_only=True)
        == b'{"a":[1,{"y":1.5,"z":null}],"b":"\\u00e9\\u2713","c":true}'
    )


def test_offchain_terms_and_bundle_digests_use_the_one_canonical_json() -> None:
    from ledger.audit import bundle
    from ledger.store import offchain

    assert offchain.canonical_json is canonical_json and offchain.terms_hash is terms_hash
    assert bundle._canonical(VALUE) == canonical_json(VALUE, ascii_only=True)
    # pinned before the helpers were merged: an entry digest of a value with a non-ASCII character
    assert bundle._digest({"x": "é", "digest": "0x00"}) == (
        "0x9a1df5ede7598943952a2d92a5565725fe52150aff08647d3cc8c6a12e170895"
    )


# ---------------------------------------------------------------------------------------------- terms

SUPPLIER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
AFFILIATE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

# Terms as a lender sends them to the API: decimal strings, a lower-case address, schedules out of order,
# extra fields in Chinese.
SENT: dict[str, Any] = {
    "repayment_schedule": [
        {"due": "2028-01-31", "amount": "600000.5"},
        {"due": "2027-06-30", "amount": 150000},
    ],
    "inspection_schedule": [{"due": "2027-09-30", "kind": "interview"}, {"due": "2026-12-31"}],
    "inspection_interval_days": 90,
    "counterparties": [SUPPLIER.lower()],
    "linked_parties": [AFFILIATE],
    "approval_threshold": "500000.00",
    "required_collateral_cover": "1.50",
    "purpose_note": "用于采购原材料 — “quoted”",
    "notes": ["é", {"name": "张三", "n": 1.5, "none": None}],
}
# Their document and hash, as the API computed them before LoanTerms was one model (commit e5f75f8).
SENT_CANONICAL = (
    '{"approval_threshold":50000000,"counterparties":["0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"],'
    '"inspection_interval_days":90,"inspection_schedule":[{"due":"2027-09-30","kind":"interview"},'
    '{"due":"2026-12-31","kind":"site_visit"}],"linked_parties":["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],'
    '"notes":["é",{"n":1.5,"name":"张三","none":null}],"purpose_note":"用于采购原材料 — “quoted”",'
    '"repayment_schedule":[{"amount":150000,"due":"2027-06-30"},{"amount":60000050,"due":"2028-01-31"}],'
    '"required_collateral_cover":"1.50"}'
)
SENT_HASH = "0x9102f84fc5d412e72538dae64ad7ec593175978d7a5fa0cd69733f7c00166a9e"


def test_the_hash_of_terms_is_what_it_was_before_the_models_were_merged() -> None:
    terms = LoanTerms.model_validate(SENT)
    assert terms.canonical_json() == SENT_CANONICAL.encode()
    assert terms.hash() == terms_hash(terms.document()) == SENT_HASH


def test_stored_terms_read_back_hash_to_the_stored_hash() -> None:
    document = LoanTerms.model_validate(SENT).document()
    assert LoanTerms.from_document(document).hash() == terms_hash(document) == SENT_HASH


def test_the_api_validates_terms_with_the_protocol_model() -> None:
    from api import schemas

    assert schemas.LoanTerms is LoanTerms
    # The API takes amounts as yuan strings only (issue 20): SENT's 150000 fen is "1500.00" there, and the
    # same terms hash the same.
    in_yuan = SENT | {
        "repayment_schedule": [
            {"due": "2028-01-31", "amount": "600000.5"},
            {"due": "2027-06-30", "amount": "1500.00"},
        ]
    }
    request = schemas.RestructureRequest.model_validate(
        {"maturity": "2028-06-30", "terms": in_yuan, "financial_difficulty": False}
    )
    assert request.terms.hash() == SENT_HASH
    with pytest.raises(ValueError, match='write "amount": "1500.00" for CNY 1,500.00'):
        schemas.RestructureRequest.model_validate({"maturity": "2028-06-30", "terms": SENT})


def test_repayments_are_kept_in_due_date_order_and_inspections_as_given() -> None:
    terms = LoanTerms.model_validate(SENT)
    assert [i.due_date for i in terms.repayment_schedule] == [date(2027, 6, 30), date(2028, 1, 31)]
    assert [i.due_date for i in terms.inspection_schedule] == [date(2027, 9, 30), date(2026, 12, 31)]
    assert terms.repayment_schedule[1] == Installment(due_date=date(2028, 1, 31), amount=60_000_050)
    assert terms.inspection_schedule[1] == ScheduledInspection(due_date=date(2026, 12, 31))


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ({"counterparties": [{"name": "S", "address": SUPPLIER}]}, "expected an account address"),
        ({"counterparties": [SUPPLIER.replace("C", "c", 1)]}, "mixed-case checksum (EIP-55) is wrong"),
        ({"repayment_schedule": [{"due": "2027-01-01", "amount": 5, "note": "x"}]}, "Extra inputs"),
        ({"repayment_schedule": [{"due": "2027-01-01", "amount": 5.0}]}, "floats are refused"),
        ({"approval_threshold": 0}, "the amount must be greater than zero"),
        ({"required_collateral_cover": "0"}, "greater than 0"),
    ],
)
def test_terms_a_lender_sends_are_validated_strictly(terms: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        LoanTerms.model_validate(terms)


def test_stored_terms_in_an_earlier_shape_are_read() -> None:
    """Earlier API versions stored counterparties as objects, some without an address."""
    legacy = {
        "counterparties": [
            {"name": "Supplier One", "role": "supplier", "address": SUPPLIER},
            {"name": "Guarantor", "role": "guarantor"},
        ],
        "repayment_schedule": [{"due": "2027-01-01", "amount": 5, "note": "old"}],
        "approval_threshold": 100_000_00,
    }
    terms = LoanTerms.from_document(legacy)
    assert terms.counterparties == [SUPPLIER]
    assert terms.repayment_schedule == [Installment(due_date=date(2027, 1, 1), amount=5)]
    assert terms.approval_threshold == 100_000_00


def test_scheduled_inspections_are_numbered_by_due_date_whatever_order_they_were_sent_in() -> None:
    from ledger.monitoring.rules import LoanFacts, Thresholds, missed_inspection

    terms = LoanTerms.model_validate(
        {"inspection_schedule": [{"due": "2027-03-31", "kind": "interview"}, {"due": "2026-12-31"}]}
    )
    facts = LoanFacts(
        loan_id="0x" + "01" * 32,
        lender_org="0x" + "02" * 32,
        borrower=AFFILIATE,
        principal=100,
        disbursed=0,
        repaid=0,
        currency="CNY",
        maturity=1_900_000_000,
        status=LoanStatus.OPEN,
        block_number=7,
        opened_at=1_700_000_000,
        lots=[],
        repayments=[],
        valuations=[],
        inspections=[],
        terms=terms,
        now=1_800_000_000,  # 2027-01-15: only the December inspection is due
    )
    (alert,) = missed_inspection(facts, Thresholds())
    assert alert.details == {"due_date": "2026-12-31", "days_overdue": 15, "number": 1}
