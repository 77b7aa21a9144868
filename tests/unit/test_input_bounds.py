"""Bounds that keep typed numbers and dates inside what the columns and date arithmetic can hold."""

from datetime import date
from decimal import Decimal

import pytest

from portal.domain import dates
from portal.domain.errors import InvalidAmount, InvalidDate
from portal.domain.invoices import LineInput, check_quantity, compute_totals, default_due_date
from portal.domain.money import MAX_CENTS, check_amount
from portal.web.params import has_unstorable, parse_date, parse_int


def test_due_date_from_terms_is_refused_past_the_supported_calendar():
    assert default_due_date(date(2026, 3, 16), 30) == date(2026, 4, 15)
    with pytest.raises(InvalidDate, match="between 1900 and 2199"):
        default_due_date(date(9999, 12, 31), 30)
    with pytest.raises(InvalidDate):
        dates.add_days(date(2026, 1, 1), 10**9)


def test_quantities_and_totals_stay_inside_the_columns():
    with pytest.raises(InvalidAmount, match="more than 1,000,000"):
        check_quantity(Decimal("1e20"))
    with pytest.raises(InvalidAmount, match="four decimals"):
        check_quantity(Decimal("1.00001"))
    with pytest.raises(InvalidAmount, match="line amount"):
        compute_totals([LineInput("Servers", Decimal(1_000_000), MAX_CENTS)], Decimal(0))
    assert check_amount(-MAX_CENTS) == -MAX_CENTS
    with pytest.raises(InvalidAmount):
        check_amount(MAX_CENTS + 1)


@pytest.mark.parametrize("text", ["²", "١٢", " 1_0 ", "99999999999", "", None, "1e3", "-"])
def test_parse_int_takes_only_plain_digits_within_bounds(text):
    assert parse_int(text, minimum=1) is None


def test_parse_int_and_date_accept_ordinary_values():
    assert parse_int(" 42 ", minimum=1) == 42
    assert parse_date("2026-03-16") == date(2026, 3, 16)
    assert parse_date("0001-01-01") is None
    assert parse_date("9999-12-31") is None
    assert parse_date("2026-02-30") is None


def test_unstorable_text_is_nul_and_lone_surrogates_only():
    assert has_unstorable("a\x00b") and has_unstorable("\ud800")
    assert not has_unstorable("Zoë 😀 €")
