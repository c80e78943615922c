"""The verification answer through HTTP checks what the API serves (issue 17) and answers like every other
API answer (issue 20): a tampered loan or lot field the loan answer serves is named with its chain source,
members are snake_case, and the loan's `event_count` counts what verification lists."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api
from sqlmodel import SQLModel

pytestmark = pytest.mark.slow

LOAN = "LN-2026-0001"
BASE = f"/v1/loans/{LOAN}"
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


@pytest.fixture
def loan(api: Api) -> dict[str, str]:
    loan_id = api.open_loan(loan_number=LOAN, principal="10000.00")["loan_id"]
    lot = api.disburse(LOAN, "supplier", "5000.00")
    r = api.post("bank", f"{BASE}/repayments?wait=true", {"amount": "1000.00"})
    assert r.status_code == 201, r.text
    return {"loan_id": loan_id, "lot": lot}


def _keys(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        out = [f"{path}.{k}" for k in value if not _SNAKE.match(k)]
        return out + [p for k, v in value.items() for p in _keys(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for item in value for p in _keys(item, f"{path}[]")]
    return []


def test_verification_answer_is_snake_case_and_counts_what_the_loan_counts(
    api: Api, loan: dict[str, str]
) -> None:
    report = api.get("auditor", f"{BASE}/report")
    r = api.post(
        "auditor", f"{BASE}/attestations?wait=true", {"report_hash": report.headers["x-report-hash"]}
    )
    assert r.status_code == 201, r.text
    body = api.get("auditor", f"{BASE}/verification").json()
    assert body["ok"] is True, body["problems"]
    assert _keys(body) == []
    names = [e["name"] for e in body["events"]]
    assert names == ["LoanOpened", "Disbursed", "RepaymentApplied", "TrailAttested"]
    attested = body["events"][-1]
    assert attested["head"] == body["events"][-2]["head"] == body["head_on_chain"]
    served = api.get("bank", f"/v1/loans/{LOAN}").json()
    assert served["event_count"] == body["event_count"] == len(body["events"]) == 4
    assert body["attestation_count"] == 1
    assert body["summary"].startswith(
        f"VERIFIED at block {body['block']['number']}: 4/4 events (3 chained, 1"
    )


def _set(api: Api, table_name: str, where: dict[str, str], **values: Any) -> None:
    table = SQLModel.metadata.tables[table_name]
    with api.services.engine.begin() as conn:
        conn.execute(sa.update(table).where(*(table.c[k] == v for k, v in where.items())).values(**values))


def test_tampered_repaid_is_served_by_the_loan_answer_and_named_by_verification(
    api: Api, loan: dict[str, str]
) -> None:
    _set(api, "loans", {"loan_id": loan["loan_id"]}, repaid=1000_01)
    served = api.get("bank", f"/v1/loans/{LOAN}").json()
    assert served["outstanding"] == 5000_00 - 1000_01  # what a reader would be shown
    r = api.get("auditor", f"{BASE}/verification")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is False
    assert body["loan_problems"] == ["loan repaid: mirror 100001, getLoan.repaid 100000"]
    assert "loan repaid: mirror 100001, getLoan.repaid 100000" in body["problems"]
    assert body["summary"].startswith("FAILED")


def test_tampered_confirmation_block_of_a_lot_is_named(api: Api, loan: dict[str, str]) -> None:
    r = api.post("supplier", f"/v1/lots/{loan['lot']}/confirm?wait=true", {})
    assert r.status_code in (200, 201), r.text
    lot = api.get("supplier", f"/v1/lots/{loan['lot']}").json()
    block = lot["confirmation_block"]
    _set(api, "lots", {"loan_id": loan["loan_id"], "lot_id": loan["lot"]}, confirmation_block=block - 1)
    body = api.get("auditor", f"{BASE}/verification").json()
    assert body["ok"] is False
    (bad,) = [x for x in body["lots"] if not x["ok"]]
    assert bad["lot_id"] == loan["lot"]
    assert bad["problems"] == [
        f"confirmation_block: mirror {block - 1}, the block of the payee's last LotConfirmed/LotDisputed "
        f"{block}"
    ]
