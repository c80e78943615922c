"""Money: integer minor units in, decimal text out, exactly. Never floats.

Every amount the ledger records is an integer in the loan currency's minor unit (fen for CNY, cents for
USD; IFundFlowLedger's "Units") and fits in a uint64. Most currencies have two decimals; a few (JPY, KRW ...)
have none, and their minor unit is the whole unit. Formatting and parsing are integer arithmetic on those
units: a float cannot hold every uint64 amount (2^53 fen is about 90 trillion yuan), so none is ever made.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, ValidationInfo, WithJsonSchema

from ledger.protocol.codes import MAX_AMOUNT

__all__ = [
    "ZERO_DECIMAL_CURRENCIES",
    "Amount",
    "decimals",
    "format_amount",
    "YuanAmount",
    "parse_amount",
    "parse_decimal",
    "parse_yuan",
    "yuan_text",
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


# --- issue 20: the API's one amount rule ---------------------------------------------------------------
# `"amount": 1000` (fen, CNY 10.00) next to `"amount": "1000"` (CNY 1,000.00) made a payment of 10.00 by
# accident. At the API an amount is written one way only: a decimal string in yuan. A number is refused with
# the string that would mean each reading, so the caller picks, instead of us guessing.


def yuan_text(amount: int, currency: str = "CNY") -> str:
    """Minor units as the plain decimal string the API reads and answers with: 123456 -> "1234.56" (no
    separators, no code; the form a caller sends back). Exact integer arithmetic."""
    value = amount if type(amount) is int else _whole_minor_units(amount)
    if currency in ZERO_DECIMAL_CURRENCIES:
        return str(value)
    whole, fraction = divmod(abs(value), 100)
    return f"{'-' if value < 0 else ''}{whole}.{fraction:02d}"


def parse_yuan(value: Any, field: str = "amount") -> int:
    """An amount as the API takes it: a decimal string in yuan ("1234.56" = 123456 fen), 1 to MAX_AMOUNT.
    A JSON number (integer or float) is refused with a sentence showing the string to write."""
    if isinstance(value, bool):
        raise ValueError(f'an amount is a decimal string in yuan, e.g. "{field}": "1234.56"')
    if isinstance(value, int):
        if not 0 < value <= MAX_AMOUNT:
            raise ValueError(
                f"amounts are decimal strings in yuan, not numbers, greater than zero and at most "
                f'{format_amount(MAX_AMOUNT)}: write e.g. "{field}": "1234.56"'
            )
        raise ValueError(
            f'amounts are decimal strings in yuan, not numbers: write "{field}": "{yuan_text(value)}" for '
            f'CNY {format_amount(value, code=False)}, or "{field}": "{value}.00" for CNY {value:,}.00'
        )
    if isinstance(value, float):
        raise ValueError(
            f'amounts are decimal strings in yuan, not numbers (a float loses cents): write "{field}": '
            f'"{value:.2f}" for CNY {value:,.2f}'
        )
    if not isinstance(value, str):
        raise ValueError(f'an amount is a decimal string in yuan, e.g. "{field}": "1234.56"')
    amount = parse_decimal(value)
    if amount <= 0:
        raise ValueError("the amount must be greater than zero")
    if amount > MAX_AMOUNT:
        raise ValueError(f"the amount is larger than the ledger can record ({MAX_AMOUNT} fen)")
    return amount


def _parse_yuan_field(value: Any, info: ValidationInfo) -> int:
    return parse_yuan(value, info.field_name or "amount")


YuanAmount = Annotated[
    int,
    BeforeValidator(_parse_yuan_field),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[0-9]+(\.[0-9]{1,2})?$",
            "description": 'A decimal string in yuan (major units): "1234.56" is CNY 1,234.56. Numbers are '
            'refused: 1000 could mean CNY 10.00 (fen) or CNY 1,000.00, so write "10.00" or "1000.00".',
            "examples": ["1234.56"],
        }
    ),
]
"""A pydantic field type for an amount sent to the API (see `parse_yuan`)."""
