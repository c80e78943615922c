"""Money: integer minor units in, decimal text out, exactly. Never floats.

Every amount the ledger records is an integer in the loan currency's minor unit (fen for CNY, cents for
USD; IFundFlowLedger's "Units") and fits in a uint64. Most currencies have two decimals; a few (JPY, KRW ...)
have none, and their minor unit is the whole unit. Formatting and parsing are integer arithmetic on those
units: a float cannot hold every uint64 amount (2^53 fen is about 90 trillion yuan), so none is ever made.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from ledger.protocol.codes import MAX_AMOUNT

__all__ = [
    "ZERO_DECIMAL_CURRENCIES",
    "Amount",
    "decimals",
    "format_amount",
    "parse_amount",
    "parse_decimal",
]

ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "VND", "CLP", "ISK"})


def decimals(currency: str) -> int:
    """How many decimals the currency's major unit has: 0 for the zero-decimal currencies, else 2."""
    return 0 if currency in ZERO_DECIMAL_CURRENCIES else 2


def _whole_minor_units(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(
            f"an amount is an integer number of minor units (fen), not {type(amount).__name__} {amount!r}"
        )
    return int(amount)  # an int subclass (IntEnum) as a plain int


def format_amount(amount: int, currency: str = "CNY", *, code: bool = True) -> str:
    """Minor units as decimal text with thousands separators: `format_amount(123456789)` is
    "CNY 1,234,567.89"; `code=False` leaves the currency code out ("1,234,567.89", the dashboard's and the
    API error sentences' form). Negative amounts get a leading "-". Anything but an int (a float, a bool, a
    decimal string) raises TypeError: convert and check at the edge, where the value comes in."""
    value = amount if type(amount) is int else _whole_minor_units(amount)
    if currency in ZERO_DECIMAL_CURRENCIES:
        text = f"{value:,}"
    else:  # two decimals, written out: the dashboard formats thousands of amounts per page
        whole, fraction = divmod(abs(value), 100)
        text = f"{'-' if value < 0 else ''}{whole:,}.{fraction:02d}"
    return f"{currency} {text}" if code else text


# [0-9], not \d: Python's \d (and int()) also take other scripts' digits ("٣" is 3), which would let an
# amount read differently to a person than to the ledger.
_DECIMAL = {2: re.compile(r"([0-9]{1,20})(?:\.([0-9]{1,2}))?"), 0: re.compile(r"([0-9]{1,20})()")}
_DECIMAL_RULE = {2: ('"1234.56"', "at most two decimals"), 0: ('"1234"', "no decimals")}


def parse_decimal(text: str, currency: str = "CNY") -> int:
    """A decimal in major units as minor units, exactly: "1234.56" is 123456 fen. ASCII digits 0-9 only, at
    most as many decimals as the currency has, no sign, exponent or thousands separator; surrounding
    whitespace is ignored. Raises ValueError with a sentence saying how to write it."""
    places = decimals(currency)
    match = _DECIMAL[places].fullmatch(text.strip())
    if match is None:
        example, rule = _DECIMAL_RULE[places]
        foreign = [c for c in text if c.isdigit() and not c.isascii()]
        why = f"{foreign[0]!r} is not an ASCII digit; " if foreign else ""
        raise ValueError(
            f"{text!r} is not a decimal amount: {why}write it like {example} "
            f"(ASCII digits 0-9, {rule}, no sign, exponent or thousands separator)"
        )
    return int(match[1]) * 10**places + int((match[2] or "").ljust(places, "0") or 0)


def parse_amount(value: Any) -> int:
    """An amount as a caller sends it: an integer = minor units (fen); a string = a decimal in major units
    ("1234.56" = 123456 fen). Floats (and bools) are refused; the result is 1 to MAX_AMOUNT."""
    if isinstance(value, bool | float):
        raise ValueError(
            "floats are refused because they lose precision: send an integer number of minor units "
            '(fen), e.g. 123456, or a decimal string in yuan, e.g. "1234.56"'
        )
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str):
        amount = parse_decimal(value)
    else:
        raise ValueError('an amount is an integer in fen or a decimal string like "1234.56"')
    if amount <= 0:
        raise ValueError("the amount must be greater than zero")
    if amount > MAX_AMOUNT:
        raise ValueError(f"the amount is larger than the ledger can record ({MAX_AMOUNT} fen)")
    return amount


Amount = Annotated[
    int,
    BeforeValidator(parse_amount),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$"},
            ],
            "description": 'Integer minor units (fen), or a decimal string in major units ("1234.56"). '
            "Floats and exponents are refused.",
            "examples": [123456, "1234.56"],
        }
    ),
]
"""A pydantic field type for an amount sent by a caller (see `parse_amount`)."""
