"""Fast decoding of ledger event logs straight from the ABI.

Every event the ledger (and OpenZeppelin's AccessControl/Pausable) emits has only static fields, so each
field is one 32-byte word, either a topic or a slice of `data`. Decoding is then a table lookup and a slice
per field, several times faster than web3's per-log decoder, which is the indexer's bottleneck otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from sha3 import keccak_256

from ledger.errors import ValidationError

__all__ = ["DecodedEvent", "EventDecoder", "EventSpec", "canonical_type", "event_signature"]


@dataclass(slots=True)
class DecodedEvent:
    """One decoded log, with where it sits on chain. Treat as read-only. (Not a frozen dataclass: a frozen
    one's __init__ sets each field through object.__setattr__, six times slower, and a backfill builds two
    per event: one in the decoding worker, one in the indexer.)"""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: str
    transaction_hash: str
    log_index: int
    transaction_index: int = 0
    removed: bool = False
    raw_topics: tuple[str, ...] = field(default=(), repr=False)
    raw_data: str = field(default="0x", repr=False)


@lru_cache(maxsize=65536)
def _address(word_hex: str) -> str:
    """The address in the low 20 bytes of a word, EIP-55 checksummed (as eth_utils.to_checksum_address
    writes it; tested against it). Written out here so that the indexer's decoding worker, which imports
    this module, starts without eth_utils (a second of imports on this machine)."""
    lower = word_hex[24:].lower()
    digest = keccak_256(lower.encode("ascii")).hexdigest()
    return "0x" + "".join(c.upper() if d >= "8" else c for c, d in zip(lower, digest, strict=False))


def _uint(word_hex: str) -> int:
    return int(word_hex, 16)


def _bool(word_hex: str) -> bool:
    return word_hex[-1] != "0"


def _bytes32(word_hex: str) -> str:
    return "0x" + word_hex


def _fixed_bytes(size: int) -> Callable[[str], str]:
    def convert(word_hex: str) -> str:
        return "0x" + word_hex[: size * 2]

    return convert


def _int(bits: int) -> Callable[[str], int]:
    def convert(word_hex: str) -> int:
        value = int(word_hex, 16)
        return value - (1 << 256) if value >> 255 else value

    return convert


def canonical_type(abi_input: Mapping[str, Any]) -> str:
    """The ABI type of an input; enums arrive as uint8 in the ABI (`internalType` keeps the enum name)."""
    return str(abi_input["type"])


def _converter(abi_type: str) -> Callable[[str], Any]:
    if abi_type == "address":
        return _address
    if abi_type == "bool":
        return _bool
    if abi_type == "bytes32":
        return _bytes32
    if abi_type.startswith("uint"):
        return _uint
    if abi_type.startswith("int"):
        return _int(int(abi_type[3:] or 256))
    if abi_type.startswith("bytes") and abi_type[5:].isdigit():
        return _fixed_bytes(int(abi_type[5:]))
    raise ValidationError(
        f"event field type {abi_type!r} is not static",
        hint="the fast decoder only handles events whose fields are all one-word static types",
    )


def event_signature(abi_event: Mapping[str, Any]) -> str:
    types = ",".join(canonical_type(i) for i in abi_event["inputs"])
    return f"{abi_event['name']}({types})"


@dataclass(frozen=True)
class EventSpec:
    """What the decoder knows of one event: its name, topic0, and per field where the word comes from."""

    name: str
    topic0: str
    inputs: tuple[tuple[str, str, bool], ...]  # (name, abi type, indexed)
    _fields: tuple[tuple[str, bool, int, Callable[[str], Any]], ...] = field(repr=False, default=())

    @classmethod
    def from_abi(cls, abi_event: Mapping[str, Any]) -> EventSpec:
        inputs = tuple(
            (str(i["name"]), canonical_type(i), bool(i.get("indexed"))) for i in abi_event["inputs"]
        )
        fields: list[tuple[str, bool, int, Callable[[str], Any]]] = []
        topic_pos, data_pos = 1, 0
        for name, abi_type, indexed in inputs:
            if indexed:
                fields.append((name, True, topic_pos, _converter(abi_type)))
                topic_pos += 1
            else:
                fields.append((name, False, data_pos, _converter(abi_type)))
                data_pos += 1
        topic0 = "0x" + keccak_256(event_signature(abi_event).encode()).hexdigest()
        return cls(abi_event["name"], topic0, inputs, tuple(fields))

    @cached_property
    def _decode_rpc(self) -> Callable[[list[str] | tuple[str, ...], str], dict[str, Any]]:
        """The fields of a JSON-RPC log ("0x"-prefixed topics, `data` without its "0x"), decoded by one
        generated function: a dict display with each field's slice and conversion written out, as
        dataclasses and namedtuple generate their code. It does exactly what the generic loop in
        `decode_args` does, without a function call per field; the indexer runs it for every event."""
        scope: dict[str, Any] = {"_address": _address}
        items = []
        for i, (name, indexed, pos, convert) in enumerate(self._fields):
            word = f"topics[{pos}][2:]" if indexed else f"body[{64 * pos}:{64 * pos + 64}]"
            if convert is _uint:
                value = f"int({word}, 16)"
            elif convert is _bytes32:
                value = f"'0x' + {word}"
            elif convert is _bool:
                value = f"topics[{pos}][-1] != '0'" if indexed else f"body[{64 * pos + 63}] != '0'"
            elif convert is _address:
                value = f"_address({word})"
            else:
                scope[f"_c{i}"] = convert
                value = f"_c{i}({word})"
            items.append(f"{name!r}: {value}")
        source = f"def decode(topics, body):\n    return {{{', '.join(items)}}}\n"
        exec(compile(source, f"<decoder of {self.name}>", "exec"), scope)  # noqa: S102 (our own text)
        decode: Callable[[list[str] | tuple[str, ...], str], dict[str, Any]] = scope["decode"]
        return decode

    @property
    def positions(self) -> dict[str, tuple[bool, int]]:
        """Where each field's word sits in a log: (True, topic index) or (False, data word index)."""
        return {name: (indexed, pos) for name, indexed, pos, _ in self._fields}

    @property
    def data_words(self) -> int:
        return sum(1 for _, _, indexed in self.inputs if not indexed)

    @property
    def topic_count(self) -> int:
        return 1 + sum(1 for _, _, indexed in self.inputs if indexed)

    @cached_property
    def _shape(self) -> tuple[int, int]:
        """(topics, data hex digits) a well-formed log of this event has."""
        return self.topic_count, 64 * self.data_words

    def decode_args(self, topics: list[str] | tuple[str, ...], data: str) -> dict[str, Any]:
        topic_count, digits = self._shape
        if len(topics) != topic_count:
            raise ValidationError(
                f"log for {self.name} has {len(topics)} topics, expected {topic_count}",
                hint="the log does not come from the contract this ABI describes",
            )
        body = data[2:] if data[:2] == "0x" else data
        if len(body) != digits:
            raise ValidationError(
                f"log for {self.name} has {len(body) // 2} data bytes, expected {digits // 2}",
                hint="the log does not come from the contract this ABI describes",
            )
        if topics[0][:2] == "0x" and topics[-1][:2] == "0x":  # as nodes send them: slice the prefix off
            return self._decode_rpc(topics, body)
        return {
            name: convert(topics[pos] if indexed else body[64 * pos : 64 * pos + 64])
            for name, indexed, pos, convert in self._fields
        }


