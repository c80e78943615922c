"""ledger.protocol.money: integer minor units in, exact decimal text out; decimal text in, minor units out.
Every formatter of the code base delegates to it and keeps its own output form."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.errors import _money as error_money
from api.routes.dashboard import money as dashboard_money
from ledger.monitoring.rules import fmt_money
from ledger.protocol.codes import MAX_AMOUNT
from ledger.protocol.money import decimals, format_amount, parse_amount, parse_decimal

# ---------------------------------------------------------------------------------------------- formatting


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "CNY 0.00"),
        (1, "CNY 0.01"),
        (99, "CNY 0.99"),
        (100, "CNY 1.00"),
        (123_456, "CNY 1,234.56"),
        (-1, "CNY -0.01"),
        (-123_456, "CNY -1,234.56"),
        (10**15, "CNY 10,000,000,000,000.00"),
        (MAX_AMOUNT, "CNY 184,467,440,737,095,516.15"),
        (2**64, "CNY 184,467,440,737,095,516.16"),
    ],
)
def test_format_amount_is_exact_at_the_boundaries(fen: int, text: str) -> None:
    assert format_amount(fen) == text
    assert format_amount(fen, "CNY", code=False) == text.removeprefix("CNY ")


def test_format_amount_knows_zero_decimal_currencies() -> None:
    assert format_amount(1500, "JPY") == "JPY 1,500"
    assert format_amount(-5, "KRW") == "KRW -5"
    assert format_amount(0, "JPY", code=False) == "0"
    assert format_amount(5, "USD") == "USD 0.05"
    assert (decimals("JPY"), decimals("CNY"), decimals("EUR")) == (0, 2, 2)


@pytest.mark.parametrize("value", [1.5, 100.0, True, False, "100", Decimal("1"), None])
def test_format_amount_refuses_anything_but_an_integer(value: Any) -> None:
    with pytest.raises(TypeError, match="an amount is an integer number of minor units"):
        format_amount(value)


@given(st.integers(min_value=-(10**30), max_value=10**30))
def test_format_amount_equals_exact_decimal_arithmetic(fen: int) -> None:
    with localcontext() as exact:
        exact.prec = 60
        assert format_amount(fen, "USD") == f"USD {Decimal(fen).scaleb(-2):,.2f}"


@given(st.integers(min_value=1, max_value=MAX_AMOUNT))
def test_formatted_amounts_parse_back_to_the_same_fen(fen: int) -> None:
    assert parse_decimal(format_amount(fen, code=False).replace(",", "")) == fen
    assert parse_decimal(format_amount(fen, "JPY", code=False).replace(",", ""), "JPY") == fen


def test_every_formatter_keeps_its_output_and_delegates() -> None:
    # monitoring's explanations: currency code first
    assert fmt_money(123_456_789, "CNY") == "CNY 1,234,567.89"
    assert fmt_money(1500, "JPY") == "JPY 1,500"
    # API error sentences: bare, anything that is not a number shown as it came
    assert error_money(400_001) == "4,000.01"
    assert error_money("12") == "0.12"
    assert (error_money(None), error_money("abc")) == ("None", "abc")
    # the dashboard's filter: bare, negative with a sign
    assert dashboard_money(-123_456) == "-1,234.56"
    assert dashboard_money("12") == "0.12"


def test_api_error_sentences_no_longer_round_large_amounts_through_a_float() -> None:
    assert error_money(MAX_AMOUNT) == "184,467,440,737,095,516.15"  # float division gave ...520.00
    assert error_money(2**53 + 1) == "90,071,992,547,409.93"


def test_monitoring_formats_negative_amounts_with_a_sign() -> None:
    assert fmt_money(-1, "CNY") == "CNY -0.01"  # floor division gave "CNY -1.99"


# ---------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("0", 0),
        ("0.01", 1),
        ("1", 100),
        ("1.5", 150),
        ("1.05", 105),
        (" 12.34 ", 1234),
        ("00.10", 10),
        ("184467440737095516.15", MAX_AMOUNT),
        ("99999999999999999999.99", 10**22 - 1),
    ],
)
def test_parse_decimal_turns_yuan_text_into_exact_fen(text: str, fen: int) -> None:
    assert parse_decimal(text) == fen


@pytest.mark.parametrize("text", ["1e3", "-1", "+1", "1.234", "1,234.56", "", ".5", "1.", "0x10", "1 000"])
def test_parse_decimal_refuses_what_is_not_a_plain_decimal(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_decimal(text)
    assert str(info.value) == (
        f'{text!r} is not a decimal amount: write it like "1234.56" '
        "(ASCII digits 0-9, at most two decimals, no sign, exponent or thousands separator)"
    )


def test_parse_decimal_allows_no_decimals_in_a_zero_decimal_currency() -> None:
    assert parse_decimal("1234", "JPY") == 1234
    with pytest.raises(ValueError, match=r'write it like "1234" \(ASCII digits 0-9, no decimals,'):
        parse_decimal("12.5", "JPY")


@pytest.mark.parametrize(
    ("value", "result"),
    [
        (1, 1),
        ("1", 100),
        ("1234.56", 123_456),
        (MAX_AMOUNT, MAX_AMOUNT),
        (0, "the amount must be greater than zero"),
        ("0.00", "the amount must be greater than zero"),
        (-5, "the amount must be greater than zero"),
        (2**64, f"the amount is larger than the ledger can record ({MAX_AMOUNT} fen)"),
        ("184467440737095516.16", f"the amount is larger than the ledger can record ({MAX_AMOUNT} fen)"),
        (1.5, "floats are refused because they lose precision"),
        (True, "floats are refused because they lose precision"),
        (None, 'an amount is an integer in fen or a decimal string like "1234.56"'),
    ],
)
def test_parse_amount_takes_fen_or_yuan_text_within_the_ledgers_range(value: Any, result: int | str) -> None:
    if isinstance(result, int):
        assert parse_amount(value) == result
    else:
        with pytest.raises(ValueError) as info:
            parse_amount(value)
        assert str(info.value).startswith(result)
