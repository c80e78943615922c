"""How event arguments are written as JSON: in the raw events table's `args`, and wherever the mirror hands
arguments on. Integers wider than 53 bits travel as decimal strings, so no JSON reader (JavaScript included)
ever rounds an amount; everything else is orjson's compact output.

It is protocol, not database: the indexer's decoding worker (`ledger.mirror.decoding`) uses it without
importing SQLAlchemy, and the store's engines serialise JSON columns with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

from ledger.protocol.events import EventDecoder

__all__ = ["ArgsCodec", "json_text"]


def json_text(value: Any) -> str:
    """JSON as the JSON columns store it."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. an integer wider than 64 bits, which orjson refuses and json writes exactly
        return json.dumps(value)


class ArgsCodec:
    """Event arguments to JSON and back: integers wider than 53 bits travel as decimal strings, so no JSON
    reader (JavaScript included) ever rounds an amount."""

    def __init__(self, decoder: EventDecoder) -> None:
        self._wide: dict[str, tuple[str, ...]] = {}
        self._ints: dict[str, tuple[str, ...]] = {}
        for name, spec in decoder.by_name.items():
            ints = [n for n, t, _ in spec.inputs if t.startswith(("uint", "int"))]
            self._ints[name] = tuple(ints)
            self._wide[name] = tuple(
                n for n, t, _ in spec.inputs if t.startswith(("uint", "int")) and _bits(t) > 53
            )

    def to_json(self, name: str, args: Mapping[str, Any]) -> dict[str, Any]:
        wide = self._wide.get(name, ())
        if not wide:
            return dict(args)
        out = dict(args)
        for field in wide:
            out[field] = str(out[field])
        return out

    def from_json(self, name: str, stored: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(stored)
        for field in self._ints.get(name, ()):
            out[field] = int(out[field])
        return out


def _bits(abi_type: str) -> int:
    digits = abi_type.lstrip("uint")
    return int(digits) if digits else 256
