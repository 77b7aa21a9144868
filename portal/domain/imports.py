"""Reading an invoice export (CSV rows from a PSA or accounting system): header checks, one typed row per line.

Pure: no database. ``parse_row`` turns one line into an ``ImportRow`` or a list of ``RowError``; ``FileChecks``
catches what only shows across lines (the same invoice number twice, one client described two ways). What to do
with a good row against the stored data is the importer service's job.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property, lru_cache
from operator import itemgetter
from typing import NamedTuple

from .errors import DomainError, InvalidAmount
from .invoices import LineInput, Totals
from .money import check_amount, parse_amount

REQUIRED = ("client_external_id", "client_name", "invoice_number", "issue_date", "due_date", "description",
            "amount", "currency")
OPTIONAL = ("contact_email", "contact_name", "tax", "status", "client_address_line1", "client_address_line2",
            "city", "region", "postal_code", "country")
# Other spellings seen in exports, mapped to the column they mean.
ALIASES = {
    "address_line1": "client_address_line1", "address_line2": "client_address_line2",
    "client_city": "city", "client_region": "region", "client_postal_code": "postal_code",
    "client_country": "country", "state": "region", "zip": "postal_code",
}
# Column -> Client attribute. A blank cell leaves the stored value alone.
ADDRESS_FIELDS = {
    "client_address_line1": "address_line1", "client_address_line2": "address_line2", "city": "city",
    "region": "region", "postal_code": "postal_code", "country": "country",
}
# Longest value each column's database field holds.
MAX_LENGTHS = {
    "client_external_id": 100, "client_name": 255, "invoice_number": 50, "contact_email": 320,
    "contact_name": 255, "client_address_line1": 255, "client_address_line2": 255, "city": 100, "region": 100,
    "postal_code": 20,
}
STATUSES = ("open", "paid")  # a paid row is imported as open: payments are recorded, never invented

# ISO 4217 codes in current use: an unknown code is a typo, not a currency.
_ISO_CODES = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF
CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG
HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA
MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD
RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX
USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL
"""
ISO_CURRENCIES = frozenset(_ISO_CODES.split())

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


class HeaderError(DomainError):
    """The header row cannot be used, so no line of the file can be read."""


@dataclass(frozen=True)
class RowError:
    line: int  # line in the file, the header being line 1
    message: str
    kind: str = "error"  # error: the row is malformed | conflict: it clashes with stored data

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Header:
    """Which cell holds which column. ``ignored``: columns we do not know, reported once and skipped."""

    positions: Mapping[str, int]
    width: int  # cells per line
    ignored: tuple[str, ...] = ()

    @cached_property
    def pick(self) -> Callable[[Sequence[str]], tuple[str, ...]]:
        """A line's cells plus one blank -> its values in ``_COLUMNS`` order (a column the file lacks reads the
        blank). One C-level call per line instead of a dictionary lookup per column."""
        return itemgetter(*(self.positions.get(column, self.width) for column in _COLUMNS))


# The order ``Header.pick`` reads a line in: the text columns, then the address cells in ADDRESS_FIELDS order.
_COLUMNS = REQUIRED + OPTIONAL
assert _COLUMNS[-len(ADDRESS_FIELDS):] == tuple(ADDRESS_FIELDS)
_ADDRESS = tuple((column, attribute, MAX_LENGTHS.get(column)) for column, attribute in ADDRESS_FIELDS.items())


class ImportRow(NamedTuple):
    """A good line, typed. A named tuple, not a frozen dataclass: a million-line import makes a million of them,
    and a frozen dataclass's __init__ cost more than the rest of reading the line."""

    line: int
    client_external_id: str
    client_name: str
    address: tuple[tuple[str, str], ...]  # (Client attribute, value) for the address cells that are filled in
    contact_email: str | None
    contact_name: str | None
    invoice_number: str
    issue_date: date
    due_date: date
    description: str
    amount_cents: int
    tax_cents: int
    currency: str
    marked_paid: bool  # the export said "paid"; we import it as open and say so

    def client_fields(self) -> dict[str, str]:
        return {"legal_name": self.client_name, **dict(self.address)}


