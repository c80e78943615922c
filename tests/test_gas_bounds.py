"""Computed gas limits for pay and payBatch (no eth_estimateGas), on Hardhat and anvil: the bounds hold for
the worst case at the largest batch the per-transaction cap allows, a revert still surfaces as the decoded
custom error, and a batch too big for one transaction is refused before anything is signed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import Api
from conftest import ARTIFACTS, UINT64_MAX, World, h, make_world, open_loan, reverts
from transport_support import RecordingTransport

from ledger.chain.client import TX_GAS_CAP, ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.contract import MAX_BATCH, PAY_GAS, PaymentSpec, pay_batch_gas
from ledger.chain.localchain import LocalChain
from ledger.errors import ValidationError

pytestmark = pytest.mark.slow

# Seven non-zero bytes: as dear in calldata as an amount can be while 471 of them fit in one uint64 loan.
AMOUNT = 0x01_0101_0101_0101


def _nonzero(n: int) -> str:
    """0x-hex of n random bytes, none zero (zero bytes are cheaper in calldata)."""
    return "0x" + bytes(secrets.randbelow(255) + 1 for _ in range(n)).hex()


def spy_on(client: ChainClient) -> RecordingTransport:
    """The client's recording transport, cleared: the JSON-RPC methods it calls from here on (it still calls
    the node)."""
    transport = client.transport
    assert isinstance(transport, RecordingTransport)
    transport.methods.clear()
    return transport


@pytest.fixture
def client(chain: LocalChain) -> ChainClient:
    """Overrides conftest's: the world and the API of this module's tests send over a recording transport."""
    return ChainClient(chain.url, transport=RecordingTransport(chain.url))


@pytest.fixture(scope="module", params=["hardhat", "anvil"])
def node_world(request: pytest.FixtureRequest, compiled: CompiledContract) -> Iterator[World]:
    ARTIFACTS.mkdir(exist_ok=True)
    with LocalChain(kind=request.param, log_path=ARTIFACTS / f"{request.param}-gas.log") as node:
        yield make_world(ChainClient(node.url, transport=RecordingTransport(node.url)), compiled)


def _lots_at_supplier(world: World, loan_id: str, count: int) -> list[str]:
    """`count` lots of AMOUNT held by the supplier, made by one batch out of one disbursed lot."""
    cast, ledger = world.cast, world.ledger
    source = ledger.disburse(
        cast.bank, loan_id=loan_id, payee=cast.supplier.address, amount=AMOUNT * count, purpose=1
    ).event("Disbursed")
    specs = [PaymentSpec(source.args["lotId"], cast.supplier.address, AMOUNT, 1) for _ in range(count)]
    return [e.args["lotId"] for e in ledger.pay_batch(cast.supplier, loan_id=loan_id, payments=specs).events]


def test_the_cap_is_the_eip_7825_limit_on_both_nodes(node_world: World) -> None:
    ledger = node_world.ledger
    assert ledger.client.max_tx_gas == TX_GAS_CAP
    assert (ledger.max_batch(), ledger.max_batch(one_lot=False)) == (MAX_BATCH, 471)


def test_largest_batch_out_of_distinct_cold_lots_by_the_lender_lands_within_the_computed_gas(
    node_world: World,
) -> None:
    world, ledger, cast = node_world, node_world.ledger, node_world.cast
    loan_id = open_loan(world, f"worst:{secrets.token_hex(4)}", principal=UINT64_MAX)
    n = ledger.max_batch(one_lot=False)
    lots = _lots_at_supplier(world, loan_id, n)
    # The worst case: the servicing lender (the dearer spender check) spends each lot, each untouched in
    # this transaction, to an address and with evidence that have no zero byte; purpose outside the loan's.
    specs = [PaymentSpec(lot, _nonzero(20), AMOUNT, 31, _nonzero(32)) for lot in lots]
    gas = pay_batch_gas(specs)
    assert gas <= ledger.client.max_tx_gas
    data = ledger.encode_pay_batch(loan_id, specs)
    estimate = int(
        ledger.client.rpc(
            "eth_estimateGas", [{"from": cast.bank.address, "to": ledger.address, "data": data}]
        ),
        16,
    )
    spy = spy_on(ledger.client)
    result = ledger.pay_batch(cast.bank, loan_id=loan_id, payments=specs)
    assert "eth_estimateGas" not in spy.methods
    assert len(result.events) == n and {e.args["declaredUse"] for e in result.events} == {False}
    assert result.gas_used == estimate <= gas
    assert all(ledger.get_lot(loan_id, lot).remaining == 0 for lot in lots[:: n // 5])


def test_largest_batch_out_of_one_lot_and_a_single_pay_land_within_the_computed_gas(
    node_world: World,
) -> None:
    world, ledger, cast = node_world, node_world.ledger, node_world.cast
    loan_id = open_loan(world, f"one-lot:{secrets.token_hex(4)}", principal=UINT64_MAX)
    lot = ledger.disburse(cast.bank, loan_id=loan_id, payee=cast.supplier.address, amount=2**63, purpose=1)
    lot_id = lot.event("Disbursed").args["lotId"]
    (cold,) = _lots_at_supplier(world, loan_id, 1)
    specs = [PaymentSpec(lot_id, _nonzero(20), AMOUNT, 31, _nonzero(32)) for _ in range(MAX_BATCH)]
    spy = spy_on(ledger.client)
    result = ledger.pay_batch(cast.bank, loan_id=loan_id, payments=specs)
    assert len(result.events) == MAX_BATCH and result.gas_used <= pay_batch_gas(specs)
    single = ledger.pay(
        cast.bank,
        loan_id=loan_id,
        from_lot=cold,
        payee=_nonzero(20),
        amount=AMOUNT,
        purpose=31,
        evidence_hash=_nonzero(32),
    )
    assert single.gas_used <= PAY_GAS
    assert "eth_estimateGas" not in spy.methods


def test_a_reverting_batch_surfaces_the_decoded_error_without_an_estimate(node_world: World) -> None:
    world, ledger, cast = node_world, node_world.ledger, node_world.cast
    loan_id = open_loan(world, f"revert:{secrets.token_hex(4)}", principal=UINT64_MAX)
    (lot,) = _lots_at_supplier(world, loan_id, 1)
    head = ledger.head_of(loan_id)
    spy = spy_on(ledger.client)
    # Hardhat answers the send with the revert; anvil mines it as failed and the receipt check replays it.
    with reverts("LedgerInsufficientFunds", lotId=lot, remaining=AMOUNT - 1, requested=AMOUNT):
        ledger.pay_batch(
            cast.supplier,
            loan_id=loan_id,
            payments=[
                PaymentSpec(lot, cast.supplier2.address, 1, 1),
                PaymentSpec(lot, cast.supplier2.address, AMOUNT, 1),
            ],
        )
    with reverts("LedgerNotLotSpender", lotId=lot, account=cast.supplier2.address):
        ledger.pay(
            cast.supplier2, loan_id=loan_id, from_lot=lot, payee=cast.subsupplier.address, amount=1, purpose=1
        )
    assert "eth_estimateGas" not in spy.methods
    assert ledger.head_of(loan_id) == head and ledger.get_lot(loan_id, lot).remaining == AMOUNT
    # The nonce the failed transactions used is accounted for: the next payment goes through.
    assert ledger.pay(
        cast.supplier, loan_id=loan_id, from_lot=lot, payee=cast.supplier2.address, amount=1, purpose=1
    ).event("Paid")


def test_a_batch_too_big_for_one_transaction_is_refused_before_signing(node_world: World) -> None:
    ledger, cast = node_world.ledger, node_world.cast
    n = ledger.max_batch(one_lot=False) + 1
    specs = [PaymentSpec(h(f"lot:{i}"), cast.supplier2.address, 1, 1) for i in range(n)]
    spy = spy_on(ledger.client)
    with pytest.raises(ValidationError) as info:
        ledger.pay_batch(cast.supplier, loan_id=h("any-loan"), payments=specs)
    assert f"a batch of {n} payments out of {n} lots" in info.value.message
    assert (
        info.value.hint
        == "split it: 500 payments out of one lot fit in a batch, 471 when each comes out of a different lot"
    )
    assert spy.methods == []


# ------------------------------------------------------------------------------------------------ the API


def _error(r: Any, status: int, name: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == name, body
    return dict(body)


def test_api_batch_at_the_maximum_size_lands_and_oversize_batches_get_422(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    lot = api.disburse("LN-2026-0001", "supplier", "5000.00")
    spy = spy_on(api.services.client)
    item = {"from_lot": lot, "payee": api.address("subsupplier"), "amount": "0.01", "purpose": 1}
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": [item] * MAX_BATCH})
    assert r.status_code == 201, r.text
    assert len(r.json()["lot_ids"]) == MAX_BATCH and r.json()["gas_used"] <= pay_batch_gas(
        [PaymentSpec(lot, item["payee"], 1, 1)] * MAX_BATCH
    )
    assert "eth_estimateGas" not in spy.methods
    # over the contract's maximum: refused by validation
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": [item] * 501})
    assert _error(r, 422, "Validation")["fields"][0]["field"] == "payments"
    # within it, but too much gas for one transaction (each payment out of its own lot): refused, key unused
    many = [item | {"from_lot": h(f"lot:{i}")} for i in range(472)]
    sent = len(spy.methods)
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": many}, key="big")
    body = _error(r, 422, "Validation")
    assert "a batch of 472 payments out of 472 lots may need" in body["message"]
    assert "471 when each comes out of a different lot" in body["hint"]
    assert "eth_sendRawTransaction" not in spy.methods[sent:]
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": many[:2]}, key="big")
    assert _error(r, 404, "LedgerLotNotFound")  # the key was free for a (different) request


def test_api_batch_whose_payment_reverts_answers_with_the_decoded_error_without_an_estimate(api: Api) -> None:
    api.open_loan(loan_number="LN-2026-0001", principal="10000.00")
    lot = api.disburse("LN-2026-0001", "supplier", "5000.00")
    spy = spy_on(api.services.client)
    payee = api.address("subsupplier")
    payments = [{"from_lot": lot, "payee": payee, "amount": "3000.00", "purpose": 1}] * 2
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": payments}, key="k")
    body = _error(r, 409, "LedgerInsufficientFunds")
    assert body["args"] == {"lotId": lot, "remaining": 200000, "requested": 300000}
    assert "eth_estimateGas" not in spy.methods
    # the stored answer comes back for the same key, nothing sent again
    sent = len(spy.methods)
    r = api.post("supplier", "/v1/payments/batch", {"loan": "LN-2026-0001", "payments": payments}, key="k")
    assert _error(r, 409, "LedgerInsufficientFunds") and r.headers["Idempotent-Replayed"] == "true"
    assert "eth_sendRawTransaction" not in spy.methods[sent:]
