"""Recompute a loan's hash chain from its events, exactly as the contract does.

The rule (IFundFlowLedger's NatSpec): `head = keccak256(abi.encode(previousHead, uint8(kind), fields...))`,
fields in declaration order, leaving out `head` and, for the lot-creating events, `lotId` (which is the head
they produce). This module derives each event's encoding from the ABI, so the rule lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from sha3 import keccak_256

from ledger.errors import ValidationError
from ledger.protocol.codes import EventKind, VoucherEventKind
from ledger.protocol.events import EventSpec

__all__ = [
    "CHAINED_EVENTS",
    "VOUCHER_CHAINED_EVENTS",
    "VOUCHER_EVENTS",
    "LOT_CREATING_EVENTS",
    "ZERO_HEAD",
    "EventKind",
    "HashChain",
    "HeadMismatch",
    "ID_FROM_HEAD",
    "part_id_of",
    "event_head",
]

ZERO_HEAD = "0x" + "00" * 32

CHAINED_EVENTS = frozenset(kind.name for kind in EventKind)
VOUCHER_CHAINED_EVENTS = frozenset(kind.name for kind in VoucherEventKind)
VOUCHER_EVENTS = VOUCHER_CHAINED_EVENTS | {"CreditLineSet"}
"""Every event of the voucher contract; the chained ones extend the voucher's chain (`voucherId`)."""
LOT_CREATING_EVENTS = frozenset({"Disbursed", "Paid"})
ID_FROM_HEAD = {"Disbursed": "lotId", "Paid": "lotId"}
"""Events whose new id is the head they produce, so it is left out of the step. (A voucher part's number is
its `PartTransferred` head's low 32 bits and is not in the event at all: see `part_id_of`.)"""


def part_id_of(head: str) -> int:
    """The number of the voucher part a `PartTransferred` with this head created: the head's low 32 bits."""
    return int(head[-8:], 16)


def _hex_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _word(abi_type: str) -> Callable[[Any], bytes]:
    """How `abi.encode` writes one value of a static one-word type: 32 bytes, numbers and addresses
    right-aligned, fixed-size byte strings left-aligned. Every chained event's fields are of such types, so
    `abi.encode(previousHead, kind, fields...)` is just their words end to end."""

    def fixed(size: int, align_left: bool) -> Callable[[Any], bytes]:
        def convert(value: Any) -> bytes:
            raw = _hex_bytes(value)
            if len(raw) != size:
                raise ValidationError(f"expected {size} bytes for {abi_type}, got {len(raw)}")
            return raw.ljust(32, b"\0") if align_left else raw.rjust(32, b"\0")

        return convert

    if abi_type == "address":
        return fixed(20, align_left=False)
    if abi_type == "bool":
        return lambda v: (1 if v else 0).to_bytes(32, "big")
    if abi_type.startswith("uint"):
        return lambda v: int(v).to_bytes(32, "big")
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        return fixed(int(abi_type[5:]), align_left=True)
    raise ValidationError(f"{abi_type} is not a one-word static type the hash chain can encode")


def keccak(data: bytes) -> bytes:
    """Keccak-256 (pysha3's C implementation: a quarter of eth_utils' cost, and the indexer hashes every
    event)."""
    return keccak_256(data).digest()


@dataclass(frozen=True)
class _Encoding:
    kind_word: bytes
    fields: tuple[tuple[str, Callable[[Any], bytes]], ...]  # hashed after (previousHead, kind)
    # The same fields as slices of the log to copy: (True, topic index, 0), or (False, first hex digit, end)
    # for a run of consecutive data words. A log holds each static field as exactly the word `abi.encode`
    # writes, so the preimage is the log's own words.
    runs: tuple[tuple[bool, int, int], ...] = ()
    kind_hex: str = ""


