"""Answers in a person's terms beside the machine's (issue 20): every amount in fen keeps its field and gains
a yuan string (`amount` -> `amount_yuan`, "1234.56", in the loan's `currency`); every block number gains the
block's time in the bank's zone (`block_number` -> `block_time`, ISO 8601 with the offset); a loan's maturity
(unix seconds) gains its calendar day (`maturity_date`).

One pass over an answer (dicts and lists, nested lots included) and one query for the block times, so a page
of a thousand lots costs one extra SELECT. A block the mirror has not kept gives a null time rather than a
guess.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, tzinfo
from typing import Any

from sqlmodel import Session

from ledger.mirror.read import Mirror
from ledger.protocol.dates import iso_date, iso_time
from ledger.protocol.money import yuan_text

__all__ = ["AMOUNT_FIELDS", "TIME_FIELDS", "humanize", "times_of"]

AMOUNT_FIELDS = ("principal", "disbursed", "repaid", "outstanding", "amount", "remaining", "value")
"""Fields holding fen; each gets a `<name>_yuan` companion."""

TIME_FIELDS = {
    "block_number": "block_time",
    "confirmation_block": "confirmation_time",
    "updated_block": "updated_time",
    "last_seen_block": "last_seen_time",
    "first_seen_block": "first_seen_time",
}
"""Block-number field -> the field with that block's time."""

# Free-form or chain-shaped parts of an answer: decoded event arguments stay as the chain wrote them.
_SKIP = frozenset({"args", "details", "terms", "events", "facts"})


def _dicts(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, dict):
        yield data
        for key, value in data.items():
            if key not in _SKIP and isinstance(value, dict | list):
                yield from _dicts(value)
    elif isinstance(data, list):
        for item in data:
            yield from _dicts(item)


def times_of(session: Session, numbers: Any) -> dict[int, int]:
    """Block timestamps by number for the mirrored blocks among `numbers`."""
    return Mirror(session).block_times(n for n in numbers if isinstance(n, int))


def humanize(session: Session, zone: tzinfo, data: Any, currency: str = "CNY") -> Any:
    """Adds the yuan and time companions to every dict in `data` (in place) and returns `data`."""
    dicts = list(_dicts(data))
    numbers = {d[k] for d in dicts for k in TIME_FIELDS if isinstance(d.get(k), int)}
    times = times_of(session, numbers) if numbers else {}
    for d in dicts:
        cur = d.get("currency") or currency
        money = False
        for name in AMOUNT_FIELDS:
            if name in d and not isinstance(d[name], bool | dict | list):
                value = d[name]
                d[f"{name}_yuan"] = yuan_text(int(value), cur) if isinstance(value, int) else None
                money = True
        if money and not d.get("currency"):
            d["currency"] = cur
        for name, out in TIME_FIELDS.items():
            if name in d:
                stamp = times.get(d[name]) if isinstance(d[name], int) else None
                d[out] = None if stamp is None else iso_time(stamp, zone)
        if isinstance(d.get("maturity"), int) and not isinstance(d["maturity"], bool):
            # A maturity is entered as a calendar day (midnight UTC): that day, whatever the bank's zone.
            d["maturity_date"] = iso_date(d["maturity"], UTC)
    return data
