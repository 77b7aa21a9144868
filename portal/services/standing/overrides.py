"""Staff overrides of a client's standing: a standing, a reason and an end date, recorded and never deleted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import Date, bindparam, select, update
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import standing as S
from portal.models import Client, StaffUser, StandingOverride

from ..errors import NotFound
from ..keysets import plain_rows


def active_overrides(session: Session, client_ids: Sequence[int], today: date) -> dict[int, S.Override]:
    """The override in force per client: the newest one not ended early whose end date has not passed."""
    rows = session.scalars(_IN_FORCE, {"client_ids": list(client_ids), "today": today})
    found: dict[int, S.Override] = {}
    for row in rows:
        found.setdefault(row.client_id, _override(row))
    return found


def in_force(history: Sequence[PastOverride], today: date) -> S.Override | None:
    """The override in force, from a client's ``override_history`` (newest first) instead of a read of its own: the
    same rule as ``active_overrides``. Only the newest rows can be in force, because ``set_override`` ends whatever
    is in force before it adds the new one (two set at the same moment are both among the newest)."""
    row = next((row for row in history if row.ended_at is None and row.ends_on >= today), None)
    return _override(row) if row is not None else None


def _override(row: StandingOverride | PastOverride) -> S.Override:
    return S.Override(S.Standing(row.standing), row.reason, row.ends_on)


# Built once: every standing reads it, and building it cost about as much as running it.
_IN_FORCE = (select(StandingOverride)
             .where(StandingOverride.client_id.in_(bindparam("client_ids", expanding=True)),
                    StandingOverride.ended_at.is_(None), StandingOverride.ends_on >= bindparam("today", type_=Date()))
             .order_by(StandingOverride.client_id, StandingOverride.id.desc()))


def set_override(session: Session, client: Client, *, standing: str, reason: str, ends_on: date | None,
                 staff: StaffUser | None, today: date) -> StandingOverride:
    chosen, reason, ends_on = S.check_override(standing, reason, ends_on, today)
    at = now()
    # the new decision replaces the one in force: it must not come back when the new one ends before it would have
    session.execute(update(StandingOverride).where(
        StandingOverride.client_id == client.id, StandingOverride.ended_at.is_(None),
        StandingOverride.ends_on >= today).values(ended_at=at, ended_by_staff_id=staff.id if staff else None))
    row = StandingOverride(client_id=client.id, standing=chosen, reason=reason, ends_on=ends_on,
                           staff_id=staff.id if staff else None, created_at=at)
    session.add(row)
    session.commit()
    return row


def end_override(session: Session, client: Client, override_id: int, staff: StaffUser | None) -> StandingOverride:
    row = session.get(StandingOverride, override_id)
    if row is None or row.client_id != client.id:
        raise NotFound()
    if row.ended_at is None:
        row.ended_at = now()
        row.ended_by_staff_id = staff.id if staff else None
        session.commit()
    return row


class PastOverride(NamedTuple):
    """One of a client's overrides as its history shows it, with the name of the staff user who set it."""

    id: int
    standing: str
    reason: str
    ends_on: date
    created_at: datetime
    ended_at: datetime | None
    staff_name: str | None  # None: set by no one signed in (a command)


def override_history(session: Session, client: Client, limit: int = 10) -> list[PastOverride]:
    """The client's newest overrides first. Plain rows with the staff user's name: the staff client page reads it on
    every view, and ORM objects (and a staff user loaded per row) cost more than the statement."""
    return [PastOverride(*row) for row in plain_rows(session, _HISTORY, {"client_id": client.id, "limit": limit})]


_HISTORY = (select(StandingOverride.id, StandingOverride.standing, StandingOverride.reason, StandingOverride.ends_on,
                   StandingOverride.created_at, StandingOverride.ended_at, StaffUser.name)
            .outerjoin(StaffUser, StaffUser.id == StandingOverride.staff_id)
            .where(StandingOverride.client_id == bindparam("client_id"))
            .order_by(StandingOverride.id.desc()).limit(bindparam("limit")))
