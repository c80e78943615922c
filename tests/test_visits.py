"""Visits and interviews (issue 19): recorded through the API on the real chain, mirrored by the real indexer
with the monitoring rules after each batch, on SQLite and PostgreSQL. The missed-site-visit alert is raised
by the chain's own clock (a node of this module's own, moved forward by months) and cleared by recording a
site visit, not by an interview; the reports are checked against their on-chain hashes, and trail
verification names a tampered visit record or report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import make_world
from file_support import DAY, FileSite, file_site

from ledger.audit.verify import directory_documents, verify_loan
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.monitoring.rules import LoanFacts, LotFact, RecordFact, Thresholds, missed_site_visit
from ledger.protocol.visits import VisitReport

pytestmark = pytest.mark.slow


@pytest.fixture
def site(
    private_client: ChainClient, compiled: CompiledContract, db_url: str, tmp_path: Path
) -> Iterator[FileSite]:
    """A node of this module's own: the tests move its clock by months."""
    with file_site(make_world(private_client, compiled), private_client, db_url, tmp_path) as s:
        yield s


def _visit(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "visit_date": "2026-12-01",
        "place": "" if kind == "video_interview" else "Plant 2, 88 Example Road",
        "attendees": ["Account manager Wang", "Borrower's CFO"],
        "findings": "Production lines running; inventory matches the ledger.",
        "follow_ups": [{"action": "Collect Q4 VAT returns", "owner": "Wang", "due_date": "2026-12-31"}],
        **extra,
    }


def _open(site: FileSite, number: str) -> str:
    api = site.api
    now = int(api.world.ledger.client.get_header().timestamp)
    api.open_loan(loan_number=number, principal="1000000.00", maturity=now + 720 * DAY)
    api.disburse(number, "supplier", "400000.00", purpose=1)
    return number


def _record(site: FileSite, loan: str, body: dict[str, Any], who: str = "bank") -> Any:
    r = site.api.post(who, f"/v1/loans/{loan}/visits?wait=true", body)
    site.sync()
    return r


def test_a_site_visit_clears_the_missed_site_visit_alert_and_an_interview_does_not(site: FileSite) -> None:
    loan = _open(site, "LN-2026-0190")
    site.sync()
    site.advance(89)
    site.sync()
    assert site.alerts(loan, "missed_site_visit") == []  # near miss: 89 of 90 days
    site.advance(3)
    site.sync()
    (alert,) = site.alerts(loan, "missed_site_visit")
    assert alert["state"] == "open"
    assert "A loan classed normal (正常) needs a site visit every 90 days" in alert["explanation"]
    assert "no site visit has been recorded since the first disbursement" in alert["explanation"]

    r = _record(site, loan, _visit("video_interview"))
    assert r.status_code == 201, r.text
    assert [a["state"] for a in site.alerts(loan, "missed_site_visit")] == ["open"]  # not a site visit

    r = _record(site, loan, _visit("site_visit"))
    assert r.status_code == 201, r.text
    assert [a["state"] for a in site.alerts(loan, "missed_site_visit")] == ["resolved"]

    visits = site.api.get("bank", f"/v1/loans/{loan}/visits").json()
    assert [(v["chain_kind"], v["kind_label"], v["kind_label_zh"], v["report_status"]) for v in visits] == [
        ("interview", "video interview", "视频访谈", "verified"),
        ("site_visit", "site visit", "实地走访", "verified"),
    ]
    assert visits[1]["report"]["attendees"] == ["Account manager Wang", "Borrower's CFO"]
    assert visits[1]["report"]["follow_ups"][0]["due_date"] == "2026-12-31"
    schedule = site.api.get("bank", f"/v1/loans/{loan}/visit-schedule").json()
    assert schedule["interval_days"] == 90 and schedule["overdue_days"] == 0
    assert schedule["last_site_visit"] == visits[1]["recorded_on"]


def test_a_special_mention_loan_is_visited_monthly(site: FileSite) -> None:
    loan = _open(site, "LN-2026-0191")
    # One officer proposes 关注 with a reason, a second approves it (maker-checker).
    body = {"risk_class": "special_mention", "reason": "Main customer slow to pay; watch closely."}
    r = site.api.post("bank", f"/v1/loans/{loan}/classification", body)
    assert r.status_code == 201, r.text
    approve = f"/v1/classification-proposals/{r.json()['id']}/approve?wait=true"
    r = site.api.post("bank2", approve, {})
    assert r.status_code == 201, r.text
    site.sync()
    site.advance(29)
    site.sync()
    assert site.alerts(loan, "missed_site_visit") == []
    site.advance(2)
    site.sync()
    (alert,) = site.alerts(loan, "missed_site_visit")
    assert "A loan classed special mention (关注) needs a site visit every 30 days" in alert["explanation"]
    assert site.api.get("bank", f"/v1/loans/{loan}/visit-schedule").json()["interval_days"] == 30


def test_only_the_lender_records_and_the_borrower_never_sees_visits(site: FileSite) -> None:
    loan = _open(site, "LN-2026-0192")
    site.sync()
    r = site.api.post("borrower", f"/v1/loans/{loan}/visits?wait=true", _visit("site_visit"))
    assert r.status_code == 403, r.text
    r = site.api.get("borrower", f"/v1/loans/{loan}/visits")
    assert r.status_code == 403, r.text
    assert "see visits and interviews" in r.json()["message"]
    assert site.api.get("auditor", f"/v1/loans/{loan}/visits").status_code == 200


