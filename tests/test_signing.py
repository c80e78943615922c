"""The signer the chain client uses produces eth-account's bytes exactly, for every field shape it sends."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain.signing import TransactionSigner, sign_transaction
from ledger.errors import ValidationError

uint = st.integers(min_value=0, max_value=2**256 - 1)
small = st.integers(min_value=0, max_value=2**64 - 1)
keys = st.binary(min_size=32, max_size=32).filter(
    lambda k: (
        0 < int.from_bytes(k, "big") < 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    )
)
addresses = st.none() | st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))


@st.composite
def transactions(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "nonce": draw(small),
        "gas": draw(st.integers(min_value=21_000, max_value=2**63 - 1)),
        "value": draw(uint),
        "data": "0x" + draw(st.binary(max_size=600)).hex(),
        "chainId": draw(st.integers(min_value=1, max_value=2**53)),
    }
    to = draw(addresses)
    if to is not None:
        fields["to"] = to
    if draw(st.booleans()):
        tip = draw(uint)
        fields["maxPriorityFeePerGas"] = tip
        fields["maxFeePerGas"] = draw(st.integers(min_value=tip, max_value=2**256 - 1))
    else:
        fields["gasPrice"] = draw(uint)
    return fields


@settings(max_examples=300, deadline=None)
@given(key=keys, fields=transactions())
def test_signed_bytes_and_hash_equal_eth_accounts(key: bytes, fields: dict[str, Any]) -> None:
    expected = Account.sign_transaction(fields, key)
    tx_hash, raw = sign_transaction(key, fields)
    assert raw == bytes(expected.raw_transaction)
    assert tx_hash == bytes(expected.hash)


def test_the_chain_clients_field_shapes_sign_like_eth_account() -> None:
    """What ChainClient._sign_next passes: free-gas EIP-1559 fields, a contract address, calldata."""
    account = Account.create()
    fields = {
        "data": "0x" + "ab" * 196,
        "value": 0,
        "gas": 80_000,
        "nonce": 7,
        "chainId": 31337,
        "maxFeePerGas": 0,
        "maxPriorityFeePerGas": 0,
        "to": to_checksum_address("0x" + "12" * 20),
    }
    expected = account.sign_transaction(fields)
    assert TransactionSigner(account.key).sign(fields) == (
        bytes(expected.hash),
        bytes(expected.raw_transaction),
    )
    recovered = Account.recover_transaction(TransactionSigner(account.key).sign(fields)[1])
    assert recovered == account.address


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nonce": -1}, "nonce"),
        ({"gas": 2**256}, "gas"),
        ({"value": 1.5}, "value"),
        ({"chainId": True}, "chainId"),
        ({"to": "0x1234"}, "to"),
        ({"data": "0xzz"}, "data"),
    ],
)
def test_malformed_fields_are_refused_with_the_field_named(change: dict[str, Any], field: str) -> None:
    fields = {"nonce": 0, "gas": 21_000, "value": 0, "data": "0x", "chainId": 1, "gasPrice": 0, **change}
    with pytest.raises(ValidationError, match=field):
        sign_transaction(b"\x01" * 32, fields)


def test_both_fee_models_at_once_are_refused() -> None:
    fields = {"nonce": 0, "gas": 21_000, "value": 0, "data": "0x", "chainId": 1}
    fields |= {"gasPrice": 1, "maxFeePerGas": 1, "maxPriorityFeePerGas": 0}
    with pytest.raises(ValidationError, match="fee model"):
        sign_transaction(b"\x01" * 32, fields)
