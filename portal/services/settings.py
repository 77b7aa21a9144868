"""The MSP's settings row, and a per-process copy of it for pages (SettingsCache)."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

from sqlalchemy.orm import Session

from portal.models import MspSettings

EDITABLE = ("name", "legal_name", "address", "email", "reply_to", "phone", "website", "currency",
            "default_net_days", "payment_instructions")


def get_settings(session: Session) -> MspSettings:
    """The single settings row. Before the admin saves any, an unsaved placeholder: reading never writes, so a
    page view cannot hold a write lock."""
    row = session.get(MspSettings, 1)
    if row is None:
        row = MspSettings(id=1, name="Your MSP", legal_name="", address="", email="", reply_to="", phone="",
                          website="", currency="USD", default_net_days=30, payment_instructions="")
    return row


def update_settings(session: Session, **fields) -> MspSettings:
    row = get_settings(session)
    if row not in session:
        session.add(row)
    for key, value in fields.items():
        if key not in EDITABLE and key != "logo_filename":
            raise TypeError(f"unknown setting {key}")
        setattr(row, key, value)
    session.commit()
    _saved()
    return row


# --- the copy pages read --------------------------------------------------------------------------------------------
# Every page shows the MSP's name and contact details; reading the row on each request was one database round trip
# per page (issue 14). Pages read a copy kept per process instead. A save in this process replaces the copy at
# once (every SettingsCache in the process sees _generation move); a save made by another worker or node is
# seen here when the copy expires, at most SettingsCache.seconds later (PORTAL_SETTINGS_CACHE_SECONDS, 0 = read
# the row every time). Services that compute with settings (currency, net days) keep reading the row itself, in
# their own transaction; only what a page displays can lag, and by seconds.

_generation = 0  # saves made by this process


def _saved() -> None:
    global _generation
    _generation += 1


class SettingsCache:
    """A read-only copy of the settings row for one app, re-read after ``seconds`` or after a save here."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds = seconds
        self.clock = clock
        self._held: tuple[SimpleNamespace, int, float] | None = None  # (copy, generation, expires); one assignment

    def get(self, session: Session) -> SimpleNamespace:
        held, now = self._held, self.clock()
        if held is None or held[1] != _generation or now >= held[2]:
            generation = _generation  # before reading: a save that lands meanwhile makes the next call re-read
            row = get_settings(session)
            copy = SimpleNamespace(**{c.key: getattr(row, c.key) for c in MspSettings.__table__.columns})
            held = self._held = (copy, generation, now + self.seconds)
        return held[0]
