"""The payments' side of the one lock order (``portal.services.locking``): the client's invoices first, then the
charge attempt / payment / refund rows. Every transaction here that needs both calls these in that order, even when
it starts from an attempt, so two of them can never wait on each other (a deadlock on PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.models import ChargeAttempt, Invoice, Payment, PaymentRequest


def lock_client_invoices(session: Session, client_id: int) -> None:
    """Step 1: all the client's invoices, in the order ``ledger.open_items(lock=True)`` takes the open ones (due
    date, id), so the two never cross. All of them, not only the open ones: a refund reopens a paid invoice."""
    session.execute(select(Invoice.id).where(Invoice.client_id == client_id)
                    .order_by(Invoice.due_date, Invoice.id).with_for_update())


def client_of_attempt(session: Session, attempt_id: int) -> int:
    client_id = session.scalar(select(PaymentRequest.client_id)
                               .join(ChargeAttempt, ChargeAttempt.request_id == PaymentRequest.id)
                               .where(ChargeAttempt.id == attempt_id))
    if client_id is None:
        raise LookupError(f"no charge attempt {attempt_id}")
    return client_id


def lock_attempt(session: Session, attempt_id: int) -> ChargeAttempt:
    """Step 2: the attempt row, reloaded so what the caller reads is what is committed now."""
    attempt = session.get(ChargeAttempt, attempt_id, with_for_update=True, populate_existing=True)
    if attempt is None:
        raise LookupError(f"no charge attempt {attempt_id}")
    return attempt


def lock_payment(session: Session, payment: Payment) -> Payment:
    session.refresh(payment, with_for_update=True)
    return payment


def end_reads(session: Session) -> None:
    """End the current (read-only) transaction before a gateway call: no transaction, and on SQLite no write lock,
    is held while the network answers. Loaded objects stay loaded (the sessions do not expire on commit)."""
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("unsaved changes before a gateway call: commit them first")
    if session.in_transaction():
        session.commit()