class EventDecoder:
    """Decodes raw JSON-RPC logs (dicts with hex strings, as `eth_getLogs` returns them)."""

    def __init__(self, abi: Iterable[Mapping[str, Any]]) -> None:
        self._by_topic: dict[str, EventSpec] = {}
        self.by_name: dict[str, EventSpec] = {}
        for entry in abi:
            if entry.get("type") == "event" and not entry.get("anonymous"):
                spec = EventSpec.from_abi(entry)
                self._by_topic[spec.topic0] = spec
                self.by_name[spec.name] = spec

    @property
    def topics(self) -> list[str]:
        return list(self._by_topic)

    def spec_for(self, topic0: str) -> EventSpec | None:
        return self._by_topic.get(topic0.lower())

    def decode(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """Decode one log; returns None for a log whose topic0 is not in the ABI.

        Takes JSON-RPC logs (0x-hex strings, the fast path: the indexer decodes every event through it)
        and web3-style logs (bytes, ints) alike."""
        topics = log["topics"]
        if not topics:
            return None
        data = log["data"]
        if type(data) is not str or type(topics[0]) is not str or type(topics[-1]) is not str:
            return self._decode_any(log)
        spec = self._by_topic.get(topics[0]) or self._by_topic.get(topics[0].lower())
        if spec is None:
            return None
        block_hash, tx_hash = log["blockHash"], log["transactionHash"]
        return DecodedEvent(
            spec.name,
            spec.decode_args(topics, data),
            _checksummed(log["address"]),
            int(log["blockNumber"], 16),
            block_hash if block_hash[:2] == "0x" and block_hash.islower() else _as_hex_str(block_hash),
            tx_hash if tx_hash[:2] == "0x" and tx_hash.islower() else _as_hex_str(tx_hash),
            int(log["logIndex"], 16),
            int(log.get("transactionIndex", "0x0"), 16),
            bool(log.get("removed", False)),
            tuple(topics),
            data,
        )

    def _decode_any(self, log: Mapping[str, Any]) -> DecodedEvent | None:
        """`decode` for logs whose fields are bytes and ints (web3's AttributeDicts)."""
        topics = [t if isinstance(t, str) else "0x" + bytes(t).hex() for t in log["topics"]]
        spec = self._by_topic.get(topics[0].lower())
        if spec is None:
            return None
        data = log["data"] if isinstance(log["data"], str) else "0x" + bytes(log["data"]).hex()
        return DecodedEvent(
            name=spec.name,
            args=spec.decode_args(topics, data),
            address=_checksummed(log["address"]),
            block_number=_as_int(log["blockNumber"]),
            block_hash=_as_hex_str(log["blockHash"]),
            transaction_hash=_as_hex_str(log["transactionHash"]),
            log_index=_as_int(log["logIndex"]),
            transaction_index=_as_int(log.get("transactionIndex", 0)),
            removed=bool(log.get("removed", False)),
            raw_topics=tuple(topics),
            raw_data=data,
        )

    def decode_all(self, logs: Iterable[Mapping[str, Any]]) -> list[DecodedEvent]:
        out = []
        for log in logs:
            event = self.decode(log)
            if event is not None:
                out.append(event)
        return out


def _as_int(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value, 16)


def _as_hex(value: Any) -> str:
    text = value if isinstance(value, str) else "0x" + bytes(value).hex()
    return text[2:].lower() if text.startswith("0x") else text.lower()


def _as_hex_str(value: Any) -> str:
    if type(value) is str and value[:2] == "0x" and value.islower():
        return value
    return "0x" + _as_hex(value)


def _checksummed(value: Any) -> str:
    if type(value) is str:
        return _address_text(value)
    return _address(_as_hex(value).rjust(64, "0"))


@lru_cache(maxsize=4096)
def _address_text(text: str) -> str:
    return _address(_as_hex(text).rjust(64, "0"))