def normalize_column(name: str) -> str:
    """'Client External ID' -> 'client_external_id' (exports differ in case and spacing)."""
    key = re.sub(r"[\s\-]+", "_", name.strip().lower())
    return ALIASES.get(key, key)


def read_header(cells: Sequence[str]) -> Header:
    positions: dict[str, int] = {}
    ignored: list[str] = []
    for index, cell in enumerate(cells):
        column = normalize_column(cell)
        if column not in REQUIRED and column not in OPTIONAL:
            ignored.append(cell.strip() or f"(blank, column {index + 1})")
        elif column in positions:
            raise HeaderError(f"The column {column} appears twice in the header.")
        else:
            positions[column] = index
    missing = [c for c in REQUIRED if c not in positions]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise HeaderError(f"The header is missing the required column{plural} {', '.join(missing)}. "
                          f"Required: {', '.join(REQUIRED)}.")
    return Header(positions=positions, width=len(cells), ignored=tuple(ignored))


def parse_row(line: int, cells: Sequence[str], header: Header, *, currency: str) -> ImportRow | list[RowError]:
    """One data line. ``currency`` is the MSP's: invoices in another currency cannot be collected here.

    Every problem of the line is reported, in column order. This runs once per line of exports with up to a
    million lines, so the checks are written out rather than looked up per column."""
    if len(cells) != header.width:
        return [RowError(line, f"the line has {len(cells)} values but the header has {header.width} columns")]
    (external_id, client_name, number, issue_text, due_text, description, amount_text, currency_text, email,
     contact_name, tax_text, status_text, *address_cells) = map(str.strip, header.pick([*cells, ""]))
    errors: list[str] = []
    if not (0 < len(external_id) <= _ID_LIMIT and 0 < len(client_name) <= _NAME_LIMIT
            and 0 < len(number) <= _NUMBER_LIMIT):  # one test for the usual line; otherwise, what is wrong
        _text(external_id, "client_external_id", errors)
        _text(client_name, "client_name", errors)
        _text(number, "invoice_number", errors)
    if not description:
        errors.append("description is missing")
    issue_date = _date(issue_text, "issue_date", errors)
    due_date = _date(due_text, "due_date", errors)
    if issue_date and due_date and due_date < issue_date:
        errors.append(f"due_date {due_date.isoformat()} is before issue_date {issue_date.isoformat()}")
    amount = _amount(amount_text, "amount", errors, required=True)
    if amount == 0:
        errors.append("amount must be more than zero (there is nothing to collect on a zero invoice)")
    tax = _amount(tax_text, "tax", errors, required=False) or 0
    row_currency = _currency(currency_text, currency, errors)

    if email:
        _within_limit(email, "contact_email", errors)
        email = email.lower()
        if not _EMAIL.match(email):
            errors.append(f"contact_email {email!r} is not an email address")
    if contact_name:
        _within_limit(contact_name, "contact_name", errors)
        if not email:
            errors.append("contact_name is given without a contact_email")

    address = []
    for (column, attribute, limit), value in zip(_ADDRESS, address_cells, strict=True):
        if value:
            if limit and len(value) > limit:
                errors.append(f"{column} is longer than {limit} characters")
            if attribute == "country":
                value = value.upper()
                if not _COUNTRY.match(value):
                    errors.append(f"country {value!r} is not a two-letter country code (e.g. US, CA, GB)")
            address.append((attribute, value))

    status = status_text.lower() or "open"
    if status not in STATUSES:
        errors.append(f"status {status_text!r} is not one of: open, paid")

    if errors:
        return [RowError(line, message) for message in errors]
    assert issue_date and due_date and amount is not None and row_currency  # for the type checker
    return ImportRow(line, external_id, client_name, tuple(address), email or None, contact_name or None, number,
                     issue_date, due_date, description, amount, tax, row_currency, status == "paid")


_ID_LIMIT, _NAME_LIMIT, _NUMBER_LIMIT = (MAX_LENGTHS[c] for c in ("client_external_id", "client_name",
                                                                   "invoice_number"))


def _text(value: str, column: str, errors: list[str]) -> None:
    """A required text cell: present, and no longer than its database field."""
    if not value:
        errors.append(f"{column} is missing")
    else:
        _within_limit(value, column, errors)


