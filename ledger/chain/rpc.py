"""JSON-RPC 2.0 over a `Transport`: single calls, batches, raw answers, and the shapes the node answers in.

The rules it keeps:
- orjson both ways, no web3 formatting layer: on a local node the formatting cost more than the round trip.
- An error object in the answer is an `RpcError` carrying the method, code, message and data (revert data
  lives there); an answer that is not JSON is a `ChainError` naming the node. Transport failures pass through
  as the transport raised them (`ChainError`).
- A batch answers in call order whatever order the node used, and raises on the first error in it.
- `answer` hands back the node's bytes unparsed, for a caller (the indexer's decoding worker) that parses
  them elsewhere; it is the hot path of a backfill, so it does nothing but encode and post.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.chain.transport import Transport
from ledger.errors import ChainError

__all__ = ["BlockHeader", "JsonRpc", "RpcError", "block_tag"]


class RpcError(ChainError):
    """The node answered a JSON-RPC request with an error object."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        super().__init__(
            f"{method} failed: {message} (code {code})",
            hint="check the request against the node's JSON-RPC documentation",
        )
        self.method = method
        self.code = code
        self.rpc_message = message
        self.data = data


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """The header fields the indexer and verifier use; `raw` is the node's object as it came."""

    number: int
    hash: str
    parent_hash: str
    timestamp: int
    state_root: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_rpc(cls, block: Mapping[str, Any]) -> BlockHeader:
        return cls(
            number=int(block["number"], 16),
            hash=block["hash"],
            parent_hash=block["parentHash"],
            timestamp=int(block["timestamp"], 16),
            state_root=block.get("stateRoot", ""),
            raw=block,
        )


def block_tag(block: int | str) -> str:
    """A block number as JSON-RPC wants it (0x-hex), or a tag ("latest", "pending") unchanged."""
    return hex(block) if isinstance(block, int) else block


class JsonRpc:
    """JSON-RPC requests to the node behind `transport`; `display_url` names it in errors."""

    def __init__(self, transport: Transport, display_url: str) -> None:
        self.transport = transport
        self.display_url = display_url
        self._ids = itertools.count(1)

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        """One call's result; an error answer raises RpcError."""
        response = self._parse(self.answer(method, params))
        if "error" in response:
            err = response["error"]
            raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
        return response.get("result")

    def answer(self, method: str, params: Sequence[Any] = ()) -> bytes:
        """The node's answer to one call as it came, unparsed: `{"result": ...}` or `{"error": {...}}`."""
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": next(self._ids)}
        return self.transport.post(orjson.dumps(request))

    def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        """Many calls in one round trip; results in call order."""
        if not calls:
            return []
        first = next(self._ids)
        for _ in range(len(calls) - 1):
            next(self._ids)
        responses = self._parse(
            self.transport.post(
                orjson.dumps(
                    [
                        {"jsonrpc": "2.0", "method": m, "params": list(p), "id": first + i}
                        for i, (m, p) in enumerate(calls)
                    ]
                )
            )
        )
        if isinstance(responses, Mapping):  # some nodes answer a whole batch with one error object
            whole: Any = responses.get("error") or {}
            raise RpcError("batch", int(whole.get("code", 0)), str(whole.get("message", "batch refused")))
        ordered: list[Any] = sorted(responses, key=lambda r: int(r["id"]))
        out = []
        for (method, _), response in zip(calls, ordered, strict=True):
            if "error" in response:
                err = response["error"]
                raise RpcError(method, int(err.get("code", 0)), str(err.get("message", "")), err.get("data"))
            out.append(response.get("result"))
        return out

    def _parse(self, answer: bytes) -> Any:
        try:
            return orjson.loads(answer)
        except orjson.JSONDecodeError as exc:
            raise ChainError(
                f"{self.display_url} answered something that is not JSON", hint="check the URL"
            ) from exc
