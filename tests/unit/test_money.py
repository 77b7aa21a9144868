from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain.errors import InvalidAmount
from portal.domain.money import format_money, parse_amount, percent_of, round_half_up, split_evenly


@pytest.mark.parametrize(
    ("text", "cents"),
    [("0", 0), ("12", 1200), ("12.3", 1230), ("12.34", 1234), ("1,234.56", 123456), ("$99.99", 9999), (" 7.05 ", 705)],
)
def test_parse_amount_accepts_plain_amounts(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text", ["", "abc", "1.234", "1e5", "12.", ".5x", "NaN", "Infinity", "--1", "1 000"])
def test_parse_amount_rejects_anything_else(text):
    with pytest.raises(InvalidAmount):
        parse_amount(text)


def test_negative_amounts_only_when_allowed():
    with pytest.raises(InvalidAmount):
        parse_amount("-5.00")
    assert parse_amount("-5.00", allow_negative=True) == -500


@given(st.integers(min_value=0, max_value=10**14 - 1))
def test_formatting_then_parsing_round_trips(cents):
    assert parse_amount(format_money(cents, "USD")) == cents


def test_format_money():
    assert format_money(123456, "USD") == "$1,234.56"
    assert format_money(-5, "USD") == "-$0.05"
    assert format_money(100, "CHF") == "1.00 CHF"


@pytest.mark.parametrize(("value", "cents"), [("0.5", 1), ("1.5", 2), ("2.5", 3), ("-0.5", -1), ("2.4999", 2)])
def test_round_half_up_rounds_half_away_from_zero(value, cents):
    assert round_half_up(Decimal(value)) == cents


def test_percent_of_rounds_once():
    assert percent_of(1005, Decimal("10")) == 101  # 100.5 -> 101
    assert percent_of(333, Decimal("8.25")) == 27  # 27.4725


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=120))
def test_split_evenly_sums_exactly_and_is_fair(total, parts):
    pieces = split_evenly(total, parts)
    assert sum(pieces) == total
    assert len(pieces) == parts
    assert max(pieces) - min(pieces) <= 1
    assert pieces == sorted(pieces, reverse=True)
