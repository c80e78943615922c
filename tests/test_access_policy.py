"""The access policy (api/policy.py) is the one answer to "may P do A on R": every /v1 route of the OpenAPI
schema and every dashboard page has an entry, docs/access-policy.md is the same table, and a walk of every
route and page by one participant of each relationship (real app, chain, indexer with the monitor, SQLite)
gets exactly what the table says. Suppliers do not get the borrower's risk file (issue 16, finding 5)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, add_third_party, dashboard_sign_in, signin_csrf
from fastapi import FastAPI
from fastapi.routing import APIRoute

from api import policy
from api.app import create_app
from api.policy import LOAN_PAGE_SECTIONS, POLICY, ROUTES, VOUCHER_POLICY, Grant, Rel
from api.routes import dashboard
from ledger.monitoring.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent
LOAN, OTHER_LOAN = "LN-2026-0301", "LN-2026-0302"
ZERO = "0x" + "11" * 32

# One participant of each relationship to LOAN (Bank A's loan to Borrower Co, with lots at Supplier One);
# OTHER_LOAN is Bank B's loan to its own borrower (Supplier Two). None: no token.
PEOPLE: dict[str | None, Rel] = {
    "bank": Rel.LENDER,
    "other_bank": Rel.OTHER_LENDER,
    "borrower": Rel.BORROWER,
    "supplier": Rel.SUPPLIER,
    "outsider": Rel.ENTERPRISE,
    "auditor": Rel.AUDITOR,
    None: Rel.ANONYMOUS,
    # third parties the lender engaged on LOAN (issue 19), and an appraiser engaged on no loan: it stands to
    # LOAN as an unrelated party
    "appraiser": Rel.APPRAISER,
    "law_firm": Rel.LAW_FIRM,
    "collector": Rel.COLLECTION_AGENCY,
    "idle_appraiser": Rel.ENTERPRISE,
}
ROLE = {"bank": "lender", "other_bank": "lender", "auditor": "auditor", "appraiser": "appraiser",
        "law_firm": "law_firm", "collector": "collection_agency", "idle_appraiser": "appraiser"}  # fmt: skip
BY_ROLE = {"lender": Rel.LENDER, "enterprise": Rel.ENTERPRISE, "auditor": Rel.AUDITOR,
           "appraiser": Rel.APPRAISER, "law_firm": Rel.LAW_FIRM,
           "collection_agency": Rel.COLLECTION_AGENCY}  # fmt: skip
THIRD_PARTIES = {Rel.APPRAISER, Rel.LAW_FIRM, Rel.COLLECTION_AGENCY}
SPARE_FIRM = "Spare Law Firm"  # engaged on LOAN only for the walk to end its engagement
REFUSALS = {"PermissionDenied", "NotFound", "Authentication"}

SPARE_LOAN = "LN-2026-0309"  # LOAN's twin (same lender and borrower) for the dashboard write-off
# A guarantee by a party off the ledger (salted reference), as the policy walk gives and releases it.
GUARANTEE = {
    "guarantor_ref": "0x" + "47" * 32,
    "kind": "joint_surety",
    "amount": "1.00",
    "start": "2026-01-01",
    "expiry": "2099-01-01",
}
REGISTER_ITEM = {
    "item_ref": "walk-1",
    "type": "equipment",
    "description": "walked by the policy test",
    "registration_number": "walk-0001",
    "haircut_bp": 4000,
}


def app_routes(app: FastAPI) -> set[str]:
    """Every route a caller can reach: the OpenAPI schema's operations and the dashboard's pages and forms."""
    found = {f"{m.upper()} {path}" for path, ops in app.openapi()["paths"].items() for m in ops}
    for route in dashboard.router.routes:
        assert isinstance(route, APIRoute)
        found |= {f"{m} {route.path}" for m in route.methods}
    return found


def without_policy(app: FastAPI) -> set[str]:
    return app_routes(app) - set(ROUTES)


# ------------------------------------------------------------------------------------------------ the table


def test_every_api_route_and_dashboard_page_has_exactly_one_policy_entry() -> None:
    app = create_app()
    routes = app_routes(app)
    assert without_policy(app) == set()
    assert set(ROUTES) - routes == set(), "policy entries for routes that no longer exist"
    assert set(ROUTES.values()) <= set(POLICY) | set(VOUCHER_POLICY)
    assert not set(POLICY) & set(VOUCHER_POLICY)
    used = set(ROUTES.values()) | set(LOAN_PAGE_SECTIONS.values()) | {"loan.risk_class", "loan.repayments"}
    assert set(POLICY) - used == set(), "policy rows no route, page or section asks"
    assert set(VOUCHER_POLICY) - used == set(), "voucher policy rows no route or page asks"


def test_a_new_route_without_a_policy_entry_is_found() -> None:
    app = create_app()

    @app.get("/v1/loans/{loan}/guarantors")
    def guarantors(loan: str) -> dict[str, str]:  # pragma: no cover - never called
        return {}

    assert without_policy(app) == {"GET /v1/loans/{loan}/guarantors"}


def test_the_docs_table_is_the_code_table() -> None:
    text = (ROOT / "docs" / "access-policy.md").read_text(encoding="utf-8")
    assert text == policy.policy_markdown(), "regenerate: python -m api.policy > docs/access-policy.md"


def test_actions_on_no_loan_are_answered_by_role_alone() -> None:
    for name, rule in POLICY.items():
        if rule.scope == "caller":
            assert rule.of(Rel.LENDER) == rule.of(Rel.OTHER_LENDER), name
            assert rule.of(Rel.BORROWER) == rule.of(Rel.SUPPLIER) == rule.of(Rel.ENTERPRISE), name


def test_only_public_pages_are_open_without_a_token_and_only_a_loans_lender_services_it() -> None:
    assert [n for n, r in POLICY.items() if r.of(Rel.ANONYMOUS) is not Grant.NO] == ["public"]
    servicing = ("loan.disburse", "loan.restructure", "loan.repay", "loan.classify", "loan.value_collateral")
    for name in (*servicing, "loan.record_visit"):
        assert {r for r in Rel if POLICY[name].of(r) is not Grant.NO} == {Rel.LENDER}, name


def test_a_supplier_gets_none_of_the_borrowers_risk_file_but_the_borrower_does() -> None:
    risk_file = ["loan.terms", "loan.risk_class", "loan.repayments", "loan.collateral", "loan.attestations"]
    for name in risk_file:
        rule = POLICY[name]
        assert rule.of(Rel.SUPPLIER) is Grant.NO, name
        seen_by = {r for r in Rel if rule.of(r) is Grant.YES}
        assert seen_by - THIRD_PARTIES == {Rel.LENDER, Rel.BORROWER, Rel.AUDITOR}, name
    # a third party sees a part of the risk file only where its engagement needs it
    third = {n: {r for r in THIRD_PARTIES if POLICY[n].of(r) is Grant.YES} for n in risk_file}
    assert third == {"loan.terms": set(), "loan.risk_class": set(),
                     "loan.repayments": {Rel.COLLECTION_AGENCY},
                     "loan.collateral": {Rel.APPRAISER, Rel.LAW_FIRM},
                     "loan.attestations": set()}  # fmt: skip
    assert {r for r in Rel if POLICY["loan.appraise"].of(r) is not Grant.NO} == {Rel.APPRAISER}
    for name in ("loan.alerts", "alerts.list", "loan.suggestion", "loan.visits"):
        assert POLICY[name].of(Rel.BORROWER) is Grant.NO, name


# ------------------------------------------------------------------------------------------------ the world


def _post(api: Api, who: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = api.post(who, path + "?wait=true", body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _lot(api: Api, who: str, payee: str, amount: str, loan: str = LOAN, purpose: int = 1) -> str:
    path = f"/v1/loans/{loan}/disbursements"
    body = {"payee": api.address(payee), "amount": amount, "purpose": purpose}
    return str(_post(api, who, path, body)["lot_ids"][0])


@pytest.fixture
def risk_world(api: Api) -> dict[str, Any]:
    """LOAN (Bank A -> Borrower Co) with terms, lots at the supplier and the borrower, two alerts, a
    repayment, a class, a collateral value and an attestation; OTHER_LOAN (Bank B -> Supplier Two)."""
    api.indexer.indexer.after_batch = Monitor().after_batch
    terms = {
        "repayment_schedule": [{"due": "2027-06-30", "amount": "100000.00"}],
        "counterparties": [api.address("supplier")],
        "approval_threshold": "5000.00",
    }
    api.open_loan(loan_number=LOAN, principal="100000.00", terms=terms)
    lots: dict[str, dict[str, str]] = {}
    for who in ("supplier", "borrower"):
        lots[who] = {use: _lot(api, "bank", who, "1000.00") for use in ("pay", "confirm", "dispute")}
        lots[who] |= {f"dash_{use}": _lot(api, "bank", who, "1000.00") for use in ("confirm", "dispute")}
    for n in range(2):  # outside the declared use: the monitor raises an alert for each
        _post(
            api,
            "supplier",
            "/v1/payments",
            {"loan": LOAN, "from_lot": lots["supplier"]["pay"], "payee": api.address("subsupplier")}
            | {"amount": f"{n + 1}.00", "purpose": 29},
        )
    _post(api, "bank", f"/v1/loans/{LOAN}/repayments", {"amount": "10.00"})
    proposal = _post(api, "bank2", f"/v1/loans/{LOAN}/classification", {"risk_class": 1, "reason": "walk"})
    _post(api, "bank", f"/v1/classification-proposals/{proposal['id']}/approve", {})  # maker-checker
    _post(api, "bank", f"/v1/loans/{LOAN}/collateral", {"collateral_id": ZERO, "value": "90000.00"})
    _post(api, "auditor", f"/v1/loans/{LOAN}/attestations", {"report_hash": ZERO})
    api.open_loan(
        "other_bank", loan_number=OTHER_LOAN, principal="5000.00", borrower=api.address("supplier2")
    )
    _lot(api, "other_bank", "supplier2", "500.00", loan=OTHER_LOAN)
    deadline = time.monotonic() + 20
    while len(alerts := api.get("auditor", "/v1/alerts", params={"loan": LOAN}).json()["items"]) < 2:
        assert time.monotonic() < deadline, "the monitor raised no alerts"
        time.sleep(0.05)
    ids = sorted(a["id"] for a in alerts)
    guarantee = _post(api, "bank", f"/v1/loans/{LOAN}/guarantees", GUARANTEE)["record_id"]
    for who, name, role in (("appraiser", "Walk Appraisal Co", "appraiser"),
                            ("law_firm", "Walk Law Firm", "law_firm"),
                            ("collector", "Walk Collections", "collection_agency"),
                            ("idle_appraiser", "Idle Appraisal Co", "appraiser"),
                            ("spare_firm", SPARE_FIRM, "law_firm")):  # fmt: skip
        add_third_party(api, who, name, role)
        if who != "idle_appraiser":
            body = {"participant": name, "role": role, "engaged_on": "2026-12-01", "scope": "the policy walk"}
            _post(api, "bank", f"/v1/loans/{LOAN}/engagements", body)
    item = _post(api, "bank", f"/v1/loans/{LOAN}/collateral-register", REGISTER_ITEM)["item_id"]
    api.open_loan("bank", loan_number=SPARE_LOAN, principal="5000.00")
    _lot(api, "bank", "borrower", "500.00", loan=SPARE_LOAN)
    return {
        "lots": lots,
        "alerts": {"api": ids[0], "dash": ids[1]},
        "guarantee": guarantee,
        "proposal": proposal["id"],
        "item": item,
    }


# ------------------------------------------------------------------------------------------------ the walk


def _grant(action: str, who: str | None) -> Grant:
    rule = POLICY[action]
    rel = PEOPLE[who]
    if rule.scope == "caller" and who is not None:
        rel = BY_ROLE[ROLE.get(who, "enterprise")]
    return rule.of(rel)


def _role_may(action: str, who: str) -> bool:
    """Some relationship of the caller's role has a grant (else the refusal is by role, before any lookup)."""
    role = ROLE.get(who, "enterprise")
    rels = {
        "lender": (Rel.LENDER, Rel.OTHER_LENDER),
        "enterprise": (Rel.BORROWER, Rel.SUPPLIER, Rel.ENTERPRISE),
        "auditor": (Rel.AUDITOR,),
        "appraiser": (Rel.APPRAISER,),
        "law_firm": (Rel.LAW_FIRM,),
        "collection_agency": (Rel.COLLECTION_AGENCY,),
    }[role]
    return any(POLICY[action].of(r) is not Grant.NO for r in rels)


