"""Issue 20: the API's one amount rule (yuan decimal strings; a JSON number is refused with the string for
each reading), and answers and pages in a person's terms: yuan beside fen, block times in the bank's zone
beside block numbers, maturity as a calendar day."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from api_support import Api, dashboard_sign_in

from api.services.human import humanize
from ledger.config import Settings
from ledger.errors import ConfigError
from ledger.protocol.money import parse_yuan, yuan_text

pytestmark = pytest.mark.slow
LOAN = "LN-2026-0001"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _problem(r: Any) -> str:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "Validation", body
    return str(body["message"])


# ------------------------------------------------------------------------------------------ the amount rule


def test_parse_yuan_reads_strings_exactly_and_refuses_every_number() -> None:
    assert parse_yuan("1234.56") == 123456
    assert parse_yuan("1000") == 100000  # a string is always yuan: CNY 1,000.00
    assert parse_yuan("0.01") == 1
    assert yuan_text(123456) == "1234.56" and yuan_text(5) == "0.05" and yuan_text(100000) == "1000.00"
    with pytest.raises(ValueError, match=r'write "amount": "10.00" for CNY 10.00, or "amount": "1000.00"'):
        parse_yuan(1000)
    with pytest.raises(ValueError, match=r'a float loses cents\): write "value": "10.50"'):
        parse_yuan(10.5, "value")
    with pytest.raises(ValueError, match="greater than zero"):
        parse_yuan(0)
    with pytest.raises(ValueError, match="greater than zero"):
        parse_yuan("0.00")


def test_a_json_integer_amount_is_refused_everywhere_with_the_string_to_write(api: Api) -> None:
    api.open_loan(loan_number=LOAN, principal="10000.00")
    lot = api.disburse(LOAN, "supplier", "5000.00")
    before = api.get("auditor", f"/v1/loans/{LOAN}").json()
    supplier = api.address("supplier")
    cases = [
        (
            "bank",
            f"/v1/loans/{LOAN}/disbursements",
            {"payee": supplier, "amount": 1000, "purpose": 1},
            "amount",
        ),
        ("bank", f"/v1/loans/{LOAN}/repayments", {"amount": 1000}, "amount"),
        ("bank", f"/v1/loans/{LOAN}/collateral", {"collateral_id": "0x" + "11" * 32, "value": 1000}, "value"),
        (
            "supplier",
            "/v1/payments",
            {
                "loan": LOAN,
                "from_lot": lot,
                "payee": api.address("subsupplier"),
                "amount": 1000,
                "purpose": 1,
            },
            "amount",
        ),
        (
            "supplier",
            "/v1/payments/batch",
            {
                "loan": LOAN,
                "payments": [{"from_lot": lot, "payee": supplier, "amount": 1000, "purpose": 1}],
            },
            "amount",
        ),
        (
            "bank",
            "/v1/loans",
            {
                "borrower": api.address("borrower"),
                "principal": 1000,
                "allowed_purposes": [1],
                "maturity": "2099-01-01",
            },
            "principal",
        ),
        (
            "bank",
            "/v1/loans",
            {
                "borrower": api.address("borrower"),
                "principal": "10.00",
                "allowed_purposes": [1],
                "maturity": "2099-01-01",
                "terms": {"repayment_schedule": [{"due": "2098-12-31", "amount": 1000}]},
            },
            "amount",
        ),
        (
            "bank",
            f"/v1/loans/{LOAN}/restructure",
            {"maturity": "2099-06-30", "terms": {"approval_threshold": 1000}},
            "approval_threshold",
        ),
    ]
    for who, path, body, field in cases:
        message = _problem(api.post(who, path, body))
        assert (
            f'write "{field}": "10.00" for CNY 10.00, or "{field}": "1000.00" for CNY 1,000.00' in message
        ), (
            path,
            message,
        )
    # nothing was recorded: same event count, and no new loan
    after = api.get("auditor", f"/v1/loans/{LOAN}?wait=true").json()
    assert after["event_count"] == before["event_count"]
    assert api.get("auditor", "/v1/loans").json()["total"] == 1


def test_the_same_amount_as_a_yuan_string_is_recorded_exactly(api: Api) -> None:
    api.open_loan(loan_number=LOAN, principal="10000.00")
    lot = api.disburse(LOAN, "supplier", "1234.56")
    got = api.get("bank", f"/v1/lots/{lot}").json()
    assert (got["amount"], got["amount_yuan"], got["currency"]) == (123456, "1234.56", "CNY")
    r = api.post("bank", f"/v1/loans/{LOAN}/repayments?wait=true", {"amount": "1000"})  # a string: yuan
    assert r.status_code == 201, r.text
    repayment = api.get("bank", f"/v1/loans/{LOAN}/repayments").json()[0]
    assert (repayment["amount"], repayment["amount_yuan"]) == (100000, "1000.00")


def test_openapi_documents_amounts_as_yuan_strings(api: Api) -> None:
    schema = api.http.get("/openapi.json").json()["components"]["schemas"]["DisburseRequest"]
    amount = schema["properties"]["amount"]
    assert amount["type"] == "string" and "Numbers are refused" in amount["description"]


# ------------------------------------------------------------------------------------------ dates and yuan


def _block_time(api: Api, number: int, zone: ZoneInfo = SHANGHAI) -> str:
    stamp = api.services.client.get_header(number).timestamp
    return datetime.fromtimestamp(stamp, tz=UTC).astimezone(zone).isoformat(timespec="seconds")


def test_answers_carry_yuan_and_block_times_in_the_banks_zone(api: Api) -> None:
    api.open_loan(loan_number=LOAN, principal="10000.00", maturity="2027-06-30")
    lot = api.disburse(LOAN, "supplier", "5000.00")
    r = api.post("supplier", f"/v1/lots/{lot}/confirm?wait=true", {"loan": LOAN})
    assert r.status_code == 201, r.text

    loan = api.get("bank", f"/v1/loans/{LOAN}").json()
    assert loan["principal"] == 1_000_000 and loan["principal_yuan"] == "10000.00"
    assert loan["disbursed_yuan"] == "5000.00" and loan["outstanding_yuan"] == "5000.00"
    assert loan["block_time"] == _block_time(api, loan["block_number"])
    assert loan["block_time"].endswith("+08:00")
    assert loan["updated_time"] == _block_time(api, loan["updated_block"])
    assert loan["maturity_date"] == "2027-06-30"
    assert api.get("bank", "/v1/loans").json()["items"][0]["block_time"] == loan["block_time"]

    trail = api.get("bank", f"/v1/loans/{LOAN}/trail").json()
    node = trail["lots"][0]
    assert node["amount_yuan"] == "5000.00" and node["currency"] == "CNY"
    assert node["block_time"] == _block_time(api, node["block_number"])
    assert node["confirmation_time"] == _block_time(api, node["confirmation_block"])

    received = api.get("supplier", "/v1/payments/received").json()["items"][0]
    assert received["block_time"] == node["block_time"] and received["amount_yuan"] == "5000.00"


def test_a_supplier_sees_no_yuan_for_the_risk_file_it_may_not_see(api: Api) -> None:
    api.open_loan(loan_number=LOAN, principal="10000.00")
    api.disburse(LOAN, "supplier", "5000.00")
    loan = api.get("supplier", f"/v1/loans/{LOAN}").json()
    assert loan["repaid"] is None and loan["repaid_yuan"] is None and loan["outstanding_yuan"] is None
    assert loan["disbursed_yuan"] == "5000.00"


def test_the_banks_time_zone_is_a_setting(api: Api, limited: Any) -> None:
    api.open_loan(loan_number=LOAN, principal="10000.00")
    london = limited(bank_timezone="Europe/London")
    loan = london.get(f"/v1/loans/{LOAN}", headers=api.auth("bank")).json()
    assert loan["block_time"] == _block_time(api, loan["block_number"], ZoneInfo("Europe/London"))
    assert not loan["block_time"].endswith("+08:00")


def test_an_unknown_time_zone_is_refused_at_start() -> None:
    with pytest.raises((ValueError, ConfigError), match="not an IANA time zone"):
        Settings(bank_timezone="Mars/Olympus")


# ------------------------------------------------------------------------------------------ pages


def test_pages_show_dates_with_the_block_a_click_away(api: Api) -> None:
    api.open_loan(loan_number=LOAN, principal="10000.00", maturity="2027-06-30")
    lot = api.disburse(LOAN, "supplier", "5000.00")
    loan = api.get("bank", f"/v1/loans/{LOAN}").json()
    opened = loan["block_time"]
    dashboard_sign_in(api, "bank")
    page = api.http.get(f"/dashboard/loans/{LOAN}?lot={lot}").text
    shown = opened[:16].replace("T", " ")
    stamp = f'<time datetime="{opened}">{shown}</time></summary>Block {loan["block_number"]}'
    assert stamp in page
    assert "2027-06-30" in page and "Asia/Shanghai" in page
    listing = api.http.get("/dashboard/loans").text
    assert stamp in listing and "2027-06-30" in listing and "5,000.00" in listing  # outstanding column
    api.http.get("/dashboard/lang/zh")
    assert re.search(r"</summary>区块 \d+</details>", api.http.get(f"/dashboard/loans/{LOAN}").text)

    dashboard_sign_in(api, "supplier")
    received = api.http.get("/dashboard/received").text
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[0-9:]{8}\+08:00">', received)


# ------------------------------------------------------------------------------------------ both databases


def test_humanize_reads_block_times_from_the_mirror_on_both_databases(db_engine: Any) -> None:
    from sqlmodel import Session

    blocks = sa.table(
        "blocks",
        sa.column("chain_id"),
        sa.column("number"),
        sa.column("hash"),
        sa.column("parent_hash"),
        sa.column("timestamp"),
    )
    with db_engine.begin() as conn:
        conn.execute(
            blocks.insert(),
            [
                {
                    "chain_id": 31337,
                    "number": 7,
                    "hash": "0x" + "07" * 32,
                    "parent_hash": "0x" + "06" * 32,
                    "timestamp": 1_767_225_600,
                }
            ],  # 2026-01-01T00:00:00Z
        )
        # Blocks are looked up by the mirrored chain's key (chain id, number): the checkpoint names the chain.
        from datetime import UTC, datetime

        from ledger.mirror.models import Checkpoint

        conn.execute(
            sa.insert(Checkpoint.__table__),  # type: ignore[attr-defined]
            {
                "id": 1,
                "chain_id": 31337,
                "genesis_hash": "0x" + "00" * 32,
                "contract_address": "0x" + "11" * 20,
                "abi_hash": "0x" + "22" * 32,
                "start_block": 0,
                "block_number": 7,
                "block_hash": "0x" + "07" * 32,
                "updated_at": datetime.now(UTC),
            },
        )
    data = {
        "items": [{"block_number": 7, "amount": 123456, "children": [{"block_number": 8, "remaining": 5}]}]
    }
    with Session(db_engine) as session:
        humanize(session, SHANGHAI, data)
    item = data["items"][0]
    assert item["block_time"] == "2026-01-01T08:00:00+08:00"
    assert item["amount_yuan"] == "1234.56" and item["currency"] == "CNY"
    child = item["children"][0]
    assert child["block_time"] is None  # not mirrored: no guess
    assert child["remaining_yuan"] == "0.05"
