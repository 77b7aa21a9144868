"""One clock for the whole app. Code asks ``clock.now()`` / ``clock.today()``; tests install a fixed clock.

Never evaluate the time at import or as a column default: a frozen timestamp is a classic billing bug.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

from flask import current_app, has_app_context


class Clock:
    def __init__(self, source: Callable[[], datetime] | None = None):
        self._source = source or (lambda: datetime.now(UTC))

    def now(self) -> datetime:
        """Timezone-aware UTC now."""
        return self._source()

    def today(self) -> date:
        return self.now().date()


_system = Clock()


def get_clock() -> Clock:
    if has_app_context():
        return current_app.extensions.get("clock", _system)
    return _system


def now() -> datetime:
    return get_clock().now()


def today() -> date:
    return get_clock().today()