def _lot_of(world: dict[str, Any], who: str | None, use: str) -> str:
    return str(world["lots"].get(who, world["lots"]["supplier"])[use])


def _owns(world: dict[str, Any], who: str | None, action: str) -> bool:
    """Whether the caller has its own part for an "own" write (a lot paid to it, a lot it may spend)."""
    if action in ("lot.confirm", "lot.dispute"):
        return who in world["lots"]
    if action == "payments.pay":
        return who in ("bank", "supplier", "borrower")
    return True


def _request(api: Api, world: dict[str, Any], route: str, who: str | None) -> tuple[str, str, Any]:
    """(method, concrete path, body) for one route and one caller: the caller's own resources where it has
    them (its lots, its uploaded document, the alert set aside for the API or the dashboard)."""
    method, path = route.split(" ", 1)
    on_dashboard = path.startswith("/dashboard")
    lot_use = {"confirm": "confirm", "dispute": "dispute"}.get(path.rsplit("/", 1)[-1], "pay")
    if on_dashboard and lot_use != "pay":
        lot_use = f"dash_{lot_use}"
    digest = world["documents"].get(who) or world["documents"]["bank"]
    if route == "POST /dashboard/loans/{loan}/write-off":  # the API's write-off closed LOAN: use its twin
        path = path.replace("{loan}", SPARE_LOAN)
    concrete = (
        path.replace("{loan}", LOAN)
        .replace("{lot_id}", _lot_of(world, who, lot_use))
        .replace("{alert_id}", str(world["alerts"]["dash" if on_dashboard else "api"]))
        .replace("{digest}", digest)
        .replace("{lang}", "en")
        .replace("{kind}", "csv")
        .replace("{record_id}", world["guarantee"])
        .replace("{item_id}", world["item"])
        .replace("{participant}", SPARE_FIRM)
        .replace("{proposal_id}", str(world.get("proposal", 0)))
    )
    from_lot = _lot_of(world, who, "pay")
    payment = {"from_lot": from_lot, "payee": api.address("subsupplier"), "amount": "0.01", "purpose": 1}
    bodies: dict[str, Any] = {
        "POST /v1/loans": {
            "borrower": api.address("borrower"),
            "principal": "0.05",
            "allowed_purposes": [1],
            "maturity": "2099-01-01",
        },
        "POST /v1/loans/{loan}/disbursements": {
            "payee": api.address("supplier"),
            "amount": "0.01",
            "purpose": 1,
        },
        "POST /v1/loans/{loan}/restructure": {
            "maturity": "2099-06-30",
            "terms": {"repayment_schedule": [{"due": "2099-06-30", "amount": "1.00"}]},
            "financial_difficulty": False,
        },
        "POST /v1/loans/{loan}/repayments": {"amount": "0.01"},
        "POST /v1/loans/{loan}/classification": {"risk_class": 1, "reason": "walked by the policy test"},
        "POST /v1/loans/{loan}/collateral": {"collateral_id": ZERO, "value": "0.01"},
        "POST /v1/loans/{loan}/attestations": {"report_hash": ZERO},
        "POST /v1/payments": {"loan": LOAN} | payment,
        "POST /v1/payments/batch": {"loan": LOAN, "payments": [payment]},
        "POST /v1/lots/{lot_id}/confirm": {"evidence_hash": ZERO},
        "POST /v1/lots/{lot_id}/dispute": {"reason_hash": ZERO},
        "POST /v1/alerts/{alert_id}/acknowledge": {},
        "POST /v1/alerts/{alert_id}/resolve": {"note": "walked by the policy test"},
        "POST /dashboard/alerts/{alert_id}/resolve": {"note": "walked by the policy test"},
        "POST /dashboard/lots/{lot_id}/dispute": {"reason": "walked by the policy test"},
        "POST /dashboard/signin": {"token": api.tokens[who]} if who else {},
        "POST /v1/loans/{loan}/guarantees": GUARANTEE | {"amount": "2.00"},
        "POST /v1/loans/{loan}/guarantees/{record_id}/release": {"reason": "walked by the policy test"},
        "POST /v1/loans/{loan}/write-off": {"reason": "walked by the policy test"},
        "POST /v1/loans/{loan}/preservation": {
            "case_ref": "walk-1",
            "kind": "litigation",
            "court": "walked by the policy test",
            "ruling_date": "2026-12-01",
            "seized_assets": ["walked by the policy test"],
        },
        "POST /dashboard/loans/{loan}/write-off": {"reason": "walked by the policy test"},
        "POST /v1/loans/{loan}/recoveries": {"amount": "1.00", "received_on": "2026-12-01", "source": "walk"},
        "POST /v1/loans/{loan}/visits": {
            "kind": "video_interview",
            "visit_date": "2026-12-01",
            "attendees": ["walked by the policy test"],
            "findings": "walked by the policy test",
        },
        "POST /v1/loans/{loan}/collateral-register": REGISTER_ITEM | {"item_ref": "walk-2"},
        "POST /v1/loans/{loan}/collateral-register/{item_id}/appraisals": {
            "value": "1.00",
            "valued_on": "2026-12-01",
            "method": "walked by the policy test",
        },
        "POST /v1/loans/{loan}/engagements": {
            "participant": SPARE_FIRM,
            "role": "law_firm",
            "engaged_on": "2026-12-01",
            "scope": "walked by the policy test",
        },
        "POST /v1/loans/{loan}/engagements/{participant}/end": {
            "ended_on": "2026-12-01",
            "reason": "walked by the policy test",
        },
        "POST /dashboard/loans/{loan}/collateral-register/{item_id}/appraisals": {
            "value": "1.00",
            "valued_on": "2026-12-01",
            "method": "walked by the policy test",
        },
        "POST /dashboard/loans/{loan}/visits": {
            "kind": "video_interview",
            "visit_date": "2026-12-01",
            "attendees": "walked by the policy test",
            "findings": "walked by the policy test",
        },
    }
    return method, concrete, bodies.get(route, {})


