"""The event decoder's own pieces, without a node: EIP-55 addresses exactly as eth_utils writes them."""

from __future__ import annotations

from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from ledger.protocol.events import _address


@given(st.binary(min_size=20, max_size=20), st.booleans())
def test_addresses_are_checksummed_exactly_as_eth_utils_does(raw: bytes, upper: bool) -> None:
    word = "00" * 12 + (raw.hex().upper() if upper else raw.hex())
    assert _address(word) == to_checksum_address("0x" + raw.hex())
