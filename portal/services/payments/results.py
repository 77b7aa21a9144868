"""The one place a gateway's answer about a charge changes our books, whoever brings it (the paying browser's
request, a webhook, reconciliation). Safe to call again, late, or out of order: states only move forward.

Three steps; nothing after the first can undo the knowledge that money moved:

1. ``record``: the answer (status, the gateway's id, method details) on the attempt row.
2. ``book``: the ledger brought in step with the attempt (a Payment while the money is on its way, allocated to the
   invoices once the gateway says it *succeeded*: a bank debit stays "processing" and the invoice stays open). It
   takes the locks in the one order: the client's invoices, then the attempt.
3. the email to the client (a receipt, or a failure the client did not see happen). A refused or failed email is
   logged and retried by reconciliation; it never turns a payment into an error.

Steps 1 and 2 usually commit together (one transaction per answer instead of two: run-due books thousands). Should
that transaction fail (a deadlock, an allocation refused, the database restarting), the answer is recorded again on
its own and booking retried once; if that fails too the attempt already says what happened and
``reconciliation.finish`` books it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.gateways.payments import ChargeResult
from portal.models import ChargeAttempt, Payment

from .. import ledger
from ..locking import begin_write
from ..runtime import Runtime
from . import autopay_discount, notices
from .booking import apply_arrived_payment
from .locks import client_of_attempt, lock_attempt, lock_client_invoices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    before: str
    after: str
    attempt: ChargeAttempt  # as committed; kept by the caller, so the session's (weak) identity map keeps it too


def payment_of(session: Session, attempt: ChargeAttempt) -> Payment | None:
    return session.get(Payment, attempt.payment_id) if attempt.payment_id else None


def apply_result(session: Session, rt: Runtime, attempt_id: int, result: ChargeResult, *,
                 source: str) -> ChargeAttempt:
    """Record what the gateway says about an attempt, book it, and tell the client when they are not looking.

    ``source`` is "browser" when the paying client is looking at the outcome right now; failures learned any other
    way (a bank debit returned days later, a webhook, reconciliation) are emailed to the client. "autopay": a charge
    run-due makes (autopay or an installment).
    """
    change, booked = _record_and_book(session, attempt_id, result)
    if change is None:
        return _get(session, attempt_id)
    attempt = change.attempt  # a failed booking expires it; the next read reloads it
    if change.after == change.before or (not booked and needs_booking(session, attempt)):
        return attempt  # an unbooked payment's email goes out when reconciliation books it
    if change.after == rules.SUCCEEDED:
        notices.send_receipt(session, rt, attempt)
        if source != "autopay":  # run-due's own charges: its "notices withdrawn" step comes later in the same run
            _withdraw_paid_notices(session, rt, attempt)
    elif change.after == rules.FAILED and (change.before == rules.PROCESSING or source != "browser"):
        notices.send_failure_notice(session, rt, attempt)
    return attempt


def _withdraw_paid_notices(session: Session, rt: Runtime, attempt: ChargeAttempt) -> None:
    """A booked payment may pay what a remote-disable notice was about: withdraw it now rather than on the next
    run-due (which still catches it if this fails; a payment never turns into an error because of it)."""
    from ..enforcement.notices import withdraw_paid

    client_id = attempt.request.client_id
    try:
        withdraw_paid(session, rt, client_id=client_id)
    except Exception:
        session.rollback()
        log.exception("notices of client %s: not withdrawn after payment (run-due will)", client_id)


def _get(session: Session, attempt_id: int) -> ChargeAttempt:
    attempt = session.get(ChargeAttempt, attempt_id)
    if attempt is None:
        raise LookupError(f"no charge attempt {attempt_id}")
    return attempt


def _record_and_book(session: Session, attempt_id: int, result: ChargeResult) -> tuple[Change | None, bool]:
    """Steps 1 and 2 in one transaction; on failure, step 1 on its own and step 2 once more (``book_safely``).
    Returns the change (None: the answer is about another charge) and whether this call booked it."""
    try:
        begin_write(session)
        client_id = _get(session, attempt_id).request.client_id  # never changes; often loaded already (run-due)
        lock_client_invoices(session, client_id)
        attempt = lock_attempt(session, attempt_id)
        change = _record_locked(session, attempt, result)
        if change is None:
            session.rollback()
            return None, False
        booked = needs_booking(session, attempt) and _book_locked(session, attempt, client_id)
        session.commit()
        return change, booked
    except (SQLAlchemyError, DomainError):
        session.rollback()
        log.warning("charge attempt %s: recording and booking together failed; recording first", attempt_id,
                    exc_info=True)
    change = record(session, attempt_id, result)
    if change is None:
        return None, False
    client_id = change.attempt.request.client_id
    return change, needs_booking(session, change.attempt) and book_safely(session, attempt_id, client_id=client_id)


def record(session: Session, attempt_id: int, result: ChargeResult) -> Change | None:
    """Step 1 alone: the gateway's answer on the attempt row, committed at once. None: the answer is about another
    charge."""
    begin_write(session)
    attempt = lock_attempt(session, attempt_id)  # only the attempt: no invoice lock is held or wanted
    change = _record_locked(session, attempt, result)
    if change is None:
        session.rollback()
        return None
    session.commit()  # keeps a newly learnt gateway id even when the state did not move
    return change


def _record_locked(session: Session, attempt: ChargeAttempt, result: ChargeResult) -> Change | None:
    if result.gateway_id and attempt.gateway_id and result.gateway_id != attempt.gateway_id:
        log.error("charge attempt %s is %s, ignoring a result for %s", attempt.id, attempt.gateway_id,
                  result.gateway_id)
        return None
    before = attempt.status
    after = rules.advance(before, rules.attempt_status_for(result.status))
    if result.gateway_id and not attempt.gateway_id:
        attempt.gateway_id = result.gateway_id
    if not (after == before and before in rules.FINAL):
        _copy_method_details(attempt, result)
        attempt.status = after
        attempt.updated_at = now()
        if after == rules.REQUIRES_ACTION:
            attempt.next_action_url = result.next_action_url
        if after in (rules.FAILED, rules.CANCELED) and before != after:
            attempt.failure_code = result.failure_code or result.decline_code or after
            attempt.decline_code = result.decline_code
            attempt.failure_message = result.failure_message or (
                "The payment was canceled." if after == rules.CANCELED else "The payment could not be completed.")
        if after in rules.FINAL and before not in rules.FINAL:
            attempt.settled_at = now()
    return Change(before, after, attempt)


def _copy_method_details(attempt: ChargeAttempt, result: ChargeResult) -> None:
    if result.method_type in ("card", "us_bank_account"):
        attempt.method_type = result.method_type
    attempt.card_funding = result.card_funding or attempt.card_funding
    attempt.brand = result.brand or attempt.brand
    attempt.last4 = result.last4 or attempt.last4


def needs_booking(session: Session, attempt: ChargeAttempt | None) -> bool:
    """Does the ledger lag behind what the gateway said (no Payment yet, or one in another state)?"""
    if attempt is None:
        return False
    status = rules.payment_status_for(attempt.status)
    if status is None:
        return False
    payment = payment_of(session, attempt)
    if payment is None:
        return status not in (rules.FAILED, rules.CANCELED)  # a decline on the spot: no money ever moved
    return payment.status != status


def book_safely(session: Session, attempt_id: int, *, client_id: int | None = None) -> bool:
    """``book``, where a database failure is logged and left for reconciliation (the answer is already recorded).
    True when this call brought the ledger in step; False when it failed or another request had already done it."""
    try:
        return book(session, attempt_id, client_id=client_id)
    except (SQLAlchemyError, DomainError):
        session.rollback()
        log.exception("charge attempt %s: recorded but not booked yet; `portal payments reconcile` will finish it",
                      attempt_id)
        return False


def book(session: Session, attempt_id: int, *, client_id: int | None = None) -> bool:
    """Step 2: keep the ledger Payment in step with the attempt; allocate it to the invoices when the money arrived.
    False when there was nothing left to do (a twin request booked it first). ``client_id``: the attempt's client,
    when the caller holds it (an attempt's client never changes), else it is looked up."""
    begin_write(session)
    client_id = client_id or client_of_attempt(session, attempt_id)
    lock_client_invoices(session, client_id)
    changed = _book_locked(session, lock_attempt(session, attempt_id), client_id)
    session.commit()
    return changed


def _book_locked(session: Session, attempt: ChargeAttempt, client_id: int) -> bool:
    changed = _sync_payment(session, attempt)
    if changed and attempt.status == rules.SUCCEEDED:  # settled money: an equipment order waiting on it is cleared
        from ..enforcement.orders import clear_settled

        clear_settled(session, client_id=client_id)
    return changed


def finish_notices(session: Session, rt: Runtime, attempt_id: int) -> None:
    """The email a booking owes the client when it was not booked by the request that learnt the outcome."""
    attempt = session.get(ChargeAttempt, attempt_id)
    if attempt is None:
        return
    payment = payment_of(session, attempt)
    if attempt.status == rules.SUCCEEDED and payment is not None and attempt.receipt_sent_at is None:
        notices.send_receipt(session, rt, attempt)
    elif attempt.status == rules.FAILED and payment is not None and attempt.failure_notice_sent_at is None:
        notices.send_failure_notice(session, rt, attempt)  # money had been on its way: the client left long ago


def _sync_payment(session: Session, attempt: ChargeAttempt) -> bool:
    status = rules.payment_status_for(attempt.status)
    if status is None:
        return False
    payment = payment_of(session, attempt)
    if payment is None:
        if status in (rules.FAILED, rules.CANCELED):
            return False
        payment = Payment(
            client_id=attempt.request.client_id, method="ach" if attempt.method_type == "us_bank_account" else "card",
            status=status, amount_cents=attempt.amount_cents, currency=attempt.currency, received_on=today(),
            reference=(attempt.gateway_id or "")[:100], memo=f"Online payment: {notices.describe_method(attempt)}",
            created_at=now(),
        )
        session.add(payment)
        attempt.payment = payment  # one flush inserts it and updates the attempt once
        arrived = status == rules.SUCCEEDED
    else:
        session.refresh(payment, with_for_update=True)
        if payment.status == status:
            return False
        arrived = status == rules.SUCCEEDED
    payment.status = status
    if payment.reference == "" and attempt.gateway_id:
        payment.reference = attempt.gateway_id[:100]
    if arrived:
        payment.received_on = today()  # a bank debit arrives days after the client paid
        autopay_discount.record_on_arrival(session, attempt)  # before allocating: the invoice owes what was charged
        chosen = {item.invoice_id: item.amount_cents for item in attempt.request.items}
        items = ledger.open_items(session, payment.client_id, lock=True)
        apply_arrived_payment(session, payment, rules.allocation_on_arrival(chosen, items), items=items)
        attempt.request.status = rules.PaymentRequestStatus.PAID
    return True