def _visible(world: dict[str, Any], route: str, who: str) -> bool:
    """Whether the caller sees the resource the route names at all (else a GET of it is a 404)."""
    if "{alert_id}" in route:
        return _grant("alert.read", who) is not Grant.NO
    if "{lot_id}" in route:
        return _grant("lot.read", who) is Grant.YES or who in world["lots"]
    if "{loan}" in route:
        return _grant("loan.summary", who) is not Grant.NO
    return True


def _check_api(api: Api, world: dict[str, Any], route: str, who: str | None) -> None:
    action = ROUTES[route]
    method, path, body = _request(api, world, route, who)
    if route == "POST /v1/documents":
        headers = api.auth(who) if who else {}
        r = api.http.post(path, content=f"document of {who}".encode(), headers=headers)
        if r.status_code == 201:
            world["documents"][who] = r.json()["hash"]
    else:
        headers = api.auth(who) if who else {}
        if method == "GET":
            r = api.http.get(path, headers=headers)
        else:
            r = api.http.post(path + "?wait=true", json=body, headers=headers)
    grant, case = _grant(action, who), (route, who, r.status_code, r.text[:300])
    is_json = r.headers.get("content-type", "").startswith("application/json")
    error = r.json().get("error") if is_json and isinstance(r.json(), dict) else None
    if who is None:
        if grant is Grant.NO:
            assert (r.status_code, error) == (401, "Authentication"), case
        else:
            assert r.status_code == 200, case
        return
    if grant is Grant.NO:
        if not _role_may(action, who):
            assert (r.status_code, error) == (403, "PermissionDenied"), case
        elif method == "GET" and not _visible(world, route, who):
            assert (r.status_code, error) == (404, "NotFound"), case
        elif method == "GET":
            assert (r.status_code, error) == (403, "PermissionDenied"), case
        else:  # a write on something the caller does not service: refused, found or not
            assert r.status_code in (403, 404) and error in REFUSALS, case
        return
    if grant is Grant.OWN and not _owns(world, who, action):
        assert r.status_code < 500, case  # nothing of its own: the service or the contract refuses
        return
    if method == "GET":
        assert r.status_code == 200, case
    else:
        assert r.status_code < 300 or error not in REFUSALS, case


