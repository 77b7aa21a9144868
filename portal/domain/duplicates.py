"""Likely duplicate bills: the same client billed the same amount twice within a few days under different numbers.
Pure standard library. A flag holds the newer invoice until the admin decides; a client is never chased twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import NamedTuple


class DuplicateStatus(StrEnum):
    FLAGGED = "flagged"  # held: not sent, not reminded, until the admin decides
    DISTINCT = "distinct"  # the admin says it is separate work: it may be sent
    DUPLICATE = "duplicate"  # the admin says it is the same work billed twice: it was voided


#: Invoice sources a person or an export creates: the ones that can be a bill entered twice. Invoices the portal
#: raises itself (late fees, plan interest) repeat amounts by design and are neither checked nor matched.
CHECKED_SOURCES = ("manual", "import")


class Bill(NamedTuple):  # a tuple: an import checks a chunk of 500 at a time
    invoice_id: int
    client_id: int
    number: str
    total_cents: int
    issue_date: date
    currency: str


def is_likely_duplicate(new: Bill, other: Bill, window_days: int) -> bool:
    """Same client, same currency and total, issue dates at most ``window_days`` apart, different numbers. Only an
    earlier invoice (lower id) can be the original, so of a pair only the newer one is held."""
    return (other.invoice_id < new.invoice_id and other.client_id == new.client_id
            and other.currency == new.currency and other.total_cents == new.total_cents
            and other.number != new.number and abs((other.issue_date - new.issue_date).days) <= window_days
            and new.total_cents > 0)


def originals_of(new: Bill, candidates: Iterable[Bill], window_days: int) -> list[Bill]:
    return sorted((c for c in candidates if is_likely_duplicate(new, c, window_days)), key=lambda c: c.invoice_id)


def not_held_message(number: str) -> str:
    return f"Invoice {number} is not held as a likely duplicate (it may have been decided already)."


def hold_message(number: str, original_number: str) -> str:
    return (f"Invoice {number} looks like a duplicate of invoice {original_number} (same client, same amount, "
            f"issued days apart). Confirm it is distinct or void it as a duplicate on the invoice's page before "
            "sending it.")
