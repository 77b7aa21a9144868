"""Reading invoice export rows: header checks, one good row, every bad field, and rules that span lines."""

from __future__ import annotations

import tracemalloc
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.domain import imports
from portal.domain.errors import InvalidAmount
from portal.domain.imports import FileChecks, FirstLines, HeaderError, ImportRow, RowError, parse_row, read_header
from portal.domain.invoices import compute_totals
from portal.domain.money import check_amount

COLUMNS = ["client_external_id", "client_name", "invoice_number", "issue_date", "due_date", "description",
           "amount", "currency", "contact_email", "contact_name", "tax", "status", "client_address_line1", "city",
           "region", "postal_code", "country"]
GOOD = {
    "client_external_id": "PSA-100", "client_name": "Harbor Dental Group", "invoice_number": "10452",
    "issue_date": "2026-03-01", "due_date": "2026-03-31", "description": "Managed IT services — March",
    "amount": "1,234.56", "currency": "usd", "contact_email": " Dana@HarborDental.test ", "contact_name": "Dana W",
    "tax": "12.30", "status": "Open", "client_address_line1": "812 N 9th St", "city": "Boise", "region": "ID",
    "postal_code": "83702", "country": "us",
}
HEADER = read_header(COLUMNS)


def parse(line: int = 2, msp_currency: str = "USD", **changes) -> ImportRow | list[RowError]:
    values = {**GOOD, **changes}
    return parse_row(line, [values[c] for c in COLUMNS], HEADER, currency=msp_currency)


def messages(result) -> list[str]:
    assert isinstance(result, list), f"expected errors, got {result!r}"
    return [e.message for e in result]


def test_good_row_is_typed_and_normalized():
    row = parse()
    assert isinstance(row, ImportRow)
    assert row.line == 2
    assert row.client_external_id == "PSA-100" and row.client_name == "Harbor Dental Group"
    assert row.issue_date == date(2026, 3, 1) and row.due_date == date(2026, 3, 31)
    assert row.amount_cents == 123456 and row.tax_cents == 1230
    assert row.currency == "USD"
    assert row.contact_email == "dana@harbordental.test" and row.contact_name == "Dana W"
    assert dict(row.address) == {"address_line1": "812 N 9th St", "city": "Boise", "region": "ID",
                                 "postal_code": "83702", "country": "US"}
    assert row.marked_paid is False


def test_optional_cells_may_be_blank():
    row = parse(contact_email="", contact_name="", tax="", status="", client_address_line1="", city="", region="",
                postal_code="", country="")
    assert isinstance(row, ImportRow)
    assert row.contact_email is None and row.tax_cents == 0 and row.address == ()
    assert row.client_fields() == {"legal_name": "Harbor Dental Group"}


def test_paid_status_is_imported_as_open_and_flagged():
    row = parse(status="PAID")
    assert isinstance(row, ImportRow) and row.marked_paid is True