def _check_page(api: Api, world: dict[str, Any], route: str, who: str | None, csrf: str) -> None:
    action = ROUTES[route]
    method, path, form = _request(api, world, route, who)
    if route == "POST /dashboard/signin":  # the sign-in form carries its own CSRF token (login CSRF)
        form = form | {"signin_csrf": signin_csrf(api.http)}
    if method == "GET":
        r = api.http.get(path, follow_redirects=False)
    else:
        r = api.http.post(
            path, data=form | {"csrf": csrf, "back": "/dashboard/loans"}, follow_redirects=False
        )
    grant, case = _grant(action, who), (route, who, r.status_code, r.headers.get("location"), r.text[:300])
    if action == "public":
        assert r.status_code in (200, 303) or (route, who) == ("POST /dashboard/signin", None), case
        return
    if who is None:
        assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/signin"), case
        return
    if method == "POST":
        location = r.headers.get("location", "")
        assert r.status_code == 303, case
        if grant is Grant.NO or not _owns(world, who, action):
            assert "error=" in location, case
        else:
            assert "msg=" in location, case
        return
    if grant is Grant.NO:
        expected = 404 if _role_may(action, who) and not _visible(world, route, who) else 403
        assert r.status_code == expected, case
        return
    assert r.status_code == 200, case
    if route == "GET /dashboard/loans/{loan}":
        for section, section_action in LOAN_PAGE_SECTIONS.items():
            shown = f'id="{section}"' in r.text
            assert shown == (_grant(section_action, who) is not Grant.NO), (section, *case)
        assert ('id="loan-risk-class"' in r.text) == (_grant("loan.risk_class", who) is not Grant.NO), case


