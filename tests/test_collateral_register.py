"""The collateral register and third-party roles (issue 19, second half) through the API on the real chain
and indexer, on SQLite and PostgreSQL: an engaged appraiser signs valuations (nobody else may), the effective
cover after haircuts raises and clears collateral_cover, a stale or never-made valuation raises
collateral_stale and a revaluation clears it, a release drops an item from cover; each engaged third party
sees only what its engagement covers; a tampered engagement, item or appraisal is named by verification."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import add_third_party, dashboard_sign_in
from conftest import make_world
from file_support import FileSite, eventually, file_site

from ledger.audit.verify import verify_loan
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.protocol.codes import FileRecordKind

pytestmark = pytest.mark.slow

ITEM = {
    "item_ref": "M-1",
    "type": "real_estate",
    "description": "Plant 2, No. 8 Binjiang Road (厂房)",
    "registration_number": "浙(2026)杭州市不动产证明第0001234号",
    "haircut_bp": 3000,
}


@pytest.fixture
def site(
    private_client: ChainClient, compiled: CompiledContract, db_url: str, tmp_path: Path
) -> Iterator[FileSite]:
    """A node of this module's own: the stale-valuation tests move its clock by a month, which on the shared
    node would put every later test's maturity dates in the past."""
    world = make_world(private_client, compiled)
    with file_site(world, private_client, db_url, tmp_path) as s:
        add_third_party(s.api, "appraiser", "Westlake Appraisal Co", "appraiser")
        add_third_party(s.api, "law_firm", "Qiantang Law Firm", "law_firm")
        add_third_party(s.api, "collector", "Zhejiang Collections Ltd", "collection_agency")
        yield s


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    return dict(r.json())


def _loan(site: FileSite, number: str, cover: str | None = "1.5") -> str:
    terms: dict[str, Any] = {"repayment_schedule": [{"due": "2099-06-30", "amount": "1000000.00"}]}
    if cover:
        terms["required_collateral_cover"] = cover
    site.api.open_loan(loan_number=number, principal="1000000.00", terms=terms)
    site.api.disburse(number, "supplier", "400000.00", purpose=1)
    return number


def _engage(site: FileSite, loan: str, name: str, role: str) -> None:
    body = {"participant": name, "role": role, "engaged_on": _today(), "scope": f"{role} for the loan"}
    _ok(site.api.post("bank", f"/v1/loans/{loan}/engagements?wait=true", body))


def _register(site: FileSite, loan: str, **changes: Any) -> str:
    return str(
        _ok(site.api.post("bank", f"/v1/loans/{loan}/collateral-register?wait=true", ITEM | changes))[
            "item_id"
        ]
    )


def _appraise(site: FileSite, loan: str, item: str, value: str, who: str = "appraiser") -> Any:
    body = {"value": value, "valued_on": _today(), "method": "market comparison (市场比较法)"}
    return site.api.post(who, f"/v1/loans/{loan}/collateral-register/{item}/appraisals?wait=true", body)


def _cover(site: FileSite, loan: str) -> list[tuple[str, str]]:
    return [(a["state"], a["details"]["cover"]) for a in site.alerts(loan, "collateral_cover")]


def _open(site: FileSite, loan: str) -> bool:
    return "open" in [s for s, _ in _cover(site, loan)]


