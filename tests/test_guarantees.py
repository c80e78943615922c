"""Guarantees in the post-loan file (issue 19), through the API on the real chain, mirrored by the real
indexer with the monitoring rules after each batch, on SQLite and PostgreSQL: each check raises its alert and
clears when its cause does; a circle is drawn on the loan page; verification names a tampered record."""

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
from ledger.monitoring.guarantees import cycles_through

pytestmark = pytest.mark.slow


@pytest.fixture
def site(world: World, client: ChainClient, db_url: str, tmp_path: Path) -> Iterator[FileSite]:
    with file_site(world, client, db_url, tmp_path) as s:
        yield s


def _day(site: FileSite, days: int) -> str:
    return (datetime.fromtimestamp(site.chain_time(), UTC).date() + timedelta(days=days)).isoformat()


def _loan(site: FileSite, number: str, borrower: str, **extra: Any) -> str:
    api = site.api
    body: dict[str, Any] = {"maturity": site.chain_time() + 365 * DAY, "borrower": api.address(borrower)}
    api.open_loan(loan_number=number, principal="1000000.00", **(body | extra))
    api.disburse(number, "subsupplier", "400000.00", purpose=1)
    return number


def _give(site: FileSite, loan: str, guarantor: str, amount: str, **extra: Any) -> str:
    body = {
        "guarantor": site.api.address(guarantor),
        "kind": "joint_surety",
        "amount": amount,
        "start": _day(site, 0),
        "expiry": "2099-12-31",
    } | extra
    r = site.api.post("bank", f"/v1/loans/{loan}/guarantees?wait=true", body)
    assert r.status_code == 201, r.text
    return str(r.json()["record_id"])


def _release(site: FileSite, loan: str, record_id: str) -> None:
    path = f"/v1/loans/{loan}/guarantees/{record_id}/release?wait=true"
    r = site.api.post("bank", path, {"reason": "replaced by a pledge"})
    assert r.status_code == 201, r.text


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def test_a_mutual_guarantee_raises_a_circle_on_both_loans_and_a_release_clears_it(site: FileSite) -> None:
    a = _loan(site, "LN-2026-1901", "borrower")
    b = _loan(site, "LN-2026-1902", "supplier")
    _give(site, a, "supplier", "300000.00")
    assert site.states(a, "guarantee_cycle") == []  # near miss: one direction only
    back = _give(site, b, "borrower", "100000.00")
    cycle_a = eventually(lambda: site.alerts(a, "guarantee_cycle"), "circle on loan A")
    cycle_b = eventually(lambda: site.alerts(b, "guarantee_cycle"), "circle on loan B")
    borrower, supplier = site.api.address("borrower"), site.api.address("supplier")
    assert cycle_a[0]["title"] == "Mutual guarantee (互保) involving the borrower"
    assert cycle_a[0]["explanation"] == (
        f"the borrower ({_short(borrower)}) backs {_short(supplier.lower())} backs the borrower "
        f"({_short(borrower)}): the borrowers guarantee each other, so one default weakens every guarantee "
        "in the circle."
    )
    assert sorted(cycle_b[0]["details"]["cycle"]) == sorted([borrower.lower(), supplier.lower()])

    # the circle is drawn on the loan page, its members named
    dashboard_sign_in(site.api, "bank")
    page = site.api.http.get(f"/dashboard/loans/{a}")
    assert page.status_code == 200
    assert page.text.count('class="member') == 2 and '<svg class="cycle"' in page.text
    assert "Borrower Co" in page.text and "Supplier One" in page.text

    _release(site, b, back)
    eventually(lambda: site.states(a, "guarantee_cycle") == ["resolved"], "circle on A cleared")
    eventually(lambda: site.states(b, "guarantee_cycle") == ["resolved"], "circle on B cleared")
    listed = site.api.get("supplier", f"/v1/loans/{b}/guarantees").json()  # B's borrower sees its file
    assert listed[0]["released"]["reason"] == "replaced by a pledge"
    assert listed[0]["guarantee"]["kind_label_zh"] == "连带责任保证"


def test_a_three_party_circle_is_found_as_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles_through(edges, "A") == [("a", "b", "c")]
    assert cycles_through(edges, "d") == []


