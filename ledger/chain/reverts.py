"""Reverts: a node's error answer turned into a `ContractRevertError` with the custom error's name and args.

The rules it keeps:
- A revert surfaces decoded: a custom error from the contract's ABI by its selector, `Error(string)` as
  "Error" with its reason, `Panic(uint256)` as "Panic" with its code explained; data no ABI knows is
  "Unknown" with the data; no data at all is "Reverted" with the node's message.
- Nodes put revert data in different places (Hardhat nests it, anvil/Geth/Besu give a hex string); both are
  read. An RPC error that is not a revert stays the `RpcError` it was.
- Pure: nothing here talks to a node.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from ledger.chain.rpc import RpcError
from ledger.errors import ContractRevertError, FundflowError

__all__ = ["ErrorDecoder", "as_revert", "looks_like_revert", "revert_data"]

_ERROR_STRING = "0x08c379a0"  # Error(string)
_PANIC = "0x4e487b71"  # Panic(uint256)
_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
    0x41: "out of memory",
}


class ErrorDecoder:
    """Maps revert data to the custom error's name and named arguments, using the contract ABI."""

    def __init__(self, abi: Iterable[Mapping[str, Any]] = ()) -> None:
        self._errors: dict[str, tuple[str, list[str], list[str]]] = {}
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [str(i["type"]) for i in entry["inputs"]]
            names = [str(i["name"]) for i in entry["inputs"]]
            selector = "0x" + keccak(text=f"{entry['name']}({','.join(types)})")[:4].hex()
            self._errors[selector] = (str(entry["name"]), names, types)

    def decode(self, data: str | None, *, fallback: str = "") -> ContractRevertError:
        if not data or data == "0x":
            return ContractRevertError(
                "Reverted",
                {},
                message=f"transaction reverted without a reason{': ' + fallback if fallback else ''}",
            )
        data = data.lower()
        selector, body = data[:10], bytes.fromhex(data[10:])
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], body)
            return ContractRevertError(
                "Error", {"reason": reason}, selector=selector, message=f"reverted: {reason}"
            )
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], body)
            what = _PANIC_REASONS.get(code, "panic")
            return ContractRevertError(
                "Panic", {"code": code}, selector=selector, message=f"panic 0x{code:02x}: {what}"
            )
        known = self._errors.get(selector)
        if known is None:
            return ContractRevertError(
                "Unknown", {"data": data}, selector=selector, message=f"unknown revert data {data}"
            )
        name, names, types = known
        values = abi_decode(types, body)
        args = {n: _plain(t, v) for n, t, v in zip(names, types, values, strict=True)}
        return ContractRevertError(name, args, selector=selector)


def as_revert(exc: RpcError, errors: ErrorDecoder | None) -> FundflowError:
    """The decoded revert if the node's error answer is one (decoded with `errors`), else `exc` itself."""
    error = {"code": exc.code, "message": exc.rpc_message, "data": exc.data}
    if not looks_like_revert(error):
        return exc
    return (errors or ErrorDecoder()).decode(revert_data(error), fallback=exc.rpc_message)


def revert_data(error: Mapping[str, Any]) -> str | None:
    """The revert data in a JSON-RPC error object: Hardhat nests it, anvil/Geth/Besu give a hex string."""
    data = error.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        return data
    if isinstance(data, Mapping):
        inner = data.get("data")
        if isinstance(inner, str) and inner.startswith("0x"):
            return inner
    return None


def looks_like_revert(error: Mapping[str, Any]) -> bool:
    """True if a JSON-RPC error object reports a revert (by its data, its message or code 3)."""
    message = str(error.get("message", "")).lower()
    return (
        revert_data(error) is not None
        or "revert" in message
        or "execution reverted" in message
        or error.get("code") == 3
    )


def _plain(abi_type: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if abi_type == "address":
        return to_checksum_address(value)
    return value
