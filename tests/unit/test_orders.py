"""Equipment orders in the domain: the deposit (percent of the total, rounded half-up once, held between a minimum
and a maximum, never more than the total), the credit limit at its boundary, the quote's lines, the equipment CSV
lines, and the deposit agreement's wording."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import deposit_agreement as DA
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.domain.imports import HeaderError, RowError
from portal.domain.orders import (
    CreditLimitExceeded,
    EquipmentFacts,
    OrderItem,
    OrderStatus,
    SerialChecks,
    check_credit,
    check_equipment,
    check_items,
    deposit_cents,
    equipment_header,
    equipment_row,
    order_total,
    parse_percent,
)


def test_statuses():
    assert [s.value for s in OrderStatus] == ["requested", "accepted", "cleared", "canceled"]


# --- deposit --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("total", "percent", "expected"), [
    (150_000, "50", 75_000),
    (10_001, "50", 5_001),  # 5,000.5 → half-up
    (10_003, "12.5", 1_250),  # 1,250.375 → 1,250
    (10_004, "12.5", 1_251),  # 1,250.5 → 1,251
    (99_999, "100", 99_999),
    (150_000, "33.33", 49_995),
])
def test_deposit_is_a_percentage_rounded_once(total, percent, expected):
    assert deposit_cents(total, Decimal(percent)) == expected


def test_deposit_minimum_and_maximum_and_never_more_than_the_total():
    assert deposit_cents(100_000, Decimal(10), minimum_cents=25_000) == 25_000
    assert deposit_cents(100_000, Decimal(90), maximum_cents=50_000) == 50_000
    assert deposit_cents(10_000, Decimal(10), minimum_cents=50_000) == 10_000
    with pytest.raises(DomainError, match="minimum deposit cannot be more than the maximum"):
        deposit_cents(100_000, Decimal(10), minimum_cents=2, maximum_cents=1)


@pytest.mark.parametrize(("percent", "message"), [
    ("0", "more than 0%"), ("-5", "more than 0%"), ("100.01", "at most 100%"), ("10.001", "two decimals"),
    ("NaN", "must be a number"), ("Infinity", "must be a number"),
])
def test_deposit_percentage_out_of_range_is_refused(percent, message):
    with pytest.raises(DomainError, match=message):
        deposit_cents(100_000, Decimal(percent))


def test_a_deposit_below_the_card_minimum_is_refused():
    with pytest.raises(DomainError, match=r"would be \$0\.49; it must be at least \$0\.50"):
        deposit_cents(98, Decimal(50))


@given(st.integers(min_value=100, max_value=10**12), st.integers(min_value=1, max_value=10_000))
def test_deposit_is_within_one_rounding_of_the_exact_share(total, basis_points):
    percent = Decimal(basis_points) / 100
    exact = Decimal(total) * percent / 100
    try:
        cents = deposit_cents(total, percent)
    except DomainError:
        assert exact < Decimal("49.5")
        return
    assert abs(Decimal(cents) - exact) <= Decimal("0.5") and 0 < cents <= total


@pytest.mark.parametrize(("text", "value"), [("50", Decimal(50)), (" 12.5 % ", Decimal("12.5"))])
def test_parse_percent(text, value):
    assert parse_percent(text) == value


def test_parse_percent_refuses_words():
    with pytest.raises(DomainError, match="not a percentage"):
        parse_percent("half")


# --- credit limit ---------------------------------------------------------------------------------------------------

def test_credit_limit_boundary():
    check_credit(35_000, 150_000, 185_000)  # equal: allowed
    check_credit(10**9, 10**9, None)  # no limit: never blocked
    with pytest.raises(CreditLimitExceeded) as refused:
        check_credit(35_000, 150_000, 184_999)
    assert str(refused.value) == ("Blocked by the credit limit: open A/R $350.00 plus this order $1,500.00 is "
                                  "$1,850.00, over the limit of $1,849.99 by $0.01.")


# --- the quote ------------------------------------------------------------------------------------------------------

def test_items_are_checked_and_totalled():
    items = check_items([OrderItem("  Laptop ", 2, 120_000), OrderItem("Dock", 1, 0)])
    assert items[0].description == "Laptop" and order_total(items) == 240_000
    for bad, message in [([], "at least one item"), ([OrderItem("Dock", 1, 0)], "more than zero"),
                         ([OrderItem("x", 10_001, 1)], "quantity"), ([OrderItem("x" * 201, 1, 1)], "too long"),
                         ([OrderItem("x", 1, -1)], "cannot be negative")]:
        with pytest.raises(DomainError, match=message):
            check_items(bad)


# --- equipment lines ------------------------------------------------------------------------------------------------

def test_equipment_header_names_missing_and_duplicate_columns():
    header = equipment_header(["Item", "Serial", "Value", "Notes"])
    assert header.positions == {"item": 0, "serial_number": 1, "value": 2} and header.ignored == ("Notes",)
    with pytest.raises(HeaderError, match="missing the required column serial_number"):
        equipment_header(["item", "value"])
    with pytest.raises(HeaderError, match="appears twice"):
        equipment_header(["item", "serial", "serial_number", "value"])


def test_equipment_rows():
    header = equipment_header(["item", "serial_number", "value", "installed_on", "owned_until_paid"])
    good = equipment_row(2, ["Laptop", "SN-1", "1,200.50", "2026-01-10", "No"], header)
    assert good == EquipmentFacts("Laptop", "SN-1", 120_050, date(2026, 1, 10), "", False)
    bad = equipment_row(3, ["", "", "-1", "10/01/2026", "maybe"], header)
    assert [str(e) for e in bad] == [
        "line 3: item is missing", "line 3: serial_number is missing", "line 3: value cannot be negative",
        "line 3: installed_on '10/01/2026' is not a date (use YYYY-MM-DD, e.g. 2026-03-16)",
        "line 3: owned_until_paid 'maybe' is not yes or no"]
    assert equipment_row(4, ["a", "b"], header) == [
        RowError(4, "the line has 2 values but the header has 5 columns")]


def test_the_same_serial_twice_in_a_file():
    checks = SerialChecks()
    facts = EquipmentFacts("Laptop", "SN-1", 1, None, "", True)
    assert checks.check(2, facts) == []
    assert checks.check(5, EquipmentFacts("Laptop", "sn-1", 1, None, "", True)) == [
        RowError(5, "serial_number sn-1 is already on line 2")]


def test_check_equipment_refuses_a_negative_value():
    with pytest.raises(DomainError, match="Value cannot be negative."):
        check_equipment(EquipmentFacts("Laptop", "SN", -1, None, "", True))


# --- the deposit agreement ------------------------------------------------------------------------------------------

def test_the_deposit_agreement_merges_and_is_a_registered_template_kind():
    assert DA.EQUIPMENT_DEPOSIT in T.TEMPLATE_KINDS and T.variables_for(DA.EQUIPMENT_DEPOSIT) is DA.VARIABLES
    evidence.check_placeholders(DA.DEFAULT_TEXT, DA.VARIABLES)
    variables = DA.merge_variables(
        msp_legal_name="Northwind IT LLC", msp_email="billing@northwind.test", client_legal_name="Acme Dental LLC",
        order_reference="ORD-000001", quote_reference="", items=[OrderItem("Firewall", 2, 40_000)], currency="USD",
        total_cents=80_000, deposit_percent=Decimal("50.00"), deposit_cents=40_000,
        portal_url="https://portal.test/", effective_date=date(2026, 3, 16))
    text = evidence.merge(DA.DEFAULT_TEXT, variables)
    assert "- 2 × Firewall at $400.00: $800.00" in text and "**$400.00** (50% of the total)" in text
    assert "quote none given" in text and "March 16, 2026" in text


def test_the_sample_for_the_template_editor_merges():
    variables = DA.sample_variables(msp_legal_name="Northwind IT LLC", msp_email="billing@northwind.test",
                                    portal_url="https://portal.test/", effective_date=date(2026, 3, 16))
    assert "$750.00" in evidence.merge(DA.DEFAULT_TEXT, variables)
