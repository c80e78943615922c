"""Loan servicing through the API and the dashboard (issue 18): a repayment in yuan is applied from the loan's
schedule (penalty, interest, principal) and recorded on chain with its split; the suggestion shows days past
due with the date they count from and the named criteria; the loan page shows them to the lender only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from api_support import Api, dashboard_sign_in

from ledger.protocol.servicing import DayCount, period_interest

ZERO_HASH = "0x" + "00" * 32


def _chain_date(api: Api) -> datetime:
    return datetime.fromtimestamp(api.world.ledger.client.get_header().timestamp, UTC)


def test_a_repayment_pays_penalty_then_interest_then_principal_and_the_split_is_on_chain(api: Api) -> None:
    today = _chain_date(api).date()
    start, first_due = today - timedelta(days=40), today - timedelta(days=10)
    terms = {
        "loan_type": "working_capital",
        "interest": {
            "method": "interest_only",
            "annual_rate": "0.0600",
            "start_date": start.isoformat(),
            "first_due_date": first_due.isoformat(),
            "periods": 12,
        },
    }
    api.open_loan(loan_number="LN-2026-0801", principal="100000.00", terms=terms)
    api.disburse("LN-2026-0801", "supplier", "100000.00")
    interest = period_interest(100_000_00, Decimal("0.06"), 30, DayCount.ACT_365)  # 30 days at 6%
    assert interest == 493_15

    s = api.get("bank", "/v1/loans/LN-2026-0801/classification-suggestion").json()
    assert s["days_past_due"] == 10 and s["past_due_since"] == first_due.isoformat()
    assert s["past_due_what"] == f"interest due {first_due.isoformat()} unpaid"
    assert (s["floor_class"], s["criteria"][0]["code"], s["criteria"][0]["kind"]) == (
        1,
        "days_past_due",
        "rule",
    )
    assert s["criteria"][0]["text_zh"] == "逾期（10天）"
    assert "credit impairment is not recorded on chain: state it with a proposal" in s["unchecked"]

    r = api.post("bank", "/v1/loans/LN-2026-0801/repayments?wait=true", {"amount": "1000.00"})
    assert r.status_code == 201, r.text
    got = r.json()
    penalty = got["penalty"]
    assert penalty > 0  # 10 days at 9% (1.5 x 6%) on 493.15
    assert (got["interest"], got["principal"]) == (interest, 1000_00 - interest - penalty)
    assert got["prepaid_principal"] == got["principal"]  # nothing principal was due yet
    event = next(e for e in got["events"] if e["name"] == "RepaymentApplied")
    assert (event["args"]["principal"], event["args"]["interest"], event["args"]["penalty"]) == (
        got["principal"],
        interest,
        penalty,
    )
    listed = api.get("borrower", "/v1/loans/LN-2026-0801/repayments").json()
    assert (listed[0]["amount"], listed[0]["interest"], listed[0]["penalty"]) == (
        got["principal"],
        interest,
        penalty,
    )
    after = api.get("auditor", "/v1/loans/LN-2026-0801/classification-suggestion").json()
    assert (after["days_past_due"], after["risk_class"]) == (0, 0)

    dashboard_sign_in(api, "bank")
    page = api.http.get("/dashboard/loans/LN-2026-0801")
    assert page.status_code == 200
    assert 'id="servicing"' in page.text and "Days past due" in page.text and "逾期天数" in page.text
    dashboard_sign_in(api, "supplier")
    assert 'id="servicing"' not in api.http.get("/dashboard/loans/LN-2026-0801").text


def test_a_restructuring_says_whether_the_debtor_is_in_financial_difficulty(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0802", principal="5000.00")
    body = {"maturity": "2099-06-30", "terms": {"loan_type": "working_capital"}}
    r = api.post("bank", "/v1/loans/LN-2026-0802/restructure", body)
    assert r.status_code == 422 and "financial_difficulty" in r.text
    r = api.post(
        "bank",
        "/v1/loans/LN-2026-0802/restructure?wait=true",
        body | {"financial_difficulty": True, "change": "collateral_substituted"},
    )
    assert r.status_code == 201, r.text
    assert (r.json()["change"], r.json()["financial_difficulty"]) == ("collateral_substituted", True)
    event = next(e for e in r.json()["events"] if e["name"] == "TermsChanged")
    assert (event["args"]["change"], event["args"]["financialDifficulty"]) == (4, True)
    s = api.get("bank", "/v1/loans/LN-2026-0802/classification-suggestion").json()
    assert s["floor_class"] == 1 and s["criteria"][0]["code"] == "restructured"
    assert s["observation"]["restructured_on"] == _chain_date(api).date().isoformat()


def test_the_migration_matrix_is_a_lenders_own_an_auditors_for_all_and_comes_as_csv_and_a_page(
    api: Api,
) -> None:
    api.open_loan(loan_number="LN-2026-0803", principal="5000.00")
    api.disburse("LN-2026-0803", "supplier", "5000.00")
    today = _chain_date(api).date()
    params = {
        "start": (today + timedelta(days=1)).isoformat(),
        "end": (today + timedelta(days=30)).isoformat(),
    }
    mine = api.get("bank", "/v1/portfolio/migration", params=params)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert (body["loans"], body["rows"][0]["from"], body["classes"]["substandard"]) == (
        1,
        "normal",
        "次级 (substandard)",
    )
    assert body["rows"][0]["to"]["normal"] == {"loans": 1, "balance": 5000_00, "rate": "1.0000"}
    assert api.get("other_bank", "/v1/portfolio/migration", params=params).json()["loans"] == 0
    assert api.get("auditor", "/v1/portfolio/migration", params=params).json()["loans"] >= 1
    refused = api.get("supplier", "/v1/portfolio/migration", params=params)
    assert refused.status_code == 403 and refused.json()["error"] == "PermissionDenied"
    backwards = api.get(
        "bank", "/v1/portfolio/migration", params={"start": params["end"], "end": params["start"]}
    )
    assert backwards.status_code == 422 and "before it starts" in backwards.json()["message"]
    csv_text = api.get("bank", "/v1/portfolio/migration.csv", params=params).text
    lines = csv_text.splitlines()
    assert lines[0] == "period_start,period_end,from,to,loans,balance_CNY,rate"
    assert f"{params['start']},{params['end']},正常 (normal),正常 (normal),1,5000.00,1.0000" in lines
    dashboard_sign_in(api, "bank")
    page = api.http.get("/dashboard/migration", params=params)
    assert page.status_code == 200 and 'id="migration"' in page.text and "100.00%" in page.text


def test_a_loan_opened_with_a_type_and_no_purposes_gets_the_types_default_set(api: Api) -> None:
    body = {
        "loan_number": "LN-2026-0804",
        "borrower": api.address("borrower"),
        "principal": "5000.00",
        "maturity": "2099-01-01",
        "terms": {"loan_type": "working_capital"},
    }
    r = api.post("bank", "/v1/loans?wait=true", body)
    assert r.status_code == 201, r.text
    loan = api.get("bank", "/v1/loans/LN-2026-0804").json()
    codes = {c for c in range(32) if int(loan["allowed_purposes"]) >> c & 1}
    assert codes == {1, 2, 4, 5, 6, 7, 9, 10, 11}  # operating uses; no construction, no real estate
    r = api.post("bank", "/v1/loans", body | {"loan_number": "LN-2026-0805", "terms": {}})
    assert r.status_code == 422
    assert "give allowed_purposes, or a terms.loan_type" in r.text


def test_a_split_is_refused_while_the_mirror_has_not_seen_the_loans_last_change(api: Api) -> None:
    today = _chain_date(api).date()
    terms = {
        "loan_type": "working_capital",
        "interest": {
            "method": "interest_only",
            "annual_rate": "0.05",
            "start_date": (today - timedelta(days=40)).isoformat(),
            "first_due_date": (today - timedelta(days=10)).isoformat(),
            "periods": 6,
        },
    }
    api.open_loan(loan_number="LN-2026-0806", principal="100000.00", terms=terms)
    api.disburse("LN-2026-0806", "supplier", "100000.00")
    loan_id = api.get("bank", "/v1/loans/LN-2026-0806").json()["loan_id"]
    api.indexer.stop_event.set()  # the mirror stops here (the fixture closes the indexer afterwards)
    api.indexer.thread.join(timeout=30)
    api.world.ledger.repay_allocated(
        api.accounts["bank"], loan_id=loan_id, principal=0, interest=1_00, penalty=0, evidence_hash=ZERO_HASH
    )
    r = api.post("bank", "/v1/loans/LN-2026-0806/repayments", {"amount": "500.00"})
    assert r.status_code == 409, r.text
    assert "changed on chain after the mirror's last view of it" in r.json()["message"]
