"""Supply-chain vouchers through the API (issue 22) on the real chain, the real indexer and the `db_url`
database (SQLite and PostgreSQL): a bank sets the core enterprise's credit line; the core enterprise (the
cast's borrower, the large buyer) issues a voucher to its tier-1 supplier (确权); the supplier splits it down
to tier 2 and tier 3; a tier-2 supplier has its part financed at a bank at a discount (贴现); at maturity the
core enterprise settles every part to whoever holds it (到期兑付); a part of a second voucher is left unpaid
past maturity (到期未兑付). Every wrong-role action is refused with a sentence naming who may instead, and
every voucher route answers every relationship as api/policy.py's VOUCHER_POLICY says.

A node of this module's own: settling at maturity moves the clock by months, which on the shared node would
put every later test's maturities in the past."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from api_support import Api
from conftest import h, make_world
from file_support import DAY, FileSite, file_site

from api.policy import ROUTES, VOUCHER_POLICY, Grant, VRel
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.deploy import deploy_vouchers

CORE = "borrower"  # Borrower Co: the core enterprise (核心企业), the large buyer at the centre of the chain


@dataclass
class VoucherSite:
    site: FileSite
    due: str = ""

    @property
    def api(self) -> Api:
        return self.site.api


@pytest.fixture
def vsite(
    private_client: ChainClient, compiled: CompiledContract, db_url: str, tmp_path: Path
) -> Iterator[VoucherSite]:
    world = make_world(private_client, compiled)
    world.deployment = deploy_vouchers(private_client, world.cast.operator, world.deployment)
    with file_site(world, private_client, db_url, tmp_path) as s:
        yield VoucherSite(s)


def ok(r: Any, status: int = 201) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def refused(r: Any, status: int, *words: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = dict(r.json())
    for word in words:
        assert word in body["message"], (word, body)
    return body


def post(api: Api, who: str, path: str, body: dict[str, Any]) -> Any:
    return api.post(who, path + "?wait=true", body)


def maturity(site: FileSite, days: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(site.chain_time() + days * DAY, UTC).date().isoformat()


def _line_and_voucher(v: VoucherSite, face: str = "300000.00", days: int = 90) -> str:
    api = v.api
    v.due = maturity(v.site, days)
    body = {"core": "Borrower Co", "limit": "1000000.00", "expiry": maturity(v.site, 365)}
    ok(post(api, "bank", "/v1/vouchers/credit-lines", body))
    issued = ok(
        post(
            api,
            CORE,
            "/v1/vouchers",
            {
                "holder": api.address("supplier"),
                "face_value": face,
                "maturity": v.due,
                "invoice_hash": h("invoice:INV-2026-0042"),
            },
        )
    )
    assert issued["part_id"] == 1 and issued["mirrored"] is True
    return str(issued["voucher_id"])


# ------------------------------------------------------------------------------------------------ the life


def test_a_vouchers_whole_life_through_the_api(vsite: VoucherSite) -> None:
    api = vsite.api
    voucher = _line_and_voucher(vsite)
    parts = f"/v1/vouchers/{voucher}/parts"

    # tier 1 passes 120,000.00 to tier 2, which passes 50,000.00 on to tier 3: a three-level tree
    split = ok(post(api, "supplier", f"{parts}/1/split", {"transfers": [
        {"to": api.address("supplier2"), "amount": "120000.00"}]}))  # fmt: skip
    # a new part's number is its head's low 32 bits (no counter on chain), so the answer names it
    (two,) = [p["part_id"] for p in split["parts"]]
    assert [(p["holder_name"], p["amount_yuan"]) for p in split["parts"]] == [("Supplier Two", "120000.00")]
    split = ok(post(api, "supplier2", f"{parts}/{two}/split", {"transfers": [
        {"to": api.address("subsupplier"), "amount": "50000.00"}]}))  # fmt: skip
    (three,) = [p["part_id"] for p in split["parts"]]

    # tier 2 has its remaining 70,000.00 financed at Bank B at 3.65% a year
    ok(post(api, "supplier2", f"{parts}/{two}/financing", {"bank": "Bank B", "discount_rate_bps": 365}))
    accepted = ok(post(api, "other_bank", f"{parts}/{two}/financing/accept", {}))
    terms = accepted["financing"]
    assert terms["face_yuan"] == "70000.00" and terms["discount_rate_bps"] == 365
    # 贴现利息 = 票面金额 × 年贴现率 × 贴现天数 / 360, half up to the fen
    assert terms["interest"] == (7_000_000 * 365 * terms["days"] + 1_800_000) // 3_600_000
    assert terms["paid"] == 7_000_000 - terms["interest"]

    # not due yet: the core enterprise pays at maturity, not before
    refused(post(api, CORE, f"{parts}/1/settle", {}), 409, "not due yet")

    # the tree as the core enterprise sees it: holders' names, yuan, dates, states
    tree = ok(api.get(CORE, f"/v1/vouchers/{voucher}"), 200)
    assert (tree["core_name"], tree["face_value_yuan"], tree["status"]) == (
        "Borrower Co",
        "300000.00",
        "outstanding",
    )
    assert tree["maturity_date"] == vsite.due and tree["partial"] is False and tree["block_time"]
    assert [(p["part_id"], p["parent_part_id"], p["holder_name"], p["amount_yuan"], p["remaining_yuan"],
             p["status"]) for p in tree["parts"]] == [
        (1, None, "Supplier One", "300000.00", "180000.00", "held"),
        (two, 1, "Bank B", "120000.00", "70000.00", "financed"),
        (three, two, "Sub Supplier", "50000.00", "50000.00", "held"),
    ]  # fmt: skip
    assert tree["parts"][1]["financing"]["seller_name"] == "Supplier Two"
    # the tier-3 supplier sees its branch: its part and those above it, not who else holds what
    branch = ok(api.get("subsupplier", f"/v1/vouchers/{voucher}"), 200)
    assert branch["partial"] is True and [p["part_id"] for p in branch["parts"]] == [1, two, three]
    mine = ok(api.get("supplier", f"/v1/vouchers/{voucher}"), 200)
    assert [p["part_id"] for p in mine["parts"]] == [1, two]  # its own, and the part it passed on
    refused(api.get("outsider", f"/v1/vouchers/{voucher}"), 404, "no voucher")

    # per caller: the core's payables against its line; a supplier's parts; a bank's book and exposure
    core = ok(api.get(CORE, "/v1/vouchers"), 200)
    assert core["view"] == "core" and core["credit_line"]["used_yuan"] == "300000.00"
    assert (
        core["credit_line"]["available_yuan"] == "700000.00" and core["credit_line"]["bank_name"] == "Bank A"
    )
    assert [(v["voucher_id"], v["outstanding_yuan"], v["maturity_date"]) for v in core["payables"]] == [
        (voucher, "300000.00", vsite.due)
    ]
    held = ok(api.get("subsupplier", "/v1/vouchers"), 200)
    assert held["view"] == "supplier"
    assert [(p["part_id"], p["remaining_yuan"], p["may_finance"]) for p in held["parts"]] == [
        (three, "50000.00", True)
    ]
    book = ok(api.get("other_bank", "/v1/vouchers"), 200)
    assert [(b["part_id"], b["requester_name"], b["face_yuan"], b["paid_yuan"]) for b in book["book"]] == [
        (two, "Supplier Two", "70000.00", terms["paid_yuan"])
    ]
    assert [(e["core_name"], e["financed_yuan"], e["limit_yuan"]) for e in book["exposure"]] == [
        ("Borrower Co", "70000.00", None)
    ]
    line_bank = ok(api.get("bank", "/v1/vouchers/exposure"), 200)
    assert [(e["core_name"], e["limit_yuan"], e["outstanding_yuan"]) for e in line_bank] == [
        ("Borrower Co", "1000000.00", "300000.00")
    ]
    assert len(ok(api.get("auditor", "/v1/vouchers/financing-book"), 200)) == 1
    refused(api.get("supplier", "/v1/vouchers/financing-book"), 403, "Only lenders or auditors")

    vsite.site.advance(91)
    for part, holder, amount in ((1, "supplier", "180000.00"), (two, "other_bank", "70000.00"),
                                 (three, "subsupplier", "50000.00")):  # fmt: skip
        paid = ok(post(api, CORE, f"{parts}/{part}/settle", {}))
        assert (paid["paid_to"], paid["amount_yuan"]) == (api.address(holder), amount), part
    refused(post(api, CORE, f"{parts}/1/settle", {}), 409, "Part 1 is settled")
    tree = ok(api.get("auditor", f"/v1/vouchers/{voucher}"), 200)
    assert tree["status"] == "settled" and {p["status"] for p in tree["parts"]} == {"settled"}
    # the whole life verifies against the chain (part A's verify_voucher), for those who see every branch
    for who in (CORE, "bank", "auditor"):
        checked = ok(api.get(who, f"/v1/vouchers/{voucher}/verification"), 200)
        assert checked["ok"] is True and checked["problems"] == [] and checked["block_time"], checked
    refused(api.get("subsupplier", f"/v1/vouchers/{voucher}/verification"), 403, "covers every branch")
    # and its proof bundle verifies offline against the block it names, pinned to this deployment
    from ledger.audit.bundle import LedgerPin, verify_bundle

    r = api.get("auditor", f"/v1/vouchers/{voucher}/bundle")
    assert r.status_code == 200 and "fundflow-voucher-bundle-" in r.headers["content-disposition"], r.text
    proven = verify_bundle(
        r.text,
        trusted_block_hash=r.json()["header"]["hash"],
        pin=LedgerPin.of_deployment(api.services.deployment),
    )
    assert proven.proven and proven.subject == "voucher" and proven.loan_id == voucher
    assert [e.name for e in proven.events].count("PartSettled") == 3
    refused(api.get("subsupplier", f"/v1/vouchers/{voucher}/bundle"), 403, "covers every branch")
    refused(api.get("outsider", f"/v1/vouchers/{voucher}/verification"), 404, "no voucher")
    core = ok(api.get(CORE, "/v1/vouchers"), 200)
    assert core["credit_line"]["used_yuan"] == "0.00"  # settling frees the line


def test_a_part_left_unpaid_past_maturity_is_overdue(vsite: VoucherSite) -> None:
    api = vsite.api
    voucher = _line_and_voucher(vsite, face="100000.00", days=30)
    parts = f"/v1/vouchers/{voucher}/parts"
    split = ok(post(api, "supplier", f"{parts}/1/split", {"transfers": [
        {"to": api.address("supplier2"), "amount": "40000.00"}]}))  # fmt: skip
    (two,) = [p["part_id"] for p in split["parts"]]
    vsite.site.advance(31)
    ok(post(api, CORE, f"{parts}/1/settle", {}))
    tree = ok(api.get(CORE, f"/v1/vouchers/{voucher}"), 200)
    assert tree["status"] == "overdue" and tree["status_label_zh"] == "到期未兑付"
    assert [(p["part_id"], p["status"]) for p in tree["parts"]] == [(1, "settled"), (two, "overdue")]
    held = ok(api.get("supplier2", "/v1/vouchers"), 200)
    assert [(p["part_id"], p["status"], p["may_finance"]) for p in held["parts"]] == [(two, "overdue", False)]
    # the monitor raises the alert on the unpaid part (part A's rule); the voucher's answer carries it
    from file_support import eventually

    def open_alerts() -> list[Any]:
        alerts = ok(api.get(CORE, f"/v1/vouchers/{voucher}"), 200)["alerts"]
        return [(a["rule_zh"], a["part_id"]) for a in alerts if a["state"] == "open"]

    assert eventually(open_alerts, "the overdue alert") == [("到期未兑付", two)]
    # the bank of the line sees it among its alerts (with the voucher's page one click away); another bank not
    listed = ok(api.get("bank", "/v1/alerts", params={"rule": "voucher_part_overdue", "state": "open"}), 200)
    assert [(a["loan_id"], a["rule_zh"], a["cause_key"]) for a in listed["items"]] == [
        (voucher, "到期未兑付", f"part:{two}")
    ]
    alert_id = listed["items"][0]["id"]
    assert ok(api.get("other_bank", "/v1/alerts", params={"rule": "voucher_part_overdue"}), 200)["total"] == 0
    refused(api.post("bank", f"/v1/alerts/{alert_id}/resolve", {"note": "paid"}), 403, "resolves when")
    from api_support import dashboard_sign_in

    dashboard_sign_in(api, "bank")
    assert f'href="/dashboard/vouchers/{voucher}"' in api.http.get("/dashboard/alerts").text
    # part 1, settled, has no open alert (one raised at maturity before the settlement is resolved by it)
    alerts = ok(api.get(CORE, f"/v1/vouchers/{voucher}"), 200)["alerts"]
    assert all(a["state"] == "resolved" for a in alerts if a["part_id"] == 1)
    # past maturity a part can no longer be financed
    r = refused(
        post(api, "supplier2", f"{parts}/{two}/financing", {"bank": "Bank A", "discount_rate_bps": 300}), 409
    )
    assert r["error"] == "VoucherMatured"


def test_the_credit_line_bounds_what_the_core_enterprise_issues(vsite: VoucherSite) -> None:
    api = vsite.api
    _line_and_voucher(vsite, face="900000.00")
    body = {
        "holder": api.address("supplier"),
        "face_value": "100000.01",
        "maturity": maturity(vsite.site, 30),
        "invoice_hash": h("invoice:INV-2026-0043"),
    }
    r = refused(post(api, CORE, "/v1/vouchers", body), 409, "beyond its credit line of 1,000,000.00")
    assert r["error"] == "CreditLineExceeded" and "(授信额度)" in r["message"]
    # a retry with the same Idempotency-Key replays the first answer (the same voucher), records nothing more
    fits = body | {"face_value": "100000.00"}
    first = api.post(CORE, "/v1/vouchers?wait=true", fits, key="issue-once")
    again = api.post(CORE, "/v1/vouchers?wait=true", fits, key="issue-once")
    assert (
        ok(first)["voucher_id"] == ok(again)["voucher_id"] and again.headers["Idempotent-Replayed"] == "true"
    )
    # a line below what is outstanding is refused; another bank cannot change it
    line = {"core": "Borrower Co", "limit": "500000.00", "expiry": maturity(vsite.site, 365)}
    refused(post(api, "bank", "/v1/vouchers/credit-lines", line), 409, "below what the core enterprise has")
    refused(post(api, "other_bank", "/v1/vouchers/credit-lines", line | {"limit": "2000000.00"}), 403,
            "granted by another bank")  # fmt: skip


# ------------------------------------------------------------------------------------------------ refusals


def test_every_wrong_role_action_is_refused_saying_who_may(vsite: VoucherSite) -> None:
    api = vsite.api
    voucher = _line_and_voucher(vsite)
    parts = f"/v1/vouchers/{voucher}/parts"
    transfer = {"transfers": [{"to": api.address("supplier2"), "amount": "1.00"}]}
    issue = {"holder": api.address("supplier"), "face_value": "1.00", "maturity": maturity(vsite.site, 30)}
    issue["invoice_hash"] = h("invoice:INV-2026-0044")

    refused(post(api, "bank", "/v1/vouchers", issue), 403, "Only enterprises can issue vouchers (确权)")
    refused(post(api, "auditor", "/v1/vouchers", issue), 403, "Auditor LLP is registered as auditor")
    # an enterprise without a credit line: the contract refuses, decoded
    r = refused(post(api, "supplier", "/v1/vouchers", issue), 409, "has no credit line")
    assert r["error"] == "CreditLineNotFound"
    line = {"core": "Borrower Co", "limit": "1.00", "expiry": maturity(vsite.site, 30)}
    refused(
        post(api, CORE, "/v1/vouchers/credit-lines", line), 403, "Only lenders can set a core enterprise's"
    )

    # split: only the part's holder
    only_holders = "Only a holder of a part can split and transfer parts"
    as_core = "Borrower Co stands to it as core"
    refused(post(api, CORE, f"{parts}/1/split", transfer), 403, only_holders, as_core)
    refused(post(api, "outsider", f"{parts}/1/split", transfer), 403, "as unrelated enterprise")
    refused(post(api, "bank", f"{parts}/1/split", transfer), 403, "Only enterprises can split")
    ok(post(api, "supplier", f"{parts}/1/split", transfer))
    refused(
        post(api, "supplier2", f"{parts}/1/split", transfer), 403, "Part 1 of voucher", "held by Supplier One"
    )

    # financing: the holder asks; only the bank asked accepts
    ask = {"bank": "Bank A", "discount_rate_bps": 300}
    refused(post(api, "supplier2", f"{parts}/1/financing", ask), 403, "held by Supplier One")
    refused(
        post(api, "supplier", f"{parts}/1/financing", ask | {"bank": "Supplier Two"}), 422, "not as a bank"
    )
    refused(post(api, "bank", f"{parts}/1/financing/accept", {}), 403, "was not offered to any bank")
    ok(post(api, "supplier", f"{parts}/1/financing", ask))
    refused(post(api, "other_bank", f"{parts}/1/financing/accept", {}), 403,
            "Only the bank of its credit line or a bank asked to finance a part can accept")  # fmt: skip
    refused(post(api, "supplier", f"{parts}/1/financing/accept", {}), 403, "Only lenders can accept")

    # settle: only the core enterprise
    for who, words in (("supplier", "Only the voucher's core enterprise can settle"),
                       ("bank", "Only enterprises can settle"),
                       ("auditor", "registered as auditor")):  # fmt: skip
        refused(post(api, who, f"{parts}/1/settle", {}), 403, words)

    # a voucher or part that does not exist
    refused(post(api, "supplier", f"/v1/vouchers/{h('nothing')}/parts/1/split", transfer), 404, "no voucher")
    refused(post(api, "supplier", f"{parts}/9/split", transfer), 404, "has no part 9")
    # bad input: a number for an amount, a bad date, no recipients
    r = post(
        api, "supplier", f"{parts}/2/split", {"transfers": [{"to": api.address("subsupplier"), "amount": 5}]}
    )
    assert r.status_code == 422 and "decimal strings in yuan" in r.text
    r = post(
        api, "bank", "/v1/vouchers/credit-lines", {"core": "Borrower Co", "limit": "1.00", "expiry": "soon"}
    )
    assert r.status_code == 422 and "YYYY-MM-DD" in r.text
    r = post(api, CORE, "/v1/vouchers", issue | {"maturity": "30/06/2027"})
    assert r.status_code == 422 and "ISO date like" in r.text
    assert post(api, "supplier2", f"{parts}/2/split", {"transfers": []}).status_code == 422


def test_third_parties_get_no_voucher_menu_and_are_refused_by_role(vsite: VoucherSite) -> None:
    from api_support import add_third_party, dashboard_sign_in

    api = vsite.api
    add_third_party(api, "appraiser", "Voucher Walk Appraisal Co", "appraiser")
    r = refused(api.get("appraiser", "/v1/vouchers"), 403, "registered as appraiser")
    assert "Only enterprises or lenders or auditors can list vouchers" in r["message"]
    dashboard_sign_in(api, "appraiser")
    assert 'id="nav-vouchers"' not in api.http.get("/dashboard/loans").text
    assert api.http.get("/dashboard/vouchers").status_code == 403
    dashboard_sign_in(api, "supplier")
    assert 'id="nav-vouchers"' in api.http.get("/dashboard/loans").text


def test_the_voucher_policy_is_complete_and_consistent() -> None:
    voucher_routes = {r for r, action in ROUTES.items() if action in VOUCHER_POLICY}
    assert {ROUTES[r] for r in voucher_routes} == set(VOUCHER_POLICY)
    for name, rule in VOUCHER_POLICY.items():
        assert rule.of(VRel.ANONYMOUS) is Grant.NO, name
        if rule.scope == "caller":  # answered by role alone
            banks = {rule.of(r) for r in (VRel.LINE_BANK, VRel.FINANCING_BANK, VRel.OTHER_LENDER)}
            firms = {rule.of(r) for r in (VRel.CORE, VRel.HOLDER, VRel.ENTERPRISE)}
            assert len(banks) == 1 and len(firms) == 1, name
    # the whole tree (verification): the core's, the line bank's, auditors'; a holder gets its branch
    whole = VOUCHER_POLICY["voucher.verification"]
    assert {r for r in VRel if whole.of(r) is Grant.YES} == {VRel.CORE, VRel.LINE_BANK, VRel.AUDITOR}
    assert VOUCHER_POLICY["voucher.read"].of(VRel.HOLDER) is Grant.OWN
    assert {r for r in VRel if VOUCHER_POLICY["voucher.settle"].of(r) is not Grant.NO} == {VRel.CORE}


# ------------------------------------------------------------------------------------------------ dashboard


def test_the_dashboard_shows_each_role_its_view_and_takes_the_forms(vsite: VoucherSite) -> None:
    from api_support import dashboard_sign_in

    api = vsite.api
    voucher = _line_and_voucher(vsite)
    page = f"/dashboard/vouchers/{voucher}"
    csrf = dashboard_sign_in(api, "supplier")
    listed = api.http.get("/dashboard/vouchers")
    assert listed.status_code == 200 and 'id="parts-held"' in listed.text and 'class="finance"' in listed.text
    r = api.http.post(
        f"{page}/parts/1/financing",
        data={"csrf": csrf, "back": page, "bank": "Bank A", "rate_bps": "365"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers.get("location")
    shown = api.http.get(page)
    assert shown.status_code == 200 and '<svg class="flow"' in shown.text and "Supplier One" in shown.text
    assert "financing requested" in shown.text

    csrf = dashboard_sign_in(api, "bank")
    book = api.http.get("/dashboard/vouchers")
    assert 'id="financing-book"' in book.text and 'id="exposure"' in book.text
    assert f"/dashboard/vouchers/{voucher}/parts/1/financing/accept" in book.text
    r = api.http.post(
        f"{page}/parts/1/financing/accept", data={"csrf": csrf, "back": page}, follow_redirects=False
    )
    assert r.status_code == 303 and "msg=" in r.headers["location"], r.headers.get("location")
    assert "discount+interest" in r.headers["location"]

    csrf = dashboard_sign_in(api, CORE)
    mine = api.http.get("/dashboard/vouchers")
    assert 'id="payables"' in mine.text and 'id="line-available"' in mine.text and "700000.00" in mine.text
    r = api.http.post(f"{page}/parts/1/settle", data={"csrf": csrf, "back": page}, follow_redirects=False)
    location = r.headers["location"]
    assert r.status_code == 303 and "error=" in location and "not+due+yet" in location

    dashboard_sign_in(api, "outsider")
    assert api.http.get(page).status_code == 404
    dashboard_sign_in(api, "supplier2")
    r = api.http.post(f"{page}/parts/1/settle", data={"csrf": csrf, "back": page}, follow_redirects=False)
    assert r.status_code in (303, 403)


# ------------------------------------------------------------------------------------------------ the walk

# How each caller stands to V1 (its parts: 1 at Supplier One, 2 at Supplier Two, offered to Bank B); Bank B
# stands to V2 (nothing offered to it) as another lender.
V1_PEOPLE: dict[str | None, VRel] = {
    CORE: VRel.CORE,
    "bank": VRel.LINE_BANK,
    "other_bank": VRel.FINANCING_BANK,
    "supplier2": VRel.HOLDER,
    "outsider": VRel.ENTERPRISE,
    "auditor": VRel.AUDITOR,
    None: VRel.ANONYMOUS,
}
ROLE_REL = {
    "bank": VRel.OTHER_LENDER,
    "other_bank": VRel.OTHER_LENDER,
    "auditor": VRel.AUDITOR,
    None: VRel.ANONYMOUS,
}


def _expected(action: str, who: str | None, rel: VRel) -> Grant:
    rule = VOUCHER_POLICY[action]
    return rule.of(ROLE_REL.get(who, VRel.ENTERPRISE) if rule.scope == "caller" else rel)


def _role_may(action: str, who: str | None) -> bool:
    rule = VOUCHER_POLICY[action]
    rels = {"bank": (VRel.LINE_BANK, VRel.FINANCING_BANK, VRel.OTHER_LENDER), "auditor": (VRel.AUDITOR,)}
    rels["other_bank"] = rels["bank"]
    mine = rels.get(str(who), (VRel.CORE, VRel.HOLDER, VRel.ENTERPRISE))
    return any(rule.of(r) is not Grant.NO for r in mine)


def test_every_voucher_route_answers_every_relationship_as_the_policy_says(vsite: VoucherSite) -> None:
    api = vsite.api
    v1 = _line_and_voucher(vsite)
    split = ok(post(api, "supplier", f"/v1/vouchers/{v1}/parts/1/split", {"transfers": [
        {"to": api.address("supplier2"), "amount": "100000.00"}]}))  # fmt: skip
    two = split["parts"][0]["part_id"]
    ok(
        post(
            api,
            "supplier2",
            f"/v1/vouchers/{v1}/parts/{two}/financing",
            {"bank": "Bank B", "discount_rate_bps": 300},
        )
    )
    v2 = _line_and_voucher(vsite, face="1000.00")
    issue = {"holder": api.address("supplier"), "face_value": "1.00", "maturity": maturity(vsite.site, 30),
             "invoice_hash": h("invoice:walk")}  # fmt: skip
    bodies: dict[str, Any] = {
        "POST /v1/vouchers": issue,
        "POST /v1/vouchers/credit-lines": {"core": "Borrower Co", "limit": "2000000.00",
                                           "expiry": maturity(vsite.site, 365)},
        "POST /v1/vouchers/{voucher}/parts/{part}/split": {"transfers": [{"to": api.address("subsupplier"),
                                                                          "amount": "1.00"}]},
        "POST /v1/vouchers/{voucher}/parts/{part}/financing": {"bank": "Bank A", "discount_rate_bps": 300},
    }  # fmt: skip
    part_for = {"voucher.settle": 1}
    cases = [(who, rel, v1) for who, rel in V1_PEOPLE.items()] + [("other_bank", VRel.OTHER_LENDER, v2)]
    checked = 0
    for route, action in ROUTES.items():
        if action not in VOUCHER_POLICY or not route.split(" ", 1)[1].startswith("/v1"):
            continue
        method, path = route.split(" ", 1)
        for who, rel, voucher in cases:
            if voucher == v2 and "{voucher}" not in path:
                continue  # caller-scope routes are answered by role: walked once per caller
            concrete = path.replace("{voucher}", voucher).replace("{part}", str(part_for.get(action, two)))
            headers = api.auth(who) if who else {}
            if method == "GET":
                r = api.http.get(concrete, headers=headers)
            else:
                r = api.http.post(concrete + "?wait=true", json=bodies.get(route, {}), headers=headers)
            grant = _expected(action, who, rel)
            error = (
                r.json().get("error")
                if r.headers.get("content-type", "").startswith("application/json")
                and isinstance(r.json(), dict)
                else None
            )
            case = (route, who, rel.value, r.status_code, r.text[:300])
            checked += 1
            if who is None:
                assert (r.status_code, error) == (401, "Authentication"), case
            elif grant is Grant.NO:
                if not _role_may(action, who) or method == "POST":
                    assert r.status_code in (403, 404) and error in ("PermissionDenied", "NotFound"), case
                elif VOUCHER_POLICY["voucher.read"].of(rel) is not Grant.NO:  # sees its branch, not all
                    assert (r.status_code, error) == (403, "PermissionDenied"), case
                else:  # a voucher it has no part in is not there for it
                    assert (r.status_code, error) == (404, "NotFound"), case
            elif grant is Grant.YES:
                assert error != "PermissionDenied" and r.status_code < 500, case
                if method == "GET":
                    assert r.status_code == 200, case
            else:  # own: its part, or a refusal saying whose the part is (never a 500)
                assert r.status_code < 500, case
                if method == "GET":
                    assert r.status_code == 200, case
    assert checked == 99  # 13 routes for 7 relationships, and the 8 on one voucher for another lender too

    # the dashboard's pages and forms, signed in as each (forms answer with a redirect and a message)
    from api_support import dashboard_sign_in

    pages = {
        r: a for r, a in ROUTES.items() if a in VOUCHER_POLICY and r.split(" ", 1)[1].startswith("/dash")
    }
    assert len(pages) == 6
    for who, rel, voucher in cases:
        if who is None:
            continue
        csrf = dashboard_sign_in(api, who)
        for route, action in pages.items():
            method, path = route.split(" ", 1)
            concrete = path.replace("{voucher}", voucher).replace("{part}", str(part_for.get(action, two)))
            grant = _expected(action, who, rel)
            if method == "GET":
                r = api.http.get(concrete, follow_redirects=False)
                if grant is not Grant.NO:
                    assert r.status_code == 200, (route, who, r.status_code)
                else:
                    assert r.status_code in (403, 404), (route, who, r.status_code)
                continue
            form = {"csrf": csrf, "back": "/dashboard/vouchers", "bank": "Bank A", "rate_bps": "300"}
            r = api.http.post(concrete, data=form, follow_redirects=False)
            location = r.headers.get("location", "")
            assert r.status_code == 303, (route, who, r.status_code)
            if grant is Grant.NO:
                assert "error=" in location, (route, who, location)


# ------------------------------------------------------------------------------------------------ bad input


def _fuzz(operation: Any, who: str, headers: dict[str, str], failures: list[str]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=[Phase.explicit, Phase.generate])  # fmt: skip
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        try:
            response = case.call(headers=headers)
        except Exception as exc:  # the in-process client re-raises what the app let escape: a 500
            failures.append(f"{who} {case.method} {case.formatted_path} -> 500: {exc!r}"[:400])
            return
        where = f"{who} {case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        if response.status_code >= 500:
            failures.append(where)
        elif response.status_code >= 400:
            body = response.json()
            if not (isinstance(body, dict) and body.get("error") and body.get("message")):
                failures.append(where)

    check()


@pytest.mark.slow
def test_no_voucher_operation_answers_5xx_to_generated_input(vsite: VoucherSite) -> None:
    """schemathesis against the voucher operations only, with the voucher contract deployed (the suite-wide
    fuzz runs on a deployment without it): no 5xx, every 4xx a JSON body naming the problem, for a bank, the
    core enterprise and a supplier."""
    import schemathesis

    api = vsite.api
    _line_and_voucher(vsite)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.http.app)
    operations = [r.ok() for r in schema.get_all_operations()]
    operations = [o for o in operations if o.path.startswith("/v1/vouchers")]
    assert len(operations) == 13
    failures: list[str] = []
    for who in ("bank", CORE, "supplier"):
        for operation in operations:
            _fuzz(operation, who, api.auth(who), failures)
    assert failures == []
