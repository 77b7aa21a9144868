"""Leases: work that one process at a time should do (a `run-due` step with no row to claim per item, or charging
one client's invoices), held until an expiry so a process that died lets go by itself.

A lease is a row named after the work; taking it is an insert (a second taker's insert fails on the primary key) or,
once expired, an update under its row lock. Leases only spread work: what stops a second charge is the charge rows'
unique constraints, so a lease that expires too early costs at most a skipped or waited-for invoice, never money.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.models import DueLease

from .locking import begin_write


def take(session: Session, name: str, holder: str, seconds: float) -> bool:
    """True when ``holder`` may do the work now (no one else holds an unexpired lease on it)."""
    begin_write(session)
    lease = session.get(DueLease, name, with_for_update=True, populate_existing=True)
    stamp = now()
    if lease is None:
        session.add(DueLease(name=name, holder=holder, expires_at=stamp + timedelta(seconds=seconds)))
    elif lease.expires_at > stamp and lease.holder != holder:
        session.rollback()
        return False
    else:
        lease.holder, lease.expires_at = holder, stamp + timedelta(seconds=seconds)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def release(session: Session, name: str, holder: str) -> None:
    """Let go of a lease this holder took (someone who took it over after it expired keeps theirs)."""
    begin_write(session)
    session.execute(delete(DueLease).where(DueLease.name == name, DueLease.holder == holder))
    session.commit()