def test_every_route_and_page_answers_every_relationship_as_the_table_says(
    api: Api, risk_world: dict[str, Any]
) -> None:
    world = risk_world | {"documents": {}}
    world["documents"]["bank"] = api.http.post(
        "/v1/documents", content=b"bank's document", headers=api.auth("bank")
    ).json()["hash"]
    # voucher routes stand in relationships of their own: tests/test_vouchers_api.py walks them
    vouchers = {r for r, action in ROUTES.items() if action in VOUCHER_POLICY}
    api_routes = [r for r in ROUTES if r.split(" ", 1)[1].startswith("/v1") and r not in vouchers]
    pages = [r for r in ROUTES if r not in api_routes and r not in vouchers]
    assert set(api_routes) | set(pages) | vouchers == app_routes(create_app())
    for route in api_routes:
        for who in PEOPLE:
            _check_api(api, world, route, who)
    session_routes = ("POST /dashboard/signin", "POST /dashboard/signout")
    for who in PEOPLE:
        api.http.cookies.clear()
        csrf = dashboard_sign_in(api, who) if who else ""
        for route in pages:
            if route not in session_routes:
                _check_page(api, world, route, who, csrf)
        for route in session_routes:  # last: they end and start the session
            _check_page(api, world, route, who, csrf)
    # the walk did what the table allows: the supplier's and the borrower's own answers are on chain
    for who in ("supplier", "borrower"):
        for use, state in (("confirm", "confirmed"), ("dash_confirm", "confirmed"), ("dispute", "disputed")):
            lot = api.get(who, f"/v1/lots/{world['lots'][who][use]}").json()
            assert lot["confirmation"] == state, (who, use, lot)


