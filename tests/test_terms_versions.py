"""Every version of a loan's terms is kept (`terms_versions`), through the API on a real chain and indexer, on
SQLite and PostgreSQL: two changes of terms leave three versions, served by the terms history with the date
each came into force; the behaviour-score features as of a date before the first change use the original
schedule; verification re-hashes each version against the event that named it and reports a tampered or an
unnamed one. The chain is private: the test moves its clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api, serve_api
from conftest import make_world

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.protocol.terms import LoanTerms
from ledger.scoring.features import compute_features
from ledger.store.offchain import TermsVersion, db_terms_provider, terms_at, terms_hash

pytestmark = pytest.mark.slow
DAY = 86_400
versions_t: sa.Table = TermsVersion.__table__  # type: ignore[attr-defined]


@pytest.fixture
def api_private(
    private_client: ChainClient, compiled: CompiledContract, tmp_path: Path, db_url: str
) -> Iterator[Api]:
    """The API over a fresh deployment on the module's own chain (its clock moves), on `db_url`."""
    with serve_api(make_world(private_client, compiled), private_client, tmp_path, db_url) as api:
        yield api


def _now(api: Api) -> int:
    return int(api.world.ledger.client.get_header().timestamp)


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def _restructure(api: Api, loan: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post("bank", f"/v1/loans/{loan}/restructure?wait=true", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _verification(api: Api, loan: str) -> dict[str, Any]:
    r = api.get("auditor", f"/v1/loans/{loan}/verification")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_changes_of_terms_keep_every_version_for_history_features_and_verification(api_private: Api) -> None:
    api = api_private
    engine = api.services.engine
    opened_at = _now(api)
    original = {
        "repayment_schedule": [
            {"due": _day(opened_at + 10 * DAY), "amount": "4000.00"},
            {"due": _day(opened_at + 300 * DAY), "amount": "6000.00"},
        ]
    }
    out = api.open_loan(loan_number="LN-2026-0101", principal="10000.00", terms=original,
                        maturity=opened_at + 360 * DAY)  # fmt: skip
    loan = out["loan_id"]
    first_hash = out["terms_hash"]

    # 20 days on: the first instalment (due on day 10) is unpaid, 10 days past due by the original schedule.
    as_of = opened_at + 20 * DAY
    api.world.ledger.client.rpc("evm_mine", [as_of])
    extended = {"repayment_schedule": [{"due": _day(opened_at + 400 * DAY), "amount": "10000.00"}]}
    second = _restructure(api, loan, {"maturity": opened_at + 420 * DAY, "terms": extended,
                                      "change": "extension", "financial_difficulty": False})  # fmt: skip
    grace = {"repayment_schedule": [{"due": _day(opened_at + 430 * DAY), "amount": "10000.00"}]}
    third = _restructure(api, loan, {"maturity": opened_at + 450 * DAY, "terms": grace,
                                     "change": "grace_period", "financial_difficulty": True})  # fmt: skip
    hashes = [first_hash, second["terms_hash"], third["terms_hash"]]
    assert len(set(hashes)) == 3

    # Kept: three versions, each hashing to its key; the current lookup and the older hashes resolve.
    with engine.connect() as conn:
        kept = {
            r.terms_hash: r.terms
            for r in conn.execute(sa.select(versions_t).where(versions_t.c.loan_id == loan))
        }
        assert set(kept) == set(hashes)
        assert all(terms_hash(doc) == h for h, doc in kept.items())
        current = db_terms_provider(conn)(loan)
        older = terms_at(conn, loan, first_hash)
    assert current is not None and current.hash() == third["terms_hash"]
    assert older is not None and older.hash() == first_hash
    assert [i.due_date.isoformat() for i in older.repayment_schedule] == [_day(opened_at + 10 * DAY),
                                                                     _day(opened_at + 300 * DAY)]  # fmt: skip

    # Served: lender and auditor see the three versions in force order, with their date and kind.
    history = api.get("bank", f"/v1/loans/{loan}/terms-history").json()
    versions = history["versions"]
    assert [v["terms_hash"] for v in versions] == hashes
    assert [v["change"] for v in versions] == ["opening", "extension", "grace_period"]
    assert [v["financial_difficulty"] for v in versions] == [None, False, True]
    assert [v["current"] for v in versions] == [False, False, True]
    assert all(v["matches_hash"] and v["terms"] == kept[v["terms_hash"]] for v in versions)
    assert all(v["block_time"] and v["block_time"][:10] >= _day(opened_at) for v in versions)
    assert versions[1]["block_time"][:10] >= _day(as_of) > versions[0]["block_time"][:10]
    assert history["terms_hash"] == hashes[-1] and history["not_named_on_chain"] == []
    assert api.get("auditor", f"/v1/loans/{loan}/terms-history").json()["versions"] == versions
    for who, status in (("borrower", 403), ("supplier", 403), ("other_bank", 404)):
        r = api.get(who, f"/v1/loans/{loan}/terms-history")
        assert r.status_code == status, (who, r.text)

    # Features as of day 20 (before the first change) use the original schedule: 10 days past due; without
    # the original version (the old fallback: maturity only, a year off) the loan is not past due at all.
    when = datetime.fromtimestamp(as_of, UTC)
    then = compute_features(engine, when, [loan])
    fallback = compute_features(engine, when, [loan], terms={})
    assert then.loc[loan, "dpd_now"] == 10
    assert fallback.loc[loan, "dpd_now"] == 0
    given = compute_features(engine, when, [loan], terms={loan: LoanTerms.from_document(kept[first_hash])})
    assert then.loc[loan, "dpd_now"] == given.loc[loan, "dpd_now"]
    # Now (after the changes) the grace period's schedule is in force: nothing is due yet.
    later = compute_features(engine, when + timedelta(days=1), [loan])
    assert later.loc[loan, "dpd_now"] == 0

    # Verification: each version against the event that named it.
    result = _verification(api, loan)
    assert result["ok"] is True, result["problems"]
    checked = {d["hash"]: d for d in result["documents"] if d["kind"] == "terms version"}
    assert set(checked) == set(hashes) and all(d["ok"] and d["referenced_by"] for d in checked.values())
    assert checked[first_hash]["referenced_by"][0].startswith("LoanOpened.termsHash")
    assert checked[hashes[1]]["referenced_by"][0].startswith("TermsChanged.termsHash")

    # Tampered: the original version's schedule edited in place is reported, naming the version.
    edited = dict(kept[first_hash]) | {"repayment_schedule": kept[hashes[1]]["repayment_schedule"]}
    with engine.begin() as conn:
        conn.execute(
            sa.update(versions_t)
            .where(versions_t.c.loan_id == loan, versions_t.c.terms_hash == first_hash)
            .values(terms=edited)
        )
    result = _verification(api, loan)
    assert result["ok"] is False
    assert [p for p in result["problems"] if p.startswith("terms version")] == [
        f"terms version {first_hash}: the kept terms hash to {terms_hash(edited)}, not to the hash they are "
        "kept under (altered after the fact)"
    ]
    report = api.get("auditor", f"/v1/loans/{loan}/report")
    assert (
        report.status_code == 200
        and f"<td class='mono'>{first_hash}</td><td>terms version</td>" in report.text
    )
    # ... and no longer matches in the history (the features keep the schedule already computed from the
    # document that did hash to it: the hash fixes the document).
    assert api.get("bank", f"/v1/loans/{loan}/terms-history").json()["versions"][0]["matches_hash"] is False

    # A version no event names (kept under its own, correct hash) is reported too.
    with engine.begin() as conn:
        conn.execute(
            sa.update(versions_t)
            .where(versions_t.c.loan_id == loan, versions_t.c.terms_hash == first_hash)
            .values(terms=kept[first_hash])
        )
        stray = dict(kept[first_hash]) | {"approval_threshold": 1234500}
        conn.execute(
            sa.insert(versions_t).values(
                loan_id=loan, terms_hash=terms_hash(stray), terms=stray, stored_at=datetime.now(UTC)
            )
        )
    result = _verification(api, loan)
    assert result["ok"] is False
    assert [p for p in result["problems"] if p.startswith("terms version")] == [
        f"terms version {terms_hash(stray)}: no LoanOpened or TermsChanged event up to block "
        f"{result['block']['number']} names this terms hash"
    ]
    history = api.get("bank", f"/v1/loans/{loan}/terms-history").json()
    assert history["not_named_on_chain"] == [terms_hash(stray)]
    assert [v["matches_hash"] for v in history["versions"]] == [True, True, True]
