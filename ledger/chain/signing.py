"""Transaction signing: EIP-1559 (type 2) and EIP-155 legacy transactions, RLP-encoded and signed with
libsecp256k1 (coincurve) directly.

The bytes are exactly eth-account's (tests/test_signing.py checks them byte for byte); eth-account takes
about five times as long, most of it validating and normalising the fields through generic formatters and
deriving the public key again on every call, which the API pays on every write.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import rlp
from coincurve import PrivateKey
from sha3 import keccak_256

from ledger.errors import ValidationError

__all__ = ["TransactionSigner", "sign_transaction"]

_MAX_UINT256 = 2**256


def _uint(fields: Mapping[str, Any], name: str) -> int:
    value = fields[name]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _MAX_UINT256:
        raise ValidationError(f"transaction field {name}={value!r} is not a uint256", hint="pass an int")
    return value


def _hex_bytes(value: str | bytes, name: str, length: int | None = None) -> bytes:
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    else:
        text = value[2:] if value[:2] in ("0x", "0X") else value
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValidationError(f"transaction field {name} is not hex: {value!r}", hint="0x-hex") from None
    if length is not None and len(raw) != length:
        raise ValidationError(f"transaction field {name} must be {length} bytes", hint="check the address")
    return raw


class TransactionSigner:
    """Signs for one private key; the key is parsed once (eth-account re-derives it per signature)."""

    def __init__(self, private_key: bytes) -> None:
        self._key = PrivateKey(bytes(private_key))

    def sign(self, fields: Mapping[str, Any]) -> tuple[bytes, bytes]:
        """(transaction hash, raw signed transaction) for `fields` as eth-account takes them: `nonce`,
        `gas`, `value`, `data`, `chainId`, optional `to`, and either `maxFeePerGas` with
        `maxPriorityFeePerGas` (type 2, empty access list) or `gasPrice` (legacy, EIP-155)."""
        to = _hex_bytes(fields["to"], "to", 20) if fields.get("to") is not None else b""
        data = _hex_bytes(fields.get("data") or b"", "data")
        nonce, gas, value = _uint(fields, "nonce"), _uint(fields, "gas"), _uint(fields, "value")
        chain_id = _uint(fields, "chainId")
        if "maxFeePerGas" in fields:
            if "gasPrice" in fields:
                raise ValidationError(
                    "gasPrice and maxFeePerGas together: one fee model only", hint="pass one"
                )
            body: list[Any] = [
                chain_id,
                nonce,
                _uint(fields, "maxPriorityFeePerGas"),
                _uint(fields, "maxFeePerGas"),
                gas,
                to,
                value,
                data,
                [],
            ]
            recoverable = self._key.sign_recoverable(
                keccak_256(b"\x02" + rlp.encode(body)).digest(), hasher=None
            )
            r, s, y_parity = recoverable[:32], recoverable[32:64], recoverable[64]
            raw = b"\x02" + rlp.encode([*body, y_parity, _strip(r), _strip(s)])
        else:
            body = [nonce, _uint(fields, "gasPrice"), gas, to, value, data]
            recoverable = self._key.sign_recoverable(
                keccak_256(rlp.encode([*body, chain_id, 0, 0])).digest(), hasher=None
            )
            r, s, recovery = recoverable[:32], recoverable[32:64], recoverable[64]
            raw = rlp.encode([*body, recovery + 35 + 2 * chain_id, _strip(r), _strip(s)])
        return keccak_256(raw).digest(), raw


def _strip(word: bytes) -> int:
    return int.from_bytes(word, "big")


_signers: dict[bytes, TransactionSigner] = {}
_lock = threading.Lock()


def sign_transaction(private_key: bytes, fields: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """`TransactionSigner(private_key).sign(fields)`, with the parsed key kept for the next call."""
    key = bytes(private_key)
    signer = _signers.get(key)
    if signer is None:
        with _lock:
            signer = _signers.setdefault(key, TransactionSigner(key))
    return signer.sign(fields)