# ------------------------------------------------------------------------------------------------ finding 5


def test_a_supplier_is_refused_the_borrowers_risk_file_with_the_reason(
    api: Api, risk_world: dict[str, Any]
) -> None:
    what = {
        "terms": "see the terms (schedule, counterparties, approval threshold)",
        "repayments": "see repayments",
        "classifications": "see the risk class and its history",
        "collateral": "see collateral values",
        "attestations": "see attestations",
    }
    for part, text in what.items():
        r = api.get("supplier", f"/v1/loans/{LOAN}/{part}")
        assert r.status_code == 403, (part, r.text)
        assert r.json() == {
            "error": "PermissionDenied",
            "message": f"Only the loan's lender, its borrower and auditors can {text} of loan {LOAN}; "
            "Supplier One takes part in its trail only.",
            "hint": "The terms, repayments, risk class, collateral and attestations are the borrower's risk "
            "file; GET /v1/loans/{loan}/trail shows your part.",
        }
        for who in ("bank", "borrower", "auditor"):
            r = api.get(who, f"/v1/loans/{LOAN}/{part}")
            assert r.status_code == 200, (who, part, r.text)
            assert r.json(), (who, part)  # the world has one of each
    terms = api.get("borrower", f"/v1/loans/{LOAN}/terms").json()["terms"]
    assert terms["approval_threshold"] and terms["counterparties"] == [api.address("supplier")]


