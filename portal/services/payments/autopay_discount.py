"""The autopay discount goes on the books when the money arrives, in the transaction that books the charge: the
invoice then owes exactly what was charged, and a charge that failed never earned it (nothing to reverse). A
charge approved later on-session (authentication_required) earns it too: it pays the same request.

The same transaction marks the autopay charge handled: a paid charge has no consequences to apply
(``autopay_declines.handle`` would only set the mark), and setting it here spares `run-due` a transaction per
charge. Should booking fail, the mark is not set and the next "autopay outcomes" step handles the charge."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.payments import AttemptOrigin
from portal.models import AutopayCharge, ChargeAttempt, Invoice


def record_on_arrival(session: Session, attempt: ChargeAttempt) -> None:
    if attempt.origin == AttemptOrigin.CHECKOUT:
        return
    with session.no_autoflush:  # the booking's pending rows go in one flush with this row's mark, below
        row = session.scalar(select(AutopayCharge).where(AutopayCharge.request_id == attempt.request_id))
    if row is None:
        return
    if row.attempt_id == attempt.id and row.handled_at is None:
        # the caller holds the client's invoices, which handle() takes before this row: the two never interleave
        row.handled_at = now()
    if not row.discount_cents:
        return
    from ..autopay import incentives

    invoice = session.get(Invoice, row.invoice_id)
    incentives.record_discount(session, invoice, row.discount_cents, attempt_id=attempt.id)
