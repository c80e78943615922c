"""Asset-preservation cases (issue 19) through the API on the real chain and indexer, on SQLite and
PostgreSQL: a deadline about to lapse or lapsed raises its alert, meeting it clears it; a tampered case is
named by verification and no longer asserted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import dashboard_sign_in
from conftest import World
from file_support import DAY, FileSite, eventually, file_site

from ledger.audit.verify import verify_loan
from ledger.chain.client import ChainClient

pytestmark = pytest.mark.slow


@pytest.fixture
def site(world: World, client: ChainClient, db_url: str, tmp_path: Path) -> Iterator[FileSite]:
    with file_site(world, client, db_url, tmp_path) as s:
        yield s


def _day(site: FileSite, days: int) -> str:
    return (datetime.fromtimestamp(site.chain_time(), UTC).date() + timedelta(days=days)).isoformat()


def _loan(site: FileSite, number: str) -> str:
    site.api.open_loan(loan_number=number, principal="1000000.00", maturity=site.chain_time() + 365 * DAY)
    site.api.disburse(number, "supplier", "400000.00", purpose=1)
    return number


def _file(site: FileSite, loan: str, **case: Any) -> Any:
    body = {
        "case_ref": "(2026)浙0102财保12号",
        "kind": "pre_suit",
        "court": "Hangzhou Shangcheng District People's Court",
        "seized_assets": ["Deposit account at Bank C (frozen)", "Plant 2 (sealed)"],
    } | case
    r = site.api.post("bank", f"/v1/loans/{loan}/preservation?wait=true", body)
    assert r.status_code == 201, r.text
    return r.json()


def test_a_pre_suit_preservation_alerts_before_the_lawsuit_deadline_and_clears_once_sued(
    site: FileSite,
) -> None:
    loan = _loan(site, "LN-2026-1941")
    _file(site, loan, ruling_date=_day(site, -22))  # near miss: 8 days left, warning at 7
    assert site.states(loan, "preservation_deadline") == []
    _file(site, loan, ruling_date=_day(site, -25))  # the same case, updated: 5 days left
    (alert,) = eventually(lambda: site.alerts(loan, "preservation_deadline"), "deadline alert")
    assert alert["severity"] == "medium"
    assert alert["explanation"] == (
        "Case (2026)浙0102财保12号 (pre-suit preservation, 诉前保全) at Hangzhou Shangcheng District "
        "People's Court: file the lawsuit (诉前保全后三十日内起诉) "
        f"by {_day(site, 5)}; it lapses in 5 day(s)."
    )
    _file(site, loan, ruling_date=_day(site, -25), lawsuit_filed_on=_day(site, 0))
    eventually(lambda: site.states(loan, "preservation_deadline") == ["resolved"], "deadline met")
    (case,) = site.api.get("auditor", f"/v1/loans/{loan}/preservation").json()
    assert case["filings"] == 3 and case["content_status"] == "verified"
    assert case["case"]["deadlines"][-1]["met_on"] == _day(site, 0)
    dashboard_sign_in(site.api, "bank")
    page = site.api.http.get(f"/dashboard/loans/{loan}").text
    assert 'id="preservation"' in page and "Plant 2 (sealed)" in page and f"✓ {_day(site, 0)}" in page
    assert site.api.get("borrower", f"/v1/loans/{loan}/preservation").status_code == 403


def test_a_lapsed_seizure_term_is_a_high_alert_even_after_write_off(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1942")
    r = site.api.post("bank", f"/v1/loans/{loan}/write-off?wait=true", {"reason": "Borrower insolvent"})
    assert r.status_code == 201, r.text
    seizure = {"what": "renew the freeze of the deposit account (一年)", "due_date": _day(site, -2)}
    _file(site, loan, kind="litigation", ruling_date=_day(site, -400), deadlines=[seizure])
    (alert,) = eventually(lambda: site.alerts(loan, "preservation_deadline"), "lapsed deadline")
    assert alert["severity"] == "high" and "it lapsed 2 day(s) ago" in alert["explanation"]

    # tampering: the case edited off chain is shown as altered (and is no fact the rules use); the
    # RecordFiled event edited in the mirror is named by verification
    engine = site.api.services.engine
    (case,) = site.api.get("bank", f"/v1/loans/{loan}/preservation").json()
    contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))
    records = sa.table("file_records", sa.column("record_id"), sa.column("content_hash"))
    with engine.begin() as conn:
        digest = conn.execute(
            sa.select(records.c.content_hash).where(records.c.record_id == case["record_id"])
        ).scalar_one()
        content = conn.execute(sa.select(contents.c.content).where(contents.c.hash == digest)).one().content
        content = content if isinstance(content, dict) else json.loads(content)
        edited = content | {"deadlines": []}
        conn.execute(sa.update(contents).where(contents.c.hash == digest).values(content=edited))
    (shown,) = site.api.get("bank", f"/v1/loans/{loan}/preservation").json()
    assert (shown["content_status"], shown["case"]) == ("altered", None)
    loan_id = site.api.get("bank", f"/v1/loans/{loan}").json()["loan_id"]
    events = sa.table("events", sa.column("loan_id"), sa.column("name"), sa.column("args", sa.JSON))
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(events.c.args).where(events.c.loan_id == loan_id, events.c.name == "RecordFiled")
        ).one()
        args = row.args if isinstance(row.args, dict) else json.loads(row.args)
        conn.execute(
            sa.update(events)
            .where(events.c.loan_id == loan_id, events.c.name == "RecordFiled")
            .values(args=args | {"contentHash": "0x" + "99" * 32})
        )
    result = verify_loan(engine, site.world.ledger, loan_id)
    assert "RecordFiled" in [e.name for e in result.events if not e.ok]


def test_a_case_without_seized_assets_is_refused(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1943")
    body = {"case_ref": "x", "kind": "pre_suit", "court": "c", "ruling_date": _day(site, 0)}
    body["seized_assets"] = []
    r = site.api.post("bank", f"/v1/loans/{loan}/preservation?wait=true", body)
    assert r.status_code == 422 and "seized_assets" in r.text