@pytest.mark.parametrize(("changes", "expected"), [
    ({"issue_date": "2026-13-01"}, "issue_date '2026-13-01' is not a date (use YYYY-MM-DD, e.g. 2026-03-16)"),
    ({"issue_date": "03/01/2026"}, "issue_date '03/01/2026' is not a date (use YYYY-MM-DD, e.g. 2026-03-16)"),
    ({"due_date": "20260331"}, "due_date '20260331' is not a date (use YYYY-MM-DD, e.g. 2026-03-16)"),
    ({"due_date": "2026-02-30"}, "due_date '2026-02-30' is not a date (use YYYY-MM-DD, e.g. 2026-03-16)"),
    ({"due_date": "2026-02-28"}, "due_date 2026-02-28 is before issue_date 2026-03-01"),
    ({"issue_date": ""}, "issue_date is missing"),
    ({"amount": "12.345"}, "amount: '12.345' is not an amount (use digits with up to two decimals, e.g. 1250.00)"),
    ({"amount": "twelve"}, "amount: 'twelve' is not an amount (use digits with up to two decimals, e.g. 1250.00)"),
    ({"amount": "-5.00"}, "amount: The amount cannot be negative."),
    ({"amount": "0.00"}, "amount must be more than zero (there is nothing to collect on a zero invoice)"),
    ({"amount": ""}, "amount is missing"),
    ({"tax": "1.2.3"}, "tax: '1.2.3' is not an amount (use digits with up to two decimals, e.g. 1250.00)"),
    ({"tax": "-1"}, "tax: The amount cannot be negative."),
    ({"currency": "XYZ"}, "currency 'XYZ' is not a known currency code"),
    ({"currency": "EUR"}, "currency EUR is not the portal's currency (USD)"),
    ({"currency": ""}, "currency is missing"),
    ({"client_external_id": ""}, "client_external_id is missing"),
    ({"client_name": "  "}, "client_name is missing"),
    ({"invoice_number": ""}, "invoice_number is missing"),
    ({"description": ""}, "description is missing"),
    ({"invoice_number": "N" * 51}, "invoice_number is longer than 50 characters"),
    ({"client_external_id": "X" * 101}, "client_external_id is longer than 100 characters"),
    ({"client_name": "N" * 256}, "client_name is longer than 255 characters"),
    ({"contact_email": "dana at harbor"}, "contact_email 'dana at harbor' is not an email address"),
    ({"contact_email": ""}, "contact_name is given without a contact_email"),
    ({"country": "USA"}, "country 'USA' is not a two-letter country code (e.g. US, CA, GB)"),
    ({"status": "void"}, "status 'void' is not one of: open, paid"),
])
def test_each_bad_field_is_reported_with_its_line(changes, expected):
    result = parse(line=7, **changes)
    assert messages(result) == [expected]
    assert all(e.line == 7 and e.kind == "error" for e in result)


def test_cells_as_long_as_their_columns_allow_are_accepted():
    row = parse(client_external_id="X" * 100, client_name="N" * 255, invoice_number="I" * 50)
    assert isinstance(row, ImportRow) and (len(row.client_external_id), len(row.invoice_number)) == (100, 50)


def test_currency_must_be_the_msps():
    assert isinstance(parse(msp_currency="cad", currency="CAD"), ImportRow)
    assert messages(parse(msp_currency="CAD")) == ["currency USD is not the portal's currency (CAD)"]


def test_every_problem_on_a_line_is_reported_at_once():
    result = parse(issue_date="yesterday", amount="abc", currency="")
    assert len(messages(result)) == 3


def test_line_with_the_wrong_number_of_cells():
    result = parse_row(4, ["PSA-1", "Harbor"], HEADER, currency="USD")
    assert messages(result) == ["the line has 2 values but the header has 17 columns"]
    assert result[0].line == 4


def test_header_is_case_and_space_insensitive_and_accepts_aliases():
    header = read_header(["Client External ID", "CLIENT_NAME", "Invoice Number", "Issue Date", "due-date",
                          "Description", "Amount", "Currency", "Zip", "Client City", "Project"])
    assert header.positions["client_external_id"] == 0
    assert header.positions["postal_code"] == 8 and header.positions["city"] == 9
    assert header.ignored == ("Project",) and header.width == 11


def test_header_missing_required_columns():
    with pytest.raises(HeaderError, match="missing the required columns due_date, amount"):
        read_header([c for c in COLUMNS if c not in ("due_date", "amount")])


def test_header_with_a_column_twice():
    with pytest.raises(HeaderError, match="The column city appears twice"):
        read_header([*COLUMNS, "Client City"])


def test_duplicate_invoice_number_in_the_file_is_an_error_on_the_later_line():
    checks = FileChecks()
    assert checks.check(parse(line=2)) == []
    errors = checks.check(parse(line=5))
    assert [str(e) for e in errors] == ["line 5: invoice_number 10452 is already on line 2"]


