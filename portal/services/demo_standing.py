"""Demo data for client standing: the demo's late payers are on hold by their own numbers; one of them has a staff
override (a wire promised by phone), and the standings are recorded as run-due would, so the first run announces
nothing stale. No API token or webhook endpoint is made: a token is shown once, so the admin creates their own."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy.orm import Session

from portal.domain.standing import Standing
from portal.models import Client, StaffUser

from . import standing

OVERRIDE_REASON = "Owner called: wire for the overdue balance goes out Friday. Keep service running until then."


def seed(session: Session, clients: list[Client], admin: StaffUser, today: date) -> list[Client]:
    """Returns the clients on hold."""
    held = [v.client for v in standing.for_clients(session, clients, today) if v.result.standing == Standing.ON_HOLD]
    if len(held) > 1:  # the last one gets a reprieve; the others stay on hold
        standing.set_override(session, held[-1], standing=Standing.GOOD, reason=OVERRIDE_REASON,
                              ends_on=today + timedelta(days=5), staff=admin, today=today)
        held = held[:-1]
    standing.record_changes(session, today)
    return held