def _within_limit(value: str, column: str, errors: list[str]) -> None:
    if len(value) > MAX_LENGTHS[column]:
        errors.append(f"{column} is longer than {MAX_LENGTHS[column]} characters")


def _date(value: str, column: str, errors: list[str]) -> date | None:
    if not value:
        errors.append(f"{column} is missing")
        return None
    parsed = _iso_date(value)
    if parsed is None:
        errors.append(f"{column} {value!r} is not a date (use YYYY-MM-DD, e.g. 2026-03-16)")
    return parsed


@lru_cache(maxsize=4096)
def _iso_date(value: str) -> date | None:
    """Cached: an export's lines share a few hundred dates, and a cache hit costs a fifth of the check."""
    # fromisoformat alone would also take 20260316 or 2026-W12-1; exports must be plain YYYY-MM-DD
    if _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    return None


def _amount(value: str, column: str, errors: list[str], *, required: bool) -> int | None:
    if not value:
        if required:
            errors.append(f"{column} is missing")
        return None
    try:
        return parse_amount(value)
    except InvalidAmount as e:
        errors.append(f"{column}: {e}")
        return None


def _currency(value: str, msp_currency: str, errors: list[str]) -> str | None:
    code = value.upper()
    if not code:
        errors.append("currency is missing")
    elif code not in ISO_CURRENCIES:
        errors.append(f"currency {value!r} is not a known currency code")
    elif code != msp_currency.upper():
        errors.append(f"currency {code} is not the portal's currency ({msp_currency.upper()})")
    else:
        return code
    return None


class FirstLines:
    """Each invoice number of a file and the first line it was on, in 18-36 bytes a number however long the file.

    A dict of the numbers took about 120 bytes each (120 MB for a million-line export). Here a number is kept as a
    64-bit digest in one flat array and its line in another: 12 bytes a slot, open addressing with linear probing,
    between a third and two thirds full. Two different numbers with the same digest would be reported as the same
    number on two lines: for a million-line file the chance is about 3 in 100 million, and the cost a line refused
    with a clear message, never a wrong amount (the database still keeps invoice numbers unique exactly).
    """

    def __init__(self, capacity: int = 1 << 12):
        self._keys = array("Q", bytes(8 * capacity))  # 0 = empty slot
        self._lines = array("I", bytes(4 * capacity))
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def first(self, number: str, line: int) -> int:
        """The line ``number`` was first on; ``line`` if this is its first appearance (remembered)."""
        key = hash(number) & 0xFFFF_FFFF_FFFF_FFFF or 1  # str hashes are 64-bit SipHash, keyed per process
        keys = self._keys
        mask = len(keys) - 1
        slot = key & mask
        while stored := keys[slot]:
            if stored == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._lines[slot] = line
        self._count += 1
        if self._count * 3 > len(keys) * 2:
            self._grow()
        return line

    def _grow(self) -> None:
        old = zip(self._keys, self._lines, strict=True)
        capacity = 2 * len(self._keys)
        keys, lines, mask = array("Q", bytes(8 * capacity)), array("I", bytes(4 * capacity)), capacity - 1
        for key, line in old:
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                lines[slot] = line
        self._keys, self._lines = keys, lines


@dataclass(slots=True)
class _ClientSeen:
    line: int  # the first line naming the client
    fields: dict[str, str]  # its name and address cells so far (later lines may fill in blanks)
    agreed: tuple  # the last (name, address) found to agree with ``fields``: the same again needs no comparison


@dataclass
class FileChecks:
    """Rules that span lines: an invoice number once per file, and one name/address per client per file.

    (A client described two ways would make the result depend on line order, and a re-import would flip it.)
    """

    _numbers: FirstLines = field(default_factory=FirstLines)
    _clients: dict[str, _ClientSeen] = field(default_factory=dict)

    def check(self, row: ImportRow) -> list[RowError]:
        errors = []
        first = self._numbers.first(row.invoice_number, row.line)
        if first != row.line:
            errors.append(RowError(row.line, f"invoice_number {row.invoice_number} is already on line {first}"))
        described = (row.client_name, row.address)
        seen = self._clients.get(row.client_external_id)
        if seen is None:
            self._clients[row.client_external_id] = _ClientSeen(row.line, row.client_fields(), described)
        elif described != seen.agreed:
            fields = seen.fields
            different = [k for k, v in row.client_fields().items() if k in fields and fields[k] != v]
            if different:
                names = ", ".join(_column_for(k) for k in different)
                errors.append(RowError(
                    row.line, f"client {row.client_external_id} has a different {names} on line {seen.line}",
                ))
            else:  # later lines may fill in address parts the first one left blank
                fields.update({k: v for k, v in row.client_fields().items() if k not in fields})
                seen.agreed = described
        return errors