def test_a_suppliers_loan_summary_leaves_out_the_class_and_what_was_repaid(
    api: Api, risk_world: dict[str, Any]
) -> None:
    risk = ("risk_class", "repaid", "outstanding")
    for source in (f"/v1/loans/{LOAN}", f"/v1/loans/{LOAN}/trail"):
        seen = api.get("supplier", source).json()
        seen = seen.get("loan", seen)
        assert {k: seen[k] for k in risk} == dict.fromkeys(risk), source
        full = api.get("borrower", source).json()
        full = full.get("loan", full)
        assert (full["risk_class"], full["repaid"]) == (1, 1000), source
        assert full["outstanding"] == full["disbursed"] - 1000, source
    listed = api.get("supplier", "/v1/loans").json()["items"]
    assert [(i["loan_number"], i["risk_class"], i["repaid"]) for i in listed] == [(LOAN, None, None)]
    # nor can it learn the class by filtering on it
    assert api.get("supplier", "/v1/loans", params={"risk_class": 1}).json()["total"] == 0
    assert api.get("borrower", "/v1/loans", params={"risk_class": 1}).json()["total"] == 1


def test_a_suppliers_dashboard_shows_its_part_of_the_trail_without_the_risk_file(
    api: Api, risk_world: dict[str, Any]
) -> None:
    dashboard_sign_in(api, "supplier")
    page = api.http.get(f"/dashboard/loans/{LOAN}")
    assert page.status_code == 200
    assert 'id="lots"' in page.text
    for hidden in ("repayments", "classifications", "collateral", "attestations", "loan-alerts"):
        assert f'id="{hidden}"' not in page.text, hidden
    assert 'id="verification"' not in page.text and 'id="loan-risk-class"' not in page.text
    listed = api.http.get("/dashboard/loans")
    assert re.search(rf'href="/dashboard/loans/{LOAN}"', listed.text)
    assert "risk risk-" not in listed.text
    assert LOAN not in api.http.get("/dashboard/loans", params={"risk": "1"}).text

    dashboard_sign_in(api, "borrower")
    page = api.http.get(f"/dashboard/loans/{LOAN}")
    for shown in ("repayments", "classifications", "collateral", "attestations", "verification"):
        assert f'id="{shown}"' in page.text, shown
    assert 'id="loan-risk-class"' in page.text and 'id="loan-alerts"' not in page.text
