"""Answers in a person's terms beside the machine's (issue 20): every amount in fen keeps its field and gains
a yuan string (`amount` -> `amount_yuan`, "1234.56", in the loan's `currency`); every block number gains the
block's time in the bank's zone (`block_number` -> `block_time`, ISO 8601 with the offset); a loan's maturity
(unix seconds) gains its calendar day (`maturity_date`).

One pass over an answer (dicts and lists, nested lots included) and one query for the block times, so a page
of a thousand lots costs one extra SELECT. A block the mirror has not kept gives a null time rather than a
guess.
"""

from __future__ import annotations

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


def _dicts(data: Any) -> list[dict[str, Any]]:
    """Every dict in `data`, nested ones included (order does not matter); iterative, for long trails."""
    out: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.append(item)
            stack.extend(v for k, v in item.items() if v and isinstance(v, dict | list) and k not in _SKIP)
        elif isinstance(item, list):
            stack.extend(item)
    return out


def times_of(session: Session, numbers: Any) -> dict[int, int]:
    """Block timestamps by number for the mirrored blocks among `numbers`."""
    return Mirror(session).block_times(n for n in numbers if isinstance(n, int))


def humanize(session: Session, zone: tzinfo, data: Any, currency: str = "CNY") -> Any:
    """Adds the yuan and time companions to every dict in `data` (in place) and returns `data`."""
    dicts = list(_dicts(data))
    numbers = {d[k] for d in dicts for k in TIME_FIELDS if isinstance(d.get(k), int)}
    # One ISO string per block, not per row: a trail's lots share a handful of blocks.
    stamps = {n: iso_time(ts, zone) for n, ts in (times_of(session, numbers) if numbers else {}).items()}
    amount_fields = [(name, f"{name}_yuan") for name in AMOUNT_FIELDS]
    time_fields = list(TIME_FIELDS.items())
    for d in dicts:
        cur = d.get("currency") or currency
        money = False
        for name, out in amount_fields:
            if name in d:
                value = d[name]
                if type(value) is int:
                    d[out] = yuan_text(value, cur)
                elif isinstance(value, bool | dict | list):
                    continue
                else:
                    d[out] = yuan_text(int(value), cur) if isinstance(value, int) else None
                money = True
        if money and not d.get("currency"):
            d["currency"] = cur
        for name, out in time_fields:
            if name in d:
                d[out] = stamps.get(d[name])
        maturity = d.get("maturity")
        if type(maturity) is int:
            # A maturity is entered as a calendar day (midnight UTC): that day, whatever the bank's zone.
            d["maturity_date"] = iso_date(maturity, UTC)
    return data
