"""The autopay discount goes on the books when the money arrives, in the transaction that books the charge: the
invoice then owes exactly what was charged, and a charge that failed never earned it (nothing to reverse). A
charge approved later on-session (authentication_required) earns it too: it pays the same request."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.payments import AttemptOrigin
from portal.models import AutopayCharge, ChargeAttempt, Invoice


def record_on_arrival(session: Session, attempt: ChargeAttempt) -> None:
    if attempt.origin == AttemptOrigin.CHECKOUT:
        return
    row = session.scalar(select(AutopayCharge).where(AutopayCharge.request_id == attempt.request_id))
    if row is None or not row.discount_cents:
        return
    from ..autopay import incentives

    invoice = session.get(Invoice, row.invoice_id)
    incentives.record_discount(session, invoice, row.discount_cents, attempt_id=attempt.id)
