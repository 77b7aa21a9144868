"""The one place that reads raw values from a request: text that cannot be stored is refused for the whole request,
and numbers and dates from query strings and forms are parsed strictly and kept within what the database holds.

Why strict: ``str.isdigit`` accepts '²' (which ``int`` then refuses), ``int`` accepts ' 1_0 ' and any length, and an
id past the 32-bit key columns, a page past the OFFSET range or a date near year 1 or 9999 errors in the database
or in date arithmetic instead of simply not matching.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import date

from flask import Flask, request
from werkzeug.exceptions import BadRequest

from portal.domain.dates import check_supported
from portal.domain.errors import DomainError

MAX_ID = 2**31 - 1  # every key column is a 32-bit integer
MIN_INT = -(2**31)
MAX_PAGE = 100_000  # keeps OFFSET inside the database's integer range whatever ?page= says
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # ASCII digits only; 18 digits cannot overflow a 64-bit int
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# NUL cannot be stored in a PostgreSQL text column, and a lone surrogate cannot be encoded as UTF-8 for either
# database. Werkzeug already turns undecodable bytes into U+FFFD, so these arrive only as themselves.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnstorableText(BadRequest):
    description = ("What you sent contains characters that cannot be saved (such as a NUL byte). "
                   "Remove them and try again.")


def has_unstorable(text: str) -> bool:
    return bool(_UNSTORABLE.search(text))


def parse_int(text: str | None, *, minimum: int = MIN_INT, maximum: int = MAX_ID) -> int | None:
    """A plain decimal integer within [minimum, maximum], or None for anything else."""
    value = (text or "").strip()
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def parse_date(text: str | None) -> date | None:
    """YYYY-MM-DD within the supported calendar, or None."""
    value = (text or "").strip()
    if not _ISO_DATE.fullmatch(value):
        return None
    try:
        return check_supported(date.fromisoformat(value))
    except (ValueError, DomainError):  # DomainError: outside the supported calendar
        return None


def id_arg(name: str) -> int | None:
    """``?name=<record id>``; None when absent or not a possible id (so it matches nothing, as an unknown id)."""
    return parse_int(request.args.get(name), minimum=1, maximum=MAX_ID)


def page_arg(name: str = "page") -> int:
    """``?page=``, 1 when absent or not a page number, at most MAX_PAGE."""
    page = parse_int(request.args.get(name), minimum=1, maximum=2**63 - 1)
    return min(page, MAX_PAGE) if page else 1


def choice_arg(name: str, choices: Collection[str], default: str) -> str:
    """``?name=`` when it is one of ``choices`` (a list's filter or sort order), else ``default``."""
    value = request.args.get(name, default)
    return value if value in choices else default


def date_arg(name: str) -> date | None:
    return parse_date(request.args.get(name))


def _refuse_unstorable_text() -> None:
    """One rule for all text: a NUL byte or a lone surrogate anywhere in the path, the query string or the form
    refuses the whole request before a view runs, so it can never reach the database half way through an action."""
    values = [request.path]
    for source in (request.args, request.form):
        for key, value in source.items(multi=True):
            values += (key, value)
    if any(has_unstorable(v) for v in values):
        raise UnstorableText()


def init_app(app: Flask) -> None:
    app.before_request(_refuse_unstorable_text)