def test_one_client_described_two_ways_is_an_error():
    checks = FileChecks()
    assert checks.check(parse(line=2)) == []
    assert checks.check(parse(line=3, invoice_number="2", city="")) == []  # blank: not a different value
    errors = checks.check(parse(line=4, invoice_number="3", client_name="Harbor Dental", city="Meridian"))
    assert [str(e) for e in errors] == ["line 4: client PSA-100 has a different client_name, city on line 2"]


def test_imported_totals_keep_the_exporters_tax_amount():
    row = parse(amount="100.00", tax="8.25")
    totals = imports.totals_for(row)
    assert (totals.subtotal_cents, totals.tax_cents, totals.total_cents) == (10000, 825, 10825)
    assert imports.effective_tax_rate(row) == Decimal("8.25")


@given(st.integers(1, 10**14 - 1), st.integers(0, 10**14 - 1))
def test_imported_totals_are_the_invoice_rules_totals(amount, tax):
    """totals_for works the one-line invoice out without compute_totals; it must give exactly what the rules give,
    and refuse the same totals."""
    row = parse()._replace(amount_cents=amount, tax_cents=tax)
    try:
        ruled = compute_totals([imports.line_for(row)], Decimal(0))
        expected = (ruled.line_amounts, ruled.subtotal_cents, tax, check_amount(ruled.subtotal_cents + tax))
    except InvalidAmount:
        with pytest.raises(InvalidAmount):
            imports.totals_for(row)
        return
    totals = imports.totals_for(row)
    assert (totals.line_amounts, totals.subtotal_cents, totals.tax_cents, totals.total_cents) == expected


def test_client_changes_are_the_name_and_the_address_cells_filled_in_that_differ():
    from types import SimpleNamespace

    stored = SimpleNamespace(legal_name="Harbor Dental Group", address_line1="812 N 9th St", address_line2="Suite 4",
                             city="Boise", region="ID", postal_code="83702", country="US")
    assert imports.client_changes(parse(), stored) == {}  # address_line2 blank in the line: left alone
    moved = parse(client_name="Harbor Dental, PLLC", city="Meridian", postal_code="")
    assert imports.client_changes(moved, stored) == {"legal_name": "Harbor Dental, PLLC", "city": "Meridian"}


def test_invoice_differences_name_what_changed():
    row = parse()
    stored = imports.facts_for(row)
    assert imports.invoice_differences(row, stored) == []
    changed = parse(amount="1300.00", due_date="2026-04-15")
    assert imports.invoice_differences(changed, stored) == ["due_date", "lines", "total_cents"]


@given(st.decimals(min_value=0, max_value=Decimal("999999999999.99"), places=2, allow_nan=False,
                   allow_infinity=False))
def test_any_amount_with_up_to_two_decimals_round_trips_exactly(value):
    for text in {f"{value}", f"{value:.2f}", f"{value:,.2f}", f"{value.normalize():f}"}:
        cents = imports.parse_amount(text)
        assert cents == int(value * 100)
        assert Decimal(cents) / 100 == value


@given(st.lists(st.text(alphabet="0123456789AB-", min_size=1, max_size=4), max_size=300))
def test_first_lines_agrees_with_a_dict_of_every_number(numbers):
    index, expected = FirstLines(capacity=4), {}  # tiny, so it grows several times
    for line, number in enumerate(numbers, start=2):
        assert index.first(number, line) == expected.setdefault(number, line)
    assert len(index) == len(expected)
    assert all(index.first(number, 10_000) == line for number, line in expected.items())  # and after growing


def _held(build) -> tuple[object, int]:
    tracemalloc.start()
    try:
        built = build()
        return built, tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_first_lines_stays_small_for_a_long_file():
    numbers = range(2, 200_002)

    def index():
        first = FirstLines()
        for line in numbers:
            first.first(f"INV-{line:08d}", line)
        return first

    compact, held = _held(index)
    _, held_by_dict = _held(lambda: {f"INV-{line:08d}": line for line in numbers})
    assert len(compact) == 200_000
    assert held < 40 * len(compact)  # bytes a number, whatever the fill after the last growth
    assert held * 3 < held_by_dict
