"""One clock for the whole app. Code asks ``clock.now()`` / ``clock.today()``; tests install a fixed clock.

Never evaluate the time at import or as a column default: a frozen timestamp is a classic billing bug.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def held_at(at: datetime) -> Iterator[None]:
    """Hold the clock at ``at`` for the block, then give the previous clock back. `portal demo` replays a few weeks
    of history through the real services (a plan signed, paid, then defaulted), so every row gets the date it would
    have had; nothing else moves the clock."""
    global _system
    frozen = Clock(lambda: at)
    if has_app_context():
        extensions = current_app.extensions
        previous = extensions.get("clock")
        extensions["clock"] = frozen
        try:
            yield
        finally:
            if previous is None:
                extensions.pop("clock", None)
            else:
                extensions["clock"] = previous
    else:
        previous_system, _system = _system, frozen
        try:
            yield
        finally:
            _system = previous_system
