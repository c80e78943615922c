"""A payee answers a payment once per kind and only forward (issue 16): the API refuses a second confirmation,
a dispute after a confirmation and a second dispute with 409 and the contract's own error, checked against
the mirror before anything is signed; when the mirror lags, the contract refuses with the same error."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from api_support import Api

from api.errors import _REVERT_HINTS

pytestmark = pytest.mark.slow

LOAN = "LN-2026-0001"
EVIDENCE = {"evidence_hash": "0x" + "ab" * 32}
REASON = {"reason_hash": "0x" + "cd" * 32}


def _paid_lot(api: Api) -> tuple[str, str]:
    """(loan id, a lot paid by the supplier to the subsupplier), mirrored."""
    opened = api.open_loan(loan_number=LOAN, principal="10000.00")
    supplier_lot = api.disburse(LOAN, "supplier", "5000.00")
    r = api.pay("supplier", LOAN, supplier_lot, "subsupplier", 10)
    assert r.status_code == 201, r.text
    return str(opened["loan_id"]), str(r.json()["lot_ids"][0])


def _answers(api: Api, lot_id: str) -> list[str]:
    """The mirror's confirmations table for one lot, in chain order."""
    t = sa.table("confirmations", *(sa.column(c) for c in ("lot_id", "state", "block_number", "log_index")))
    with api.services.engine.connect() as conn:
        query = sa.select(t.c.state).where(t.c.lot_id == lot_id).order_by(t.c.block_number, t.c.log_index)
        rows = conn.execute(query)
        return [str(state) for (state,) in rows]


def _mirrored_refusal(error: str, loan_id: str, lot_id: str, sentence: str, state: str, block: int) -> Any:
    args = {"loanId": loan_id, "lotId": lot_id}
    return {
        "error": error,
        "message": sentence,
        "hint": _REVERT_HINTS[409],
        "args": args,
        "detail": f"{error}(loanId={loan_id}, lotId={lot_id}): the mirror shows the payment {state} in block "
        f"{block}; nothing was sent",
    }


def test_confirming_a_confirmed_payment_again_is_409_ledger_lot_already_confirmed_and_sends_nothing(
    api: Api,
) -> None:
    loan_id, lot = _paid_lot(api)
    first = api.post("subsupplier", f"/v1/lots/{lot}/confirm?wait=true", EVIDENCE, key="confirm-once")
    assert first.status_code == 201, first.text
    block, head = api.world.ledger.client.block_number(), api.world.ledger.head_of(loan_id)
    sentence = (
        f"Payment {lot[:10]}… is already confirmed, and a confirmation is final: it cannot be confirmed or "
        "disputed again."
    )
    expected = _mirrored_refusal(
        "LedgerLotAlreadyConfirmed", loan_id, lot, sentence, "confirmed", first.json()["block_number"]
    )

    again = api.post("subsupplier", f"/v1/lots/{lot}/confirm?wait=true", EVIDENCE)
    assert (again.status_code, again.json()) == (409, expected)
    disputed = api.post("subsupplier", f"/v1/lots/{lot}/dispute?wait=true", REASON)
    assert (disputed.status_code, disputed.json()) == (409, expected)

    # Nothing reached the chain; the first confirmation's own retry still replays its answer.
    assert (api.world.ledger.client.block_number(), api.world.ledger.head_of(loan_id)) == (block, head)
    replay = api.post("subsupplier", f"/v1/lots/{lot}/confirm?wait=true", EVIDENCE, key="confirm-once")
    assert (replay.status_code, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.json()["tx_hash"] == first.json()["tx_hash"]
    assert api.get("subsupplier", f"/v1/lots/{lot}").json()["confirmation"] == "confirmed"
    assert _answers(api, lot) == ["confirmed"]


def test_disputing_a_disputed_payment_again_is_409_and_confirming_it_withdraws_the_dispute_once(
    api: Api,
) -> None:
    loan_id, lot = _paid_lot(api)
    first = api.post("subsupplier", f"/v1/lots/{lot}/dispute?wait=true", REASON)
    assert first.status_code == 201, first.text
    again = api.post("subsupplier", f"/v1/lots/{lot}/dispute?wait=true", {"reason_hash": "0x" + "ce" * 32})
    sentence = (
        f"Payment {lot[:10]}… is already disputed, and a payment is disputed only once: confirm it when the "
        "matter is settled."
    )
    assert (again.status_code, again.json()) == (
        409,
        _mirrored_refusal(
            "LedgerLotAlreadyDisputed", loan_id, lot, sentence, "disputed", first.json()["block_number"]
        ),
    )
    settled = api.post("subsupplier", f"/v1/lots/{lot}/confirm?wait=true", EVIDENCE)
    assert settled.status_code == 201, settled.text
    assert api.get("supplier", f"/v1/lots/{lot}").json()["confirmation"] == "confirmed"
    refused = api.post("subsupplier", f"/v1/lots/{lot}/confirm?wait=true", EVIDENCE)
    assert (refused.status_code, refused.json()["error"]) == (409, "LedgerLotAlreadyConfirmed")
    assert _answers(api, lot) == ["disputed", "confirmed"]


def test_when_the_mirror_lags_the_contract_refuses_a_second_confirmation_with_the_same_409(api: Api) -> None:
    loan_id, lot = _paid_lot(api)
    ledger, payee = api.world.ledger, api.world.cast.subsupplier
    api.indexer.stop()  # the mirror still shows the lot unconfirmed
    try:
        ledger.confirm_lot(payee, loan_id=loan_id, lot_id=lot, evidence_hash=EVIDENCE["evidence_hash"])
        assert api.get("subsupplier", f"/v1/lots/{lot}").json()["confirmation"] == "unconfirmed"
        block = ledger.client.block_number()
        r = api.post("subsupplier", f"/v1/lots/{lot}/confirm", EVIDENCE)
        assert (r.status_code, r.json()) == (
            409,
            {
                "error": "LedgerLotAlreadyConfirmed",
                "message": (
                    f"Payment {lot[:10]}… is already confirmed, and a confirmation is final: it cannot be "
                    "confirmed or disputed again."
                ),
                "hint": _REVERT_HINTS[409],
                "args": {"loanId": loan_id, "lotId": lot},
                "detail": f"LedgerLotAlreadyConfirmed(loanId={loan_id}, lotId={lot})",
            },
        )
        assert ledger.client.block_number() == block
    finally:
        api.indexer.indexer.open()  # hold the lock again: the fixture's teardown releases it
