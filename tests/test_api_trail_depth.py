"""A trail deeper than nested JSON can carry: a clear 422 for the tree, the whole trail in flat form; the
dashboard's loan page shows it whole (the picture summarises the deep part)."""

from __future__ import annotations

import re

from api_support import Api, dashboard_sign_in, pay_chain

from api.routes.dashboard import LOTS_PER_PAGE
from api.services.loans import DRAWN_DEPTH, MAX_TREE_DEPTH


def test_a_trail_deeper_than_the_tree_limit_is_served_flat_and_the_tree_says_why(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0009", principal="10000.00")
    first = api.disburse("LN-2026-0009", "supplier", "5000.00")
    depth = MAX_TREE_DEPTH + 5
    pay_chain(api, "LN-2026-0009", first, depth)

    tree = api.get("auditor", "/v1/loans/LN-2026-0009/trail")
    assert tree.status_code == 422, tree.text
    body = tree.json()
    assert f"{depth + 1} levels deep" in body["message"] and "format=flat" in body["hint"]

    flat = api.get("auditor", "/v1/loans/LN-2026-0009/trail", params={"format": "flat"})
    assert flat.status_code == 200, flat.text
    lots = flat.json()["lots"]
    assert flat.json()["format"] == "flat" and len(lots) == depth + 1
    assert [lot["depth"] for lot in lots] == list(range(depth + 1))
    assert all(lot["children"] == [] for lot in lots)
    pairs = zip(lots, lots[1:], strict=False)
    assert all(child["parent_lot_id"] == parent["lot_id"] for parent, child in pairs)


def test_the_loan_page_of_a_trail_deeper_than_the_tree_limit_shows_the_whole_trail(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0010", principal="10000.00")
    first = api.disburse("LN-2026-0010", "supplier", "5000.00")
    levels = MAX_TREE_DEPTH + 2
    chain = [first, *pay_chain(api, "LN-2026-0010", first, levels - 1)]

    dashboard_sign_in(api, "auditor")
    page = api.http.get("/dashboard/loans/LN-2026-0010")
    assert page.status_code == 200, page.text
    # Every lot is in the table, a page of LOTS_PER_PAGE at a time (issue 20); the picture draws the first
    # DRAWN_DEPTH levels and says what it left out.
    row = r'<tr class="[^"]*" data-lot-id="(0x[0-9a-f]{64})"'
    second = api.http.get("/dashboard/loans/LN-2026-0010", params={"page": "2"})
    assert 'id="lots-pager"' in page.text and "Page 1 of 2" in page.text and "Page 2 of 2" in second.text
    assert len(re.findall(row, page.text)) == LOTS_PER_PAGE
    assert re.findall(row, page.text) + re.findall(row, second.text) == chain
    drawn = re.findall(r'class="lot-node[^"]*" data-lot-id="(0x[0-9a-f]{64})"', page.text)
    assert drawn == chain[:DRAWN_DEPTH]
    assert (
        f"The trail is {levels} levels deep; the picture draws the first {DRAWN_DEPTH}, and the "
        f"{levels - DRAWN_DEPTH} deeper lots are listed in the table below." in page.text
    )

    deepest = api.http.get("/dashboard/loans/LN-2026-0010", params={"lot": chain[-1]})
    assert deepest.status_code == 200, deepest.text
    detail = deepest.text.split('id="lot-detail"', 1)[1].split("</section>", 1)[0]
    assert chain[-1] in detail and chain[-2] in detail  # the lot and the parent it was paid out of
