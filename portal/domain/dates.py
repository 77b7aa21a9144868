"""The calendar the portal supports. Dates far outside it are typing mistakes or probes, and date arithmetic near
Python's limits (year 1 or 9999) overflows: every date that comes from outside is checked against this range."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from .errors import InvalidDate

EARLIEST = date(1900, 1, 1)
LATEST = date(2199, 12, 31)


def check_supported(value: date, what: str = "The date") -> date:
    if isinstance(value, date) and not EARLIEST <= _day(value) <= LATEST:
        raise InvalidDate(f"{what} must be between {EARLIEST.year} and {LATEST.year}.")
    return value


def add_days(start: date, days: int, what: str = "The date") -> date:
    """``start`` plus ``days`` (negative: minus), refused when the result leaves the supported calendar."""
    check_supported(start, what)
    if abs(days) > (LATEST - EARLIEST).days:  # would leave the range anyway, and might overflow on the way
        raise InvalidDate(f"{what} must be between {EARLIEST.year} and {LATEST.year}.")
    return check_supported(start + timedelta(days=days), what)


def _day(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value