def _runs(words: list[tuple[bool, int]]) -> tuple[tuple[bool, int, int], ...]:
    runs: list[tuple[bool, int, int]] = []
    for indexed, position in words:
        if indexed:
            runs.append((True, position, 0))
        elif runs and not runs[-1][0] and runs[-1][2] == 64 * position:
            runs[-1] = (False, runs[-1][1], 64 * position + 64)
        else:
            runs.append((False, 64 * position, 64 * position + 64))
    return tuple(runs)


class HeadMismatch(ValidationError):
    """An event's head does not follow from the previous head and its payload."""


class HashChain:
    """Knows each chained event's encoding (from the contract ABI) and computes heads.

    `kinds` is the contract's event-kind enum: the ledger's `EventKind` (the default) or the voucher
    contract's `VoucherEventKind`, whose chain follows the same rule (no event of it creates an id from its
    head, so only `head` is left out)."""

    def __init__(self, abi: Iterable[Mapping[str, Any]], *, kinds: type[IntEnum] = EventKind) -> None:
        self._encodings: dict[str, _Encoding] = {}
        chained = frozenset(kind.name for kind in kinds)
        for entry in abi:
            if entry.get("type") != "event" or entry.get("name") not in chained:
                continue
            name = str(entry["name"])
            skip = {"head", ID_FROM_HEAD[name]} if name in ID_FROM_HEAD else {"head"}
            fields = tuple(
                (str(i["name"]), _word(str(i["type"]))) for i in entry["inputs"] if i["name"] not in skip
            )
            positions = EventSpec.from_abi(entry).positions
            runs = _runs([positions[field_name] for field_name, _ in fields])
            kind_word = int(kinds[name]).to_bytes(32, "big")
            self._encodings[name] = _Encoding(kind_word, fields, runs, kind_word.hex())
        missing = chained - set(self._encodings)
        if missing:
            raise ValidationError(
                f"ABI lacks chained events: {sorted(missing)}",
                hint="compile the contract that matches this version of the ledger package",
            )

    def is_chained(self, event_name: str) -> bool:
        return event_name in self._encodings

    def step(self, previous_head: str, event_name: str, args: Mapping[str, Any]) -> str:
        """The head produced by applying event `event_name` with `args` on top of `previous_head`."""
        enc = self._encodings[event_name]
        preimage = b"".join(
            [_hex_bytes(previous_head), enc.kind_word, *(word(args[n]) for n, word in enc.fields)]
        )
        return "0x" + keccak(preimage).hex()

    def step_log(self, previous_head: str, event_name: str, topics: Sequence[str], data: str) -> str:
        """`step` computed from the log's raw words (0x-hex topics and data as the node returns them): no
        decoding and re-encoding, one hex parse per event. Must equal `step` on the decoded arguments."""
        enc = self._encodings[event_name]
        body = data[2:]
        parts = [previous_head[2:], enc.kind_hex]
        for is_topic, start, end in enc.runs:
            parts.append(topics[start][2:] if is_topic else body[start:end])
        return "0x" + keccak(bytes.fromhex("".join(parts))).hex()

    def verify(
        self,
        previous_head: str,
        event_name: str,
        args: Mapping[str, Any],
        log: tuple[Sequence[str], str] | None = None,
    ) -> str:
        """Check the event's stated head follows from `previous_head`; return it or raise HeadMismatch.
        With `log` = (topics, data), the head is computed from the raw words (the indexer's fast path)."""
        if log is not None:
            expected = self.step_log(previous_head, event_name, log[0], log[1])
        else:
            expected = self.step(previous_head, event_name, args)
        stated = event_head(event_name, args)
        if expected != stated.lower():
            raise HeadMismatch(
                f"{event_name} states head {stated} but previous head {previous_head} and its payload give "
                f"{expected}",
                hint="the event was altered or an earlier event of the loan is missing; the mirror cannot be "
                "trusted past this point",
            )
        return expected


def event_head(event_name: str, args: Mapping[str, Any]) -> str:
    """The head an event carries: `lotId` for lot-creating events, else its `head` field."""
    return str(args["lotId"] if event_name in LOT_CREATING_EVENTS else args["head"])