def _column_for(attribute: str) -> str:
    if attribute == "legal_name":
        return "client_name"
    return next(column for column, attr in ADDRESS_FIELDS.items() if attr == attribute)


# --- applying a row: the invoice it describes -------------------------------------------------------------------

class InvoiceFacts(NamedTuple):
    """What an imported invoice says, to compare a row with the stored invoice (one per line of a re-import). An
    import writes invoices of one line, so its line and the number of lines say all: of a stored invoice with
    several lines, the line's fields are any one of them."""

    issue_date: date
    due_date: date
    currency: str
    tax_cents: int
    total_cents: int
    description: str | None  # of the line; None: the invoice has no line
    quantity: Decimal | None
    unit_price_cents: int | None
    line_count: int


def line_for(row: ImportRow) -> LineInput:
    # The export's tax is an amount already worked out by the accounting system; the line itself is not taxed
    # again here, so the portal's total is exactly the exporter's.
    return LineInput(row.description, Decimal(1), row.amount_cents, taxable=False)


def totals_for(row: ImportRow) -> Totals:
    """The one line's totals by the invoice rules, plus the exporter's tax amount. The line is quantity 1 and
    untaxed, so by ``compute_totals`` its amount is its unit price (a test checks they agree); worked out here
    without Decimal arithmetic because an import does it for every new line."""
    amount = row.amount_cents  # parse_row held it to twelve digits and above zero, and the line has a description
    return Totals((amount,), amount, row.tax_cents, check_amount(amount + row.tax_cents, "The invoice total"))


def effective_tax_rate(row: ImportRow) -> Decimal:
    """For display only (the tax amount is what is billed): tax / amount as a percent, to 4 decimals."""
    if not row.tax_cents:
        return Decimal(0)
    return min(Decimal(100), (Decimal(row.tax_cents) * 100 / row.amount_cents).quantize(Decimal("0.0001")))


def facts_for(row: ImportRow) -> InvoiceFacts:
    line = line_for(row)
    return InvoiceFacts(row.issue_date, row.due_date, row.currency, row.tax_cents, totals_for(row).total_cents,
                        line.description, line.quantity, line.unit_price_cents, 1)


def invoice_differences(row: ImportRow, stored: InvoiceFacts) -> list[str]:
    """Names of what the row would change on the stored invoice (empty: the row is already imported)."""
    wanted = facts_for(row)
    names = []
    for name in ("issue_date", "due_date", "currency", "lines", "tax_cents", "total_cents"):
        fields = _LINE if name == "lines" else (name,)
        if any(getattr(wanted, f) != getattr(stored, f) for f in fields):
            names.append(name)
    return names


_LINE = ("description", "quantity", "unit_price_cents", "line_count")


_ONE = Decimal(1)


def is_unchanged(row: ImportRow, stored: tuple) -> bool:
    """The same answer as ``not invoice_differences(row, stored)`` for ``stored`` in InvoiceFacts's order, without
    working out totals: the one line's amount is its unit price (quantity 1, untaxed) and the total is amount plus
    the exporter's tax. Most lines of a re-imported file are unchanged, and this comparison is their whole cost
    beyond reading the line."""
    return stored == (row.issue_date, row.due_date, row.currency, row.tax_cents, row.amount_cents + row.tax_cents,
                      row.description, _ONE, row.amount_cents, 1)


def client_changes(row: ImportRow, client: object) -> dict[str, str]:
    """Client attributes the row changes on ``client`` (anything with the Client's attribute names: the model, or
    a row of its columns): its name, and any address cell that is filled in and differs."""
    return {k: v for k, v in row.client_fields().items() if getattr(client, k) != v}
