"""What autopay earns the client: a percentage discount on each invoice autopay charges (a ledger adjustment on
the invoice, never an edit of its total) or a rate lock (the next scheduled price increase waived). The incentive
starts when the client enrolls while the MSP offers one, and stops by itself when the client leaves autopay or its
method keeps failing; the client is told once by email (``send_stop_notices``, also run by ``portal run-due``).

For the charging engine (``portal run-due``): ``discount_for`` before charging, ``record_discount`` in the same
transaction that books the charge (it commits nothing), ``stop`` when the method keeps failing.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.domain.invoices import InvoiceStatus
from portal.models import AutopayEnrollment, Client, Contact, Invoice, LedgerAdjustment, RateLock

from .. import adjustments, mail
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from .rules import INCENTIVE_ACTIVE, INCENTIVE_STOPPED, autopay_settings, incentive

AUTOPAY_DISCOUNT = "autopay_discount"
STOP_WORDS = {A.IncentiveStop.LEFT_AUTOPAY: "autopay was switched off",
              A.IncentiveStop.METHOD_FAILING: "the autopay payment method failed several charges in a row"}


def start(session: Session, row: AutopayEnrollment) -> None:
    """Grant the MSP's current incentive to a client enrolling (inside the caller's transaction)."""
    settings = autopay_settings(session)
    kind = A.IncentiveKind(settings.incentive_kind)
    if kind is A.IncentiveKind.NONE:
        return
    row.incentive_state, row.incentive_kind = INCENTIVE_ACTIVE, kind
    row.incentive_started_at, row.incentive_stopped_at, row.incentive_stop_reason = now(), None, None
    row.incentive_stop_notified_at = None
    if kind is A.IncentiveKind.RATE_LOCK:
        on = today()
        increase = settings.next_increase_on if settings.next_increase_on and settings.next_increase_on >= on \
            else None
        session.add(RateLock(client_id=row.client_id, granted_on=on, waived_increase_on=increase,
                             increase_percent=settings.next_increase_percent if increase else None,
                             created_at=now()))


def _active(session: Session, client_id: int) -> AutopayEnrollment | None:
    row = session.scalar(select(AutopayEnrollment).where(AutopayEnrollment.client_id == client_id))
    if row is None or not row.enrolled or row.incentive_state != INCENTIVE_ACTIVE:
        return None
    return row


def discount_for(session: Session, client: Client, invoice: Invoice, balance_cents: int) -> int:
    """The autopay discount on ``balance_cents`` being charged now for ``invoice``: 0 unless the client is on
    autopay with an active discount incentive (the MSP's current percentage; rounded once, half-up)."""
    if invoice.client_id != client.id or balance_cents <= 0:
        return 0
    row = _active(session, client.id)
    if row is None or row.incentive_kind != A.IncentiveKind.DISCOUNT:
        return 0
    settings = autopay_settings(session)
    if settings.incentive_kind != A.IncentiveKind.DISCOUNT or not settings.discount_percent:
        return 0  # the MSP stopped offering it: nothing new is discounted
    return A.split_discount(balance_cents, settings.discount_percent).discount_cents


def record_discount(session: Session, invoice: Invoice, cents: int, *, attempt_id: int) -> LedgerAdjustment | None:
    """Record the discount as its own adjustment on the invoice, in the caller's transaction (nothing committed).
    Recording again for the same attempt returns the first row (a replayed booking discounts once)."""
    if cents < 0:
        raise DomainError("An autopay discount cannot be negative.")
    if cents == 0:
        return None
    existing = session.scalar(select(LedgerAdjustment).where(LedgerAdjustment.kind == AUTOPAY_DISCOUNT,
                                                             LedgerAdjustment.attempt_id == attempt_id))
    if existing is not None:
        return existing
    settings = autopay_settings(session)
    row = LedgerAdjustment(invoice_id=invoice.id, client_id=invoice.client_id, kind=AUTOPAY_DISCOUNT,
                           amount_cents=cents, percent=settings.discount_percent, attempt_id=attempt_id,
                           memo="Autopay discount", created_at=now())
    session.add(row)
    session.flush()
    return row


def discounts_for_attempt(session: Session, attempt_id: int) -> list[tuple[str, int, Decimal | None]]:
    """(invoice number, discount, percent) that the autopay charge ``attempt_id`` earned: its receipt lists them."""
    return [(number, int(cents), percent) for number, cents, percent in session.execute(
        select(Invoice.number, LedgerAdjustment.amount_cents, LedgerAdjustment.percent)
        .join(Invoice, Invoice.id == LedgerAdjustment.invoice_id)
        .where(LedgerAdjustment.kind == AUTOPAY_DISCOUNT, LedgerAdjustment.attempt_id == attempt_id)
        .order_by(LedgerAdjustment.id))]


def stop(session: Session, client: Client | int, reason: A.IncentiveStop | str) -> bool:
    """End the client's incentive (inside the caller's transaction; nothing committed). True if it was active.
    The client is emailed by ``send_stop_notices`` after the commit."""
    client_id = client if isinstance(client, int) else client.id
    reason = A.IncentiveStop(reason)
    row = session.scalar(select(AutopayEnrollment).where(AutopayEnrollment.client_id == client_id)
                         .with_for_update())
    if row is None or row.incentive_state != INCENTIVE_ACTIVE:
        return False
    row.incentive_state, row.incentive_stop_reason, row.incentive_stopped_at = INCENTIVE_STOPPED, reason, now()
    for lock in session.scalars(select(RateLock).where(RateLock.client_id == client_id, RateLock.ended_on.is_(None))):
        if lock.waived_increase_on is None or lock.waived_increase_on > today():
            lock.ended_on, lock.end_reason = today(), reason
    return True


def send_stop_notices(session: Session, rt: Runtime) -> int:
    """Tell each client whose incentive stopped, once. Safe to run again (cron, several nodes): the row is
    claimed before the email goes."""
    sent = 0
    ids = list(session.scalars(select(AutopayEnrollment.id).where(
        AutopayEnrollment.incentive_state == INCENTIVE_STOPPED,
        AutopayEnrollment.incentive_stop_notified_at.is_(None))))
    session.rollback()
    for row_id in ids:
        begin_write(session)
        row = session.scalar(select(AutopayEnrollment).where(AutopayEnrollment.id == row_id).with_for_update())
        if row is None or row.incentive_stop_notified_at is not None:
            session.rollback()
            continue
        row.incentive_stop_notified_at = now()
        client = session.get(Client, row.client_id)
        contacts = [c.email for c in client.contacts if c.is_billing] or [c.email for c in client.contacts]
        reason, kind = row.incentive_stop_reason, row.incentive_kind
        session.commit()
        if contacts:
            msp = get_settings(session)
            mail.send(session, rt, to=contacts[:1], subject=f"Your autopay {_incentive_words(kind)} has ended",
                      template="autopay_incentive_stopped",
                      context={"client": client, "msp": msp, "reason": STOP_WORDS.get(reason, reason),
                               "incentive": _incentive_words(kind), "url": rt.url("autopay.methods")})
            sent += 1
    return sent


def _incentive_words(kind: str | None) -> str:
    return "rate lock" if kind == A.IncentiveKind.RATE_LOCK else "discount"


# --- what the client is shown before enrolling --------------------------------------------------------------------


def yearly_savings(session: Session, client_id: int) -> int | None:
    """What autopay would have saved this client over a year (from its last 12 months of billing)."""
    settings = autopay_settings(session)
    offer = incentive(settings)
    year, month = today().year, today().month - 11  # this month and the 11 before it
    if month <= 0:
        year, month = year - 1, month + 12
    start_on = date(year, month, 1)
    billed, first = session.execute(
        select(func.coalesce(func.sum(Invoice.total_cents), 0), func.min(Invoice.issue_date))
        .where(Invoice.client_id == client_id, Invoice.issue_date >= start_on,
               Invoice.status.in_((InvoiceStatus.OPEN, InvoiceStatus.PAID)))).one()
    months = A.months_of_history(first, today())
    return A.yearly_savings(offer, billed_cents=int(billed or 0), months_of_history=months,
                            next_increase_percent=settings.next_increase_percent)


# --- for the MSP ----------------------------------------------------------------------------------------------------


def discounts_csv(session: Session, currency: str, start_on: date | None = None, end_on: date | None = None) -> str:
    """The autopay discounts for the accounting system (the adjustments CSV of that kind only)."""
    return adjustments.adjustments_csv(session, currency, kinds=(AUTOPAY_DISCOUNT,), start_on=start_on,
                                       end_on=end_on)


def rate_locks(session: Session) -> list[tuple[RateLock, str]]:
    return [(lock, name) for lock, name in session.execute(
        select(RateLock, Client.legal_name).join(Client, Client.id == RateLock.client_id)
        .order_by(RateLock.granted_on.desc(), RateLock.id.desc()))]


def contact_for_notice(client: Client) -> Contact | None:
    return next((c for c in client.contacts if c.is_billing), None)
