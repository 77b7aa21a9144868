"""CSV cells for spreadsheets: what the MSP's accountant opens (aging, autopay discounts) must never run a formula."""

from __future__ import annotations

#: A spreadsheet runs a cell that starts with one of these as a formula ("CSV injection"): a client named
#: '=HYPERLINK(...)' must arrive as text. Tab and carriage return start formulas in some spreadsheets too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one starting like a formula gets a leading apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