def test_a_visit_report_with_bad_input_is_refused_with_what_to_fix(site: FileSite) -> None:
    loan = _open(site, "LN-2026-0193")
    site.sync()
    r = _record(site, loan, _visit("site_visit", place=""))
    assert r.status_code == 422
    assert "a site visit needs its place" in r.text
    r = _record(site, loan, _visit("site_visit", visit_date="2999-01-01"))
    assert r.status_code == 422
    assert r.json()["message"] == "The visit date 2999-01-01 is in the future."
    r = _record(site, loan, _visit("site_visit", photos=["0x" + "ab" * 32]))
    assert r.status_code == 422
    assert r.json()["message"] == f"Document {'0x' + 'ab' * 32} is not stored here."
    assert site.api.get("bank", f"/v1/loans/{loan}/visits").json() == []


def test_verification_names_a_tampered_visit_record_and_a_swapped_report(site: FileSite) -> None:
    loan = _open(site, "LN-2026-0194")
    assert _record(site, loan, _visit("site_visit")).status_code == 201
    api, engine = site.api, site.api.services.engine
    loan_id = api.get("bank", f"/v1/loans/{loan}").json()["loan_id"]
    docs = directory_documents(api.services.settings.documents_dir)

    def check() -> Any:
        return verify_loan(engine, site.world.ledger, loan_id, documents=docs)

    assert check().ok
    (visit,) = api.get("bank", f"/v1/loans/{loan}/visits").json()
    digest = visit["report_hash"]

    # 1. the stored report is swapped for another loan's or an edited one: the document check names it,
    #    and the visit list no longer shows it as the record
    path = api.services.settings.documents_dir / digest
    honest = path.read_bytes()
    edited = json.loads(honest)
    edited["findings"] = "All fine."
    path.write_bytes(json.dumps(edited).encode())
    bad = [d for d in check().documents if not d.ok]
    assert [d.hash for d in bad] == [digest]
    assert "altered or swapped" in str(bad[0].problem)
    (shown,) = api.get("bank", f"/v1/loans/{loan}/visits").json()
    assert (shown["report_status"], shown["report"]) == ("altered", None)
    path.write_bytes(honest)

    # 2. the mirrored event's report hash is edited: the event is named and the hash chain breaks there
    events = sa.table(
        "events", sa.column("loan_id"), sa.column("name"), sa.column("log_index"), sa.column("args", sa.JSON)
    )
    with engine.begin() as conn:
        row = conn.execute(
            sa.select(events.c.args).where(events.c.loan_id == loan_id, events.c.name == "InspectionRecorded")
        ).one()
        args = row.args if isinstance(row.args, dict) else json.loads(row.args)
        args["reportHash"] = "0x" + "99" * 32
        conn.execute(
            sa.update(events)
            .where(events.c.loan_id == loan_id, events.c.name == "InspectionRecorded")
            .values(args=args)
        )
    result = check()
    assert not result.ok
    (named,) = [e for e in result.events if not e.ok]
    assert named.name == "InspectionRecorded"
    assert any("hash chain breaks here" in p for p in named.problems)


def test_the_report_hash_binds_the_loan(site: FileSite) -> None:
    report = VisitReport.model_validate({"loan_id": "0x" + "01" * 32, **_visit("site_visit")})
    other = VisitReport.model_validate({"loan_id": "0x" + "02" * 32, **_visit("site_visit")})
    assert report.hash() != other.hash()
    assert VisitReport.from_document(json.loads(report.canonical())) == report


# ------------------------------------------------------------------------------------------ the rule itself


def _facts(now_days: float, risk_class: int = 0, visits: tuple[tuple[float, int], ...] = ()) -> LoanFacts:
    t0 = int(time.time())
    lot = LotFact("0x01", None, "0xb", 100, 100, 1, True, True, "unconfirmed", None, None, 2, 0, t0)
    return LoanFacts(
        loan_id="0xloan",
        lender_org="0xbank",
        borrower="0xb",
        principal=100,
        disbursed=100,
        repaid=0,
        currency="CNY",
        maturity=t0 + 900 * DAY,
        status=1,
        block_number=1,
        opened_at=t0,
        lots=[lot],
        repayments=[],
        valuations=[],
        inspections=[RecordFact(3 + i, 0, t0 + int(d * DAY), 0, str(k)) for i, (d, k) in enumerate(visits)],
        terms=None,
        now=t0 + int(now_days * DAY),
        risk_class=risk_class,
    )


@pytest.mark.parametrize(
    ("now", "risk", "visits", "raised"),
    [
        (90, 0, (), False),  # exactly 90 days after the disbursement: due, not overdue
        (91, 0, (), True),
        (30, 2, (), False),
        (31, 2, (), True),  # 次级: monthly
        (100, 0, ((20, 0),), False),  # visited on day 20: due on day 110
        (100, 0, ((20, 2),), True),  # an interview on day 20 is no site visit
        (100, 0, ((20, 1),), True),  # nor a document review
    ],
)
def test_missed_site_visit_boundaries(
    now: float, risk: int, visits: tuple[tuple[float, int], ...], raised: bool
) -> None:
    assert bool(missed_site_visit(_facts(now, risk, visits), Thresholds())) is raised


def test_missed_site_visit_is_silent_before_any_disbursement() -> None:
    facts = _facts(400)
    assert missed_site_visit(LoanFacts(**{**facts.__dict__, "lots": []}), Thresholds()) == []
