"""Demo data for late fees: once the demo clients have signed their payment terms (two of them pay late), the
late-fee step runs as `portal run-due` would, so the fee pages, the invoice banners and the clients' late-fee
invoices have something to show. ``waive_one`` waives the smallest fee with a reason (its fee invoice is voided)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import LateFee, StaffUser

from .collections import late_fees

WAIVER_REASON = "First late payment in three years; waived as goodwill after the office manager called."


def seed_fees(session: Session, today: date) -> int:
    """Fees charged."""
    return len(late_fees.charge_late_fees(session, today).charged)


def waive_one(session: Session, staff: StaffUser | None) -> LateFee | None:
    """Waive the smallest charged fee, as an admin would after a call."""
    smallest = session.scalar(select(LateFee).where(LateFee.waived_at.is_(None))
                              .order_by(LateFee.amount_cents, LateFee.id).limit(1))
    if smallest is None:
        return None
    late_fees.waive_fee(session, smallest.id, staff=staff, reason=WAIVER_REASON)
    return smallest