def test_a_guarantee_expiring_before_maturity_alerts_until_released(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1903", "borrower")
    _give(site, loan, "supplier", "200000.00", expiry=_day(site, 400))  # near miss: after maturity
    assert site.states(loan, "guarantee_expiry") == []
    short = _give(site, loan, "supplier2", "200000.00", expiry=_day(site, 200), kind="general_surety")
    (alert,) = eventually(lambda: site.alerts(loan, "guarantee_expiry"), "expiry alert")
    maturity = _day(site, 365)
    assert alert["explanation"] == (
        f"The general guarantee (一般保证) of CNY 200,000.00 by {_short(site.api.address('supplier2'))} "
        f"expires on {_day(site, 200)}; the loan matures on {maturity}."
    )
    _release(site, loan, short)
    eventually(lambda: site.states(loan, "guarantee_expiry") == ["resolved"], "expiry alert cleared")


def test_a_guarantor_above_its_declared_capacity_alerts_across_loans(site: FileSite) -> None:
    a = _loan(site, "LN-2026-1904", "borrower")
    c = _loan(site, "LN-2026-1905", "supplier2")
    _give(site, a, "supplier", "300000.00", capacity="600000.00")
    _give(site, c, "supplier", "300000.00", capacity="600000.00")  # near miss: exactly at capacity
    assert site.states(a, "guarantor_over_capacity") == []
    extra = _give(site, c, "supplier", "0.01", capacity="600000.00")
    (alert,) = eventually(lambda: site.alerts(a, "guarantor_over_capacity"), "capacity alert on A")
    assert alert["explanation"] == (
        f"{_short(site.api.address('supplier'))} guarantees CNY 600,000.01 across 3 guarantee(s) on 2 "
        "loan(s), above its declared capacity of CNY 600,000.00."
    )
    _release(site, c, extra)
    eventually(lambda: site.states(a, "guarantor_over_capacity") == ["resolved"], "capacity alert cleared")


def test_a_guarantor_past_due_on_its_own_loan_alerts_until_it_pays(site: FileSite) -> None:
    yesterday = _day(site, -1)
    own = _loan(
        site,
        "LN-2026-1906",
        "supplier2",
        terms={"repayment_schedule": [{"due": yesterday, "amount": "1000.00"}]},
    )
    loan = _loan(site, "LN-2026-1907", "borrower")
    _give(site, loan, "supplier", "100000.00")  # near miss: a guarantor that is not late
    _give(site, loan, "supplier2", "100000.00", kind="pledge")
    (alert,) = eventually(lambda: site.alerts(loan, "guarantor_overdue"), "guarantor overdue")
    assert alert["explanation"] == (
        f"{_short(site.api.address('supplier2'))} guarantees CNY 100,000.00 of this loan and is itself 1 "
        "day(s) past due as a borrower in this ledger."
    )
    r = site.api.post("bank", f"/v1/loans/{own}/repayments?wait=true", {"amount": "1000.00"})
    assert r.status_code == 201, r.text
    eventually(lambda: site.states(loan, "guarantor_overdue") == ["resolved"], "guarantor paid")


def test_bad_guarantees_are_refused_saying_what_to_fix(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1908", "borrower")
    both = {"guarantor_ref": "0x" + "47" * 32}
    r = site.api.post("bank", f"/v1/loans/{loan}/guarantees?wait=true", both | _body(site))
    assert r.status_code == 422 and "exactly one" in r.text
    r = site.api.post("bank", f"/v1/loans/{loan}/guarantees?wait=true", _body(site, expiry=_day(site, -5)))
    assert r.status_code == 422 and "expires" in r.text
    r = site.api.post("bank", f"/v1/loans/{loan}/guarantees/{'0x' + '12' * 32}/release", {"reason": "x"})
    assert r.status_code == 404 and "has no guarantee" in r.json()["message"]
    assert site.api.post("supplier", f"/v1/loans/{loan}/guarantees", _body(site)).status_code == 403
    assert site.api.get("subsupplier", f"/v1/loans/{loan}/guarantees").status_code == 403  # in the trail only


def _body(site: FileSite, **extra: Any) -> dict[str, Any]:
    return {
        "guarantor": site.api.address("supplier"),
        "kind": "mortgage",
        "amount": "1000.00",
        "start": _day(site, 0),
        "expiry": "2099-12-31",
    } | extra


def test_verification_names_a_tampered_guarantee_and_the_monitor_stops_asserting_it(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1909", "borrower")
    record = _give(site, loan, "supplier", "200000.00", expiry=_day(site, 100))
    eventually(lambda: site.alerts(loan, "guarantee_expiry"), "expiry alert")
    api, engine = site.api, site.api.services.engine
    loan_id = api.get("bank", f"/v1/loans/{loan}").json()["loan_id"]
    assert verify_loan(engine, site.world.ledger, loan_id).ok

    # 1. the off-chain content is edited (a longer expiry): shown as altered, no longer a fact the rules use
    contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))
    with engine.begin() as conn:
        row = conn.execute(sa.select(contents.c.content).where(contents.c.hash == record)).one()
        content = row.content if isinstance(row.content, dict) else json.loads(row.content)
        edited = content | {"expiry": "2099-12-31"}
        conn.execute(sa.update(contents).where(contents.c.hash == record).values(content=edited))
    (shown,) = api.get("bank", f"/v1/loans/{loan}/guarantees").json()
    assert (shown["content_status"], shown["guarantee"]) == ("altered", None)

    # 2. the mirrored event's content hash is edited: verification names the event, the chain breaks there
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
    assert not result.ok
    (named,) = [e for e in result.events if not e.ok]
    assert named.name == "RecordFiled"
    assert any("hash chain breaks here" in p for p in named.problems)