def test_only_an_engaged_appraiser_values_and_the_cover_after_haircuts_raises_and_clears(
    site: FileSite,
) -> None:
    loan = _loan(site, "LN-2026-1961")
    item = _register(site, loan)
    # not engaged: the appraiser does not even see the loan; the lender cannot sign an appraisal
    assert _appraise(site, loan, item, "800000.00").status_code == 404
    assert _appraise(site, loan, item, "800000.00", who="bank").status_code == 403
    r = site.api.post("bank", f"/v1/loans/{loan}/engagements?wait=true",
                      {"participant": "Qiantang Law Firm", "role": "appraiser", "engaged_on": _today(),
                       "scope": "x"})  # fmt: skip
    assert r.status_code == 422 and "registered as law_firm" in r.json()["message"]
    _engage(site, loan, "Westlake Appraisal Co", "appraiser")

    # 800,000 less 30% = 560,000 against 400,000 outstanding: 1.40x, below the 1.5x the terms require
    _ok(_appraise(site, loan, item, "800000.00"))
    eventually(lambda: _cover(site, loan) == [("open", "1.4000")], "cover alert at 1.40x")
    # 900,000 less 30% = 630,000: 1.575x, met
    _ok(_appraise(site, loan, item, "900000.00"))
    eventually(lambda: _cover(site, loan) == [("resolved", "1.4000")], "cover met")
    register = site.api.get("auditor", f"/v1/loans/{loan}/collateral-register").json()
    (entry,) = register["items"]
    assert (register["effective_value"], register["effective_cover"]) == ("630000.00", "1.5750")
    assert [(v["source"], v["value"], v["signed_by_name"]) for v in entry["valuations"]] == [
        ("appraiser", "800000.00", "Westlake Appraisal Co"),
        ("appraiser", "900000.00", "Westlake Appraisal Co"),
    ]
    assert entry["item"]["status"] == "registered" and entry["item"]["type_label_zh"] == "房产"

    # the lender's own estimate stays possible, marked as such, and as the latest value it counts
    _ok(
        site.api.post(
            "bank", f"/v1/loans/{loan}/collateral?wait=true", {"collateral_id": item, "value": "500000.00"}
        )
    )
    latest = site.api.get("bank", f"/v1/loans/{loan}/collateral-register").json()["items"][0]
    assert (latest["latest_source"], latest["effective_value"]) == ("lender_estimate", "350000.00")
    eventually(lambda: _open(site, loan), "cover short again")

    # a release is a change of terms: it needs its reason, and the released item is no cover at all
    r = site.api.post(
        "bank", f"/v1/loans/{loan}/collateral-register?wait=true", ITEM | {"status": "released"}
    )
    assert r.status_code == 422 and "change_reason" in r.text
    _appraise(site, loan, item, "2000000.00")  # back above cover ...
    eventually(lambda: not _open(site, loan), "cover met again")
    _register(site, loan, status="released", change_reason="Plant 2 sold with the bank's consent")
    eventually(lambda: _open(site, loan), "released item is no cover")
    assert _appraise(site, loan, item, "900000.00").status_code == 422  # a released item is not valued
    # substitution: a new item replaces the released one, with its own haircut
    sub = _register(site, loan, item_ref="M-2", registration_number="浙(2026)杭州市不动产证明第0005678号",
                    haircut_bp=2000, substitutes="M-1", change_reason="substitution for Plant 2")  # fmt: skip
    _ok(_appraise(site, loan, sub, "800000.00"))  # 640,000 effective: 1.60x
    eventually(lambda: not _open(site, loan), "substitute covers")


