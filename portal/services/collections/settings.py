"""The MSP's collection settings: its borrowing rate (what lending to clients costs), when a call follows the
day-after-due email, and how close two bills' issue dates must be to look like duplicates."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.errors import DomainError
from portal.models import CollectionSettings

from ..locking import begin_write, serialize

DEFAULTS = {"borrowing_rate_percent": Decimal("8"), "call_after_days": 3, "duplicate_window_days": 5}


def collection_settings(session: Session) -> CollectionSettings:
    row = session.get(CollectionSettings, 1)
    if row is None:
        # unsaved defaults: reading settings never writes (a page view must not take a write lock)
        row = CollectionSettings(id=1, **DEFAULTS)
    return row


def update_collection_settings(session: Session, *, borrowing_rate_percent: Decimal, call_after_days: int,
                               duplicate_window_days: int) -> CollectionSettings:
    if not Decimal("0") <= borrowing_rate_percent <= Decimal("100"):
        raise DomainError("The borrowing rate must be between 0% and 100%.")
    if not 0 <= call_after_days <= 60:
        raise DomainError("The call should follow the email within 0 to 60 days.")
    if not 0 <= duplicate_window_days <= 60:
        raise DomainError("The duplicate window must be between 0 and 60 days.")
    begin_write(session)
    serialize(session, "collection settings")  # PostgreSQL: two first saves at once would both insert the row
    row = collection_settings(session)
    if row not in session:
        session.add(row)
    row.borrowing_rate_percent = borrowing_rate_percent
    row.call_after_days = call_after_days
    row.duplicate_window_days = duplicate_window_days
    row.updated_at = now()
    session.commit()
    return row
