"""A trail deeper than nested JSON can carry: a clear 422 for the tree, the whole trail in flat form."""

from __future__ import annotations

import time

from api_support import Api

from api.services.loans import MAX_TREE_DEPTH
from ledger.chain.contract import PaymentSpec


def test_a_trail_deeper_than_the_tree_limit_is_served_flat_and_the_tree_says_why(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0009", principal="10000.00")
    first = api.disburse("LN-2026-0009", "supplier", "5000.00")
    ledger, supplier = api.world.ledger, api.world.cast.supplier
    loan_id = api.get("auditor", "/v1/loans/LN-2026-0009").json()["loan_id"]
    allowed = ledger.get_lot(loan_id, first).allowed_purposes

    # The supplier pays itself onward, each payment out of the previous one: one batch, ids precomputed
    # with the hash chain (a new lot's id is the head its payment produces).
    depth = MAX_TREE_DEPTH + 5
    head, parent, payments = ledger.head_of(loan_id), first, []
    for i in range(depth):
        spec = PaymentSpec(parent, supplier.address, 10_000 - i, 1, "0x" + f"{i + 1:064x}")  # each less
        args = {
            "loanId": loan_id,
            "payee": supplier.address,
            "parentLotId": parent,
            "amount": spec.amount,
            "purpose": 1,
            "declaredUse": bool(allowed >> 1 & 1),
            "evidenceHash": spec.evidence_hash,
        }
        head = parent = ledger.hash_chain.step(head, "Paid", args)
        payments.append(spec)
    result = ledger.pay_batch(supplier, loan_id=loan_id, payments=payments)
    assert [e.args["lotId"] for e in result.events if e.name == "Paid"][-1] == parent

    deadline = time.monotonic() + 60
    while api.get("auditor", "/v1/health").json()["indexer"]["indexed_block"] < result.block_number:
        assert time.monotonic() < deadline, "the indexer did not catch up"
        time.sleep(0.1)

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