def test_a_valuation_older_than_the_items_interval_is_stale_until_revalued(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1962", cover=None)
    item = _register(site, loan, revaluation_days=30)
    _engage(site, loan, "Westlake Appraisal Co", "appraiser")
    site.advance(31)
    (never,) = eventually(lambda: site.alerts(loan, "collateral_stale"), "never valued")
    assert never["title"].startswith("Collateral never valued")
    _ok(_appraise(site, loan, item, "800000.00"))
    eventually(lambda: site.states(loan, "collateral_stale") == ["resolved"], "valued")
    site.advance(29)
    site.sync()
    assert site.states(loan, "collateral_stale") == ["resolved"]
    site.advance(2)
    eventually(
        lambda: sorted(site.states(loan, "collateral_stale")) == ["open", "resolved"], "stale at 31 days"
    )
    _ok(_appraise(site, loan, item, "820000.00"))
    eventually(lambda: site.states(loan, "collateral_stale") == ["resolved", "resolved"], "revalued")


def test_each_third_party_sees_only_what_its_engagement_covers(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1963")
    _register(site, loan)
    api = site.api
    for who in ("appraiser", "law_firm", "collector"):
        assert api.get(who, f"/v1/loans/{loan}").status_code == 404, who
        assert api.get(who, "/v1/loans").json()["total"] == 0, who
    _engage(site, loan, "Westlake Appraisal Co", "appraiser")
    _engage(site, loan, "Qiantang Law Firm", "law_firm")
    _engage(site, loan, "Zhejiang Collections Ltd", "collection_agency")
    sees = {
        "appraiser": {"collateral-register", "collateral"},
        "law_firm": {"collateral-register", "collateral", "guarantees", "preservation", "write-off"},
        "collector": {"repayments", "write-off"},
    }
    parts = ("collateral-register", "collateral", "guarantees", "preservation", "write-off", "repayments",
             "terms", "trail", "visits", "classifications", "alerts")  # fmt: skip
    for who, allowed in sees.items():
        assert api.get(who, f"/v1/loans/{loan}").status_code == 200, who
        assert [i["loan_number"] for i in api.get(who, "/v1/loans").json()["items"]] == [loan], who
        for part in parts:
            path = f"/v1/loans/{loan}/{part}"
            got = (
                api.get(who, "/v1/alerts", params={"loan": loan}) if part == "alerts" else api.get(who, path)
            )
            assert (got.status_code == 200) == (part in allowed), (who, part, got.status_code, got.text[:200])
        mine = api.get(who, f"/v1/loans/{loan}/engagements").json()
        assert [e["name"] for e in mine["engaged"]] == [api.services.directory.get().find(
            {"appraiser": "Westlake Appraisal Co", "law_firm": "Qiantang Law Firm",
             "collector": "Zhejiang Collections Ltd"}[who]).name]  # fmt: skip
    everyone = api.get("auditor", f"/v1/loans/{loan}/engagements").json()
    assert sorted(r for e in everyone["engaged"] for r in e["roles"]) == [
        "appraiser",
        "collection_agency",
        "law_firm",
    ]
    # ending the engagement: the firm no longer sees the loan, and the contract no longer lets it sign
    end = {"ended_on": _today(), "reason": "appraisal delivered"}
    _ok(api.post("bank", f"/v1/loans/{loan}/engagements/Westlake Appraisal Co/end?wait=true", end))
    assert api.get("appraiser", f"/v1/loans/{loan}").status_code == 404
    assert api.get("borrower", f"/v1/loans/{loan}/engagements").status_code == 403


def _at(events: sa.TableClause, row: Any) -> tuple[Any, ...]:
    return (events.c.block_number == row.block_number, events.c.log_index == row.log_index)


def test_a_tampered_engagement_item_or_appraisal_is_named_and_not_believed(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1964")
    item = _register(site, loan)
    _engage(site, loan, "Westlake Appraisal Co", "appraiser")
    _ok(_appraise(site, loan, item, "900000.00"))
    # the audit export names each record in the banker's words, and who signed the valuation
    csv = site.api.get("auditor", f"/v1/loans/{loan}/export", params={"format": "csv"}).text
    assert "collateral item registered or changed,押品登记或变更,Bank A" in csv
    assert "appraiser engaged,委托评估机构,Bank A" in csv
    assert "collateral appraised,押品评估,Westlake Appraisal Co" in csv
    engine = site.api.services.engine
    loan_id = site.api.get("bank", f"/v1/loans/{loan}").json()["loan_id"]
    # the appraisal's content edited off chain: shown as altered, and no longer the item's value
    contents = sa.table("file_contents", sa.column("hash"), sa.column("content", sa.JSON()))
    records = sa.table("file_records", sa.column("record_kind"), sa.column("content_hash"))
    with engine.begin() as conn:
        digest = conn.execute(
            sa.select(records.c.content_hash).where(records.c.record_kind == int(FileRecordKind.APPRAISAL))
        ).scalar_one()
        content = conn.execute(sa.select(contents.c.content).where(contents.c.hash == digest)).one().content
        content = content if isinstance(content, dict) else json.loads(content)
        conn.execute(
            sa.update(contents)
            .where(contents.c.hash == digest)
            .values(content=content | {"value": 9_999_999_00})
        )
    (entry,) = site.api.get("bank", f"/v1/loans/{loan}/collateral-register").json()["items"]
    assert (entry["valuations"][0]["content_status"], entry["valuations"][0]["value"]) == ("altered", None)
    assert entry["latest_value"] is None and entry["effective_value"] == "0.00"
    # each new record kind's on-chain event edited in the mirror: verification names it
    events = sa.table(
        "events",
        sa.column("block_number"),
        sa.column("log_index"),
        sa.column("loan_id"),
        sa.column("name"),
        sa.column("args", sa.JSON),
    )
    for kind in (FileRecordKind.COLLATERAL_ITEM, FileRecordKind.APPRAISER_ENGAGED, FileRecordKind.APPRAISAL):
        with engine.begin() as conn:
            rows = conn.execute(
                sa.select(events.c.block_number, events.c.log_index, events.c.args).where(
                    events.c.loan_id == loan_id, events.c.name == "RecordFiled"
                )
            ).all()
            (row,) = [
                r
                for r in rows
                if (r.args if isinstance(r.args, dict) else json.loads(r.args))["recordKind"] == kind
            ]
            args = row.args if isinstance(row.args, dict) else json.loads(row.args)
            conn.execute(
                sa.update(events)
                .where(*_at(events, row))
                .values(args=args | {"contentHash": "0x" + "99" * 32})
            )
        result = verify_loan(engine, site.world.ledger, loan_id)
        assert [e.name for e in result.events if not e.ok] == ["RecordFiled"], kind
        with engine.begin() as conn:
            conn.execute(sa.update(events).where(*_at(events, row)).values(args=args))
        assert all(e.ok for e in verify_loan(engine, site.world.ledger, loan_id).events), kind


def test_an_engaged_appraiser_signs_a_valuation_on_the_loan_page(site: FileSite) -> None:
    loan = _loan(site, "LN-2026-1965")
    item = _register(site, loan)
    api = site.api
    csrf = dashboard_sign_in(api, "appraiser")
    assert api.http.get(f"/dashboard/loans/{loan}").status_code == 404  # not engaged: not its loan
    _engage(site, loan, "Westlake Appraisal Co", "appraiser")
    page = api.http.get(f"/dashboard/loans/{loan}").text
    action = f"/dashboard/loans/{api.get('bank', f'/v1/loans/{loan}').json()['loan_id']}"
    action += f"/collateral-register/{item}/appraisals"
    assert f'action="{action}"' in page and 'id="collateral-register"' in page
    assert re.search(r'id="lots">.*?<tbody>\s*</tbody>', page, re.S)  # the register, not the trail's lots
    form = {"csrf": csrf, "back": f"/dashboard/loans/{loan}", "value": "800000.00", "valued_on": _today()}
    r = api.http.post(action, data=form | {"method": "market comparison"}, follow_redirects=False)
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers.get("location")
    (entry,) = api.get("auditor", f"/v1/loans/{loan}/collateral-register").json()["items"]
    assert (entry["latest_source"], entry["effective_value"]) == ("appraiser", "560000.00")
    page = api.http.get(f"/dashboard/loans/{loan}").text
    assert "Westlake Appraisal Co" in page and "560000.00" in page
    r = api.http.post(action, data=form | {"value": "800000", "method": ""}, follow_redirects=False)
    assert "error=" in r.headers["location"]  # a bad form field is said back, nothing is signed
    # the lender sees the register but has no appraisal form: its own estimate is the collateral form
    dashboard_sign_in(api, "bank")
    assert f'action="{action}"' not in api.http.get(f"/dashboard/loans/{loan}").text
