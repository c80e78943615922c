"""Write-off with its reason and recoveries after it (issue 19), through the API and the dashboard form on the
real chain and indexer, on SQLite and PostgreSQL; verification names a tampered reason or recovery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import dashboard_sign_in
from conftest import World
from file_support import DAY, FileSite, file_site

from ledger.audit.verify import verify_loan
from ledger.chain.client import ChainClient

pytestmark = pytest.mark.slow


@pytest.fixture
def site(world: World, client: ChainClient, db_url: str, tmp_path: Path) -> Iterator[FileSite]:
    with file_site(world, client, db_url, tmp_path) as s:
        yield s


def _loan(site: FileSite, number: str) -> str:
    site.api.open_loan(loan_number=number, principal="1000000.00", maturity=site.chain_time() + 365 * DAY)
    site.api.disburse(number, "supplier", "400000.00", purpose=1)
    return number


def _recover(site: FileSite, loan: str, amount: str, source: str) -> Any:
    body = {"amount": amount, "received_on": "2026-12-01", "source": source}
    return site.api.post("bank", f"/v1/loans/{loan}/recoveries?wait=true", body)


def test_a_write_off_keeps_its_reason_and_recoveries_are_totalled(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1931")
    r = _recover(site, loan, "1000.00", "too early")
    assert r.status_code == 422
    assert r.json()["message"] == f"Loan {loan} is not written off: money received on it is a repayment."

    reason = "Borrower insolvent; court ruling (2026) 浙01破12号; collateral auctioned."
    r = site.api.post("bank", f"/v1/loans/{loan}/write-off?wait=true", {"reason": reason})
    assert r.status_code == 201, r.text
    assert site.api.get("bank", f"/v1/loans/{loan}").json()["status"] == 3  # written off
    assert _recover(site, loan, "150000.00", "collateral auction").status_code == 201
    assert _recover(site, loan, "20000.50", "settlement with the guarantor").status_code == 201

    file = site.api.get("auditor", f"/v1/loans/{loan}/write-off").json()
    assert file["write_off"]["reason"] == reason and file["write_off"]["reason_status"] == "verified"
    assert [(i["amount"], i["source"]) for i in file["recoveries"]] == [
        (15_000_000, "collateral auction"),
        (2_000_050, "settlement with the guarantor"),
    ]
    assert file["recovered"] == 17_000_050
    assert site.api.get("borrower", f"/v1/loans/{loan}/write-off").status_code == 403
    r = site.api.post("bank", f"/v1/loans/{loan}/write-off?wait=true", {"reason": "again"})
    assert r.status_code == 422 and "is not open (written_off)" in r.json()["message"]

    dashboard_sign_in(site.api, "bank")
    page = site.api.http.get(f"/dashboard/loans/{loan}")
    assert reason in page.text and "170,000.50" in page.text and 'id="write-off-form"' not in page.text

    # tampering: the reason edited off chain is shown as altered; the LoanClosed and RecordFiled events edited
    # in the mirror are named by verification
    engine = site.api.services.engine
    loan_id = file["loan_id"]
    contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))
    digest = file["write_off"]["reason_hash"]
    with engine.begin() as conn:
        content = conn.execute(sa.select(contents.c.content).where(contents.c.hash == digest)).one().content
        content = content if isinstance(content, dict) else json.loads(content)
        edited = content | {"reason": "market conditions"}
        conn.execute(sa.update(contents).where(contents.c.hash == digest).values(content=edited))
    shown = site.api.get("bank", f"/v1/loans/{loan}/write-off").json()["write_off"]
    assert (shown["reason_status"], shown["reason"]) == ("altered", None)
    assert verify_loan(engine, site.world.ledger, loan_id).ok
    events = sa.table(
        "events", sa.column("loan_id"), sa.column("name"), sa.column("log_index"), sa.column("args", sa.JSON)
    )
    for name, field in (("LoanClosed", "reasonHash"), ("RecordFiled", "contentHash")):
        with engine.begin() as conn:
            rows = conn.execute(
                sa.select(events.c.log_index, events.c.args).where(
                    events.c.loan_id == loan_id, events.c.name == name
                )
            ).all()
            args = rows[0].args if isinstance(rows[0].args, dict) else json.loads(rows[0].args)
            first = (events.c.loan_id == loan_id, events.c.name == name, events.c.log_index == rows[0][0])
            conn.execute(sa.update(events).where(*first).values(args=args | {field: "0x" + "99" * 32}))
        result = verify_loan(engine, site.world.ledger, loan_id)
        assert name in [e.name for e in result.events if not e.ok]


def test_the_dashboard_writes_a_loan_off_with_its_reason(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1932")
    csrf = dashboard_sign_in(site.api, "bank")
    page = site.api.http.get(f"/dashboard/loans/{loan}")
    assert 'id="write-off-form"' in page.text
    back = f"/dashboard/loans/{loan}"
    r = site.api.http.post(
        f"/dashboard/loans/{loan}/write-off",
        data={"csrf": csrf, "back": back, "idem": "wo-1", "reason": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "Say+why" in r.headers["location"]
    r = site.api.http.post(
        f"/dashboard/loans/{loan}/write-off",
        data={"csrf": csrf, "back": back, "idem": "wo-2", "reason": "Fraud found at the site visit"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "msg=Loan+written+off" in r.headers["location"], r.headers["location"]
    file = site.api.get("bank", f"/v1/loans/{loan}/write-off").json()
    assert file["status"] == "written_off" and file["write_off"]["reason"] == "Fraud found at the site visit"
