"""Sending: every email about an invoice travels one path (``send_invoice`` with a ``kind``: the invoice itself, a
reminder, a fresh link a visitor asked for). The link and delivery rows are committed *before* the message leaves,
then each delivery records what the mail server answered. A refused message never loses the invoice or the link;
it shows as failed and can be retried.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import links as rules
from portal.domain.errors import DomainError
from portal.domain.invoices import OPEN, PAID
from portal.domain.links import DeliveryStatus
from portal.domain.money import format_money
from portal.gateways.email import Attachment
from portal.models import Contact, Invoice, InvoiceDelivery, InvoiceEvent, InvoiceLink, StaffUser

from .. import billing, ledger, mail
from ..collections import duplicates
from ..documents import invoice_pdf
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from .tokens import link_state, link_url

log = logging.getLogger(__name__)

TEMPLATES = {rules.INVOICE: "invoice", rules.REMINDER: "reminder", rules.FRESH_LINK: "invoice"}


@dataclass(frozen=True)
class ReminderContent:
    """A collections reminder's own email (a dunning step): its template, whether the invoice PDF goes with it, and
    its subject and extra context, built per recipient from the standard context (each has their own link)."""

    label: str  # on the invoice's timeline: "Reminder (Final notice)"
    template: str
    attach_invoice: bool
    build: Callable[[dict], tuple[str, dict]]


def send_invoice(
    session: Session,
    rt: Runtime,
    invoice: Invoice,
    *,
    contacts: Sequence[Contact] | None = None,
    actor: StaffUser | None = None,
    kind: str = rules.INVOICE,
    requested_via: InvoiceLink | None = None,
    content: ReminderContent | None = None,
) -> list[InvoiceDelivery]:
    """Email the invoice to each contact (default: the client's billing contacts with portal access), each with
    their own link and the invoice PDF attached. ``kind="invoice"`` replaces the contacts' earlier links (the old
    emails' links stop working); a reminder or a fresh link reuses a contact's live link."""
    begin_write(session)
    return send_in_transaction(session, rt, invoice, contacts=contacts, actor=actor, kind=kind,
                               requested_via=requested_via, content=content)


def send_in_transaction(session: Session, rt: Runtime, invoice: Invoice, *, contacts: Sequence[Contact] | None,
                        actor: StaffUser | None, kind: str,
                        requested_via: InvoiceLink | None,
                        content: ReminderContent | None = None) -> list[InvoiceDelivery]:
    """send_invoice inside a write transaction the caller began (it may have changed the invoice first)."""
    _lock(session, invoice)
    rules.check_sendable(invoice.status, kind)
    duplicates.check_sendable(session, invoice)  # a likely duplicate waits for the admin's decision
    recipients = _recipients(session, invoice, contacts)
    # the same document as on the portal and the magic-link page, rendered before any row is written: a rendering
    # error leaves nothing half-done
    pdf = invoice_pdf(session, rt, invoice) if content is None or content.attach_invoice else None
    at = now()
    deliveries = []
    for contact in recipients:
        link = _new_link(session, rt, invoice, contact, at) if kind == rules.INVOICE else _live_or_new_link(
            session, rt, invoice, contact, at)
        deliveries.append(_new_delivery(session, invoice, contact, link, kind, actor, at, requested_via))
    session.commit()
    for delivery in deliveries:
        _deliver(session, rt, delivery, pdf, content)
    return deliveries


def send_reminder(session: Session, rt: Runtime, invoice: Invoice, *, contacts: Sequence[Contact] | None = None,
                  actor: StaffUser | None = None, content: ReminderContent | None = None) -> list[InvoiceDelivery]:
    """For the collections work: the same path, the reminder template (or a dunning step's own ``content``), and
    the contacts' links kept."""
    return send_invoice(session, rt, invoice, contacts=contacts, actor=actor, kind=rules.REMINDER, content=content)


def retry_delivery(session: Session, rt: Runtime, delivery: InvoiceDelivery, *,
                   actor: StaffUser | None) -> InvoiceDelivery:
    """Send a failed email again, to the same contact, with the same link while it is still live."""
    begin_write(session)
    invoice = _lock(session, delivery.invoice)
    already = session.scalar(select(InvoiceDelivery.id).where(InvoiceDelivery.retry_of_id == delivery.id))
    rules.check_retryable(delivery.status, delivery.created_at, already is not None, superseded(delivery), now())
    rules.check_sendable(invoice.status, delivery.kind)
    duplicates.check_sendable(session, invoice)
    contact = delivery.contact
    if contact is None or not _eligible(contact, invoice):
        raise DomainError("That contact no longer has portal access at this client; send the invoice instead.")
    pdf = invoice_pdf(session, rt, invoice)
    at = now()
    link = delivery.link
    if link is None or link_state(link) != rules.ACTIVE:
        link = _new_link(session, rt, invoice, contact, at)
    retry = _new_delivery(session, invoice, contact, link, delivery.kind, actor, at, delivery.requested_via_link_id)
    retry.retry_of_id = delivery.id
    session.commit()
    _deliver(session, rt, retry, pdf)
    return retry


@dataclass(frozen=True)
class IssuedAndSent:
    deliveries: list[InvoiceDelivery]
    not_sent: str = ""  # why no email left, when the invoice was issued without one


def issue_and_send(session: Session, rt: Runtime, invoice: Invoice, *, actor: StaffUser | None) -> IssuedAndSent:
    """A draft's "Issue and email" button. Issuing is what the MSP asked for first: an invoice nobody can be
    emailed about (no billing contact with portal access) is still issued, and the answer says why no email left.
    Otherwise the issue is committed with the link and delivery rows, in one transaction, before the emails go."""
    begin_write(session)
    billing.issue_draft(invoice)  # a draft only; refused before anything changed
    if held := duplicates.hold_reason(session, invoice):  # issued, but not sent until the admin decides
        session.commit()
        return IssuedAndSent([], held)
    try:
        recipients = _recipients(session, invoice, None)
    except DomainError as e:
        session.commit()
        return IssuedAndSent([], str(e))
    return IssuedAndSent(send_in_transaction(session, rt, invoice, contacts=recipients, actor=actor,
                                             kind=rules.INVOICE, requested_via=None))


@dataclass
class BulkResult:
    sent: list[str] = field(default_factory=list)  # invoice numbers every email of which was accepted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (invoice number or id, why)


def send_many(session: Session, rt: Runtime, invoice_ids: Iterable[int], *, actor: StaffUser | None) -> BulkResult:
    """Bulk send from the invoice list. Each invoice is its own transaction: one bad invoice stops no other."""
    result = BulkResult()
    for invoice_id in dict.fromkeys(invoice_ids):
        invoice = session.get(Invoice, invoice_id)
        if invoice is None:
            result.failed.append((f"#{invoice_id}", "No such invoice."))
            continue
        try:
            deliveries = send_invoice(session, rt, invoice, actor=actor)
        except DomainError as e:
            session.rollback()
            result.failed.append((invoice.number, str(e)))
            continue
        failed = [d for d in deliveries if d.status != DeliveryStatus.ACCEPTED]
        if failed:
            result.failed.append((invoice.number, "; ".join(f"{d.to_email}: {d.error}" for d in failed)))
        else:
            result.sent.append(invoice.number)
    return result


def _lock(session: Session, invoice: Invoice) -> Invoice:
    """Serialise sends of one invoice (PostgreSQL), so two clicks cannot leave a contact with two live links."""
    session.execute(select(Invoice.id).where(Invoice.id == invoice.id).with_for_update())
    return invoice


def _eligible(contact: Contact, invoice: Invoice) -> bool:
    return contact.client_id == invoice.client_id and contact.portal_access


def _recipients(session: Session, invoice: Invoice, contacts: Sequence[Contact] | None) -> list[Contact]:
    if contacts is None:
        everyone = session.scalars(
            select(Contact).where(Contact.client_id == invoice.client_id).order_by(Contact.id)
        ).all()
        chosen = set(rules.pick_recipients(rules.ContactFacts(c.id, c.is_billing, c.portal_access) for c in everyone))
        picked = [c for c in everyone if c.id in chosen]
        if not picked:
            raise rules.NoRecipients(
                f"{invoice.client.legal_name} has no billing contact with portal access. Add one, then send.")
        return picked
    picked = list({c.id: c for c in contacts}.values())
    if not picked:
        raise DomainError("Choose at least one contact to send the invoice to.")
    for contact in picked:
        if contact.client_id != invoice.client_id:
            raise DomainError(f"{contact.email} is not a contact of {invoice.client.legal_name}.")
        if not contact.portal_access:
            raise DomainError(f"{contact.email} has no portal access, so a link would not open for them.")
    return picked


def _new_link(session: Session, rt: Runtime, invoice: Invoice, contact: Contact, at: datetime) -> InvoiceLink:
    """A fresh link for the contact; every earlier link of theirs to this invoice now points at it and is dead."""
    days = int(rt.config["INVOICE_LINK_DAYS_AFTER_DUE"])
    link = InvoiceLink(
        invoice_id=invoice.id, contact_id=contact.id, nonce=secrets.token_urlsafe(24), created_at=at,
        expires_at=rules.link_expires_at(invoice.due_date, at, days), open_count=0,
    )
    session.add(link)
    session.flush()
    earlier = session.scalars(
        select(InvoiceLink).where(InvoiceLink.invoice_id == invoice.id, InvoiceLink.contact_id == contact.id,
                                  InvoiceLink.id != link.id, InvoiceLink.replaced_by_id.is_(None))
    )
    for old in earlier:
        old.replaced_by_id = link.id
    return link


def _live_or_new_link(session: Session, rt: Runtime, invoice: Invoice, contact: Contact,
                      at: datetime) -> InvoiceLink:
    live = session.scalars(
        select(InvoiceLink)
        .where(InvoiceLink.invoice_id == invoice.id, InvoiceLink.contact_id == contact.id,
               InvoiceLink.revoked_at.is_(None), InvoiceLink.replaced_by_id.is_(None), InvoiceLink.expires_at > at)
        .order_by(InvoiceLink.id.desc())
    ).first()
    return live or _new_link(session, rt, invoice, contact, at)


def _new_delivery(session: Session, invoice: Invoice, contact: Contact, link: InvoiceLink, kind: str,
                  actor: StaffUser | None, at: datetime, requested_via: InvoiceLink | int | None,
                  ) -> InvoiceDelivery:
    via_id = requested_via.id if isinstance(requested_via, InvoiceLink) else requested_via
    delivery = InvoiceDelivery(
        invoice_id=invoice.id, contact_id=contact.id, link_id=link.id, kind=kind, to_email=contact.email,
        to_name=contact.name, status=DeliveryStatus.SENDING, created_at=at, sent_by_id=actor.id if actor else None,
        requested_via_link_id=via_id, transport="", message_id="", error="",
    )
    session.add(delivery)
    session.flush()
    return delivery


def _deliver(session: Session, rt: Runtime, delivery: InvoiceDelivery, pdf: bytes | None,
             content: ReminderContent | None = None) -> None:
    invoice = delivery.invoice
    try:
        context = email_context(session, rt, invoice, delivery)
        subject, template = subject_for(session, invoice, delivery.kind), TEMPLATES[delivery.kind]
        if content is not None:
            subject, extra = content.build(context)
            context, template = {**context, **extra}, content.template
        result = mail.send(
            session, rt,
            to=[delivery.to_email],
            subject=subject,
            template=template,
            context=context,
            attachments=[Attachment(f"{invoice.number}.pdf", pdf)] if pdf is not None else [],
        )
        ok, error, transport, message_id = result.ok, result.error, result.transport, result.message_id
    except Exception as e:  # a bug in rendering must still leave the delivery on record as failed, not "sending"
        log.exception("email for invoice %s failed before reaching the mail server", invoice.number)
        ok, error, transport, message_id = False, f"{type(e).__name__}: {e}", "", ""
    # a fresh write transaction for the outcome (begin_write ends the reads the email was built from): on SQLite a
    # read transaction cannot become a write once another request wrote while the email went out
    begin_write(session)
    delivery.status = DeliveryStatus.ACCEPTED if ok else DeliveryStatus.FAILED
    delivery.error = error[:2000]
    delivery.transport = transport
    delivery.message_id = message_id or ""
    delivery.finished_at = now()
    who = f"{delivery.to_name} <{delivery.to_email}>" if delivery.to_name else delivery.to_email
    what = content.label if content else {rules.INVOICE: "Invoice", rules.REMINDER: "Reminder",
                                          rules.FRESH_LINK: "Fresh link"}[delivery.kind]
    if ok:
        where = "written to the outbox" if transport == "outbox" else "accepted by the mail server"
        record_event(session, invoice, "sent", f"{what} emailed to {who} ({where}).", delivery=delivery)
    else:
        record_event(session, invoice, "send_failed", f"{what} email to {who} failed: {delivery.error}",
                     delivery=delivery)
    session.commit()


def subject_for(session: Session, invoice: Invoice, kind: str) -> str:
    msp = get_settings(session).name
    balance = format_money(ledger.balance_of(session, invoice), invoice.currency)
    due = invoice.due_date.strftime("%b %-d, %Y")
    if kind == rules.REMINDER:
        state = "is overdue" if invoice.due_date < today() else f"is due {due}"
        return f"Reminder: invoice {invoice.number} from {msp} {state} ({balance})"
    if kind == rules.FRESH_LINK:
        return f"Your new link to invoice {invoice.number} from {msp}"
    if invoice.status == PAID:
        return f"Invoice {invoice.number} from {msp} (paid)"
    return f"Invoice {invoice.number} from {msp}: {balance} due {due}"


def email_context(session: Session, rt: Runtime, invoice: Invoice, delivery: InvoiceDelivery) -> dict:
    figures = ledger.invoice_figures(session, invoice, today())
    return {
        "kind": delivery.kind,
        "invoice": invoice,
        "client": invoice.client,
        "contact_name": delivery.to_name,
        "link_url": link_url(rt, delivery.link) if delivery.link else "",
        "link_expires_at": delivery.link.expires_at if delivery.link else None,
        # what was paid in money, and each adjustment (an autopay discount, a write-off) as its own line
        "adjustments": (adjustments := ledger.adjustments_on(session, invoice.id)),
        "paid_cents": figures.paid_cents - sum(a.cents for a in adjustments),
        "balance_cents": figures.balance_cents,
        "overdue": invoice.status == OPEN and invoice.due_date < today(),
        "msp": get_settings(session),
    }


def superseded(delivery: InvoiceDelivery) -> bool:
    return delivery.link is not None and delivery.link.replaced_by_id is not None


def contact_label(contact: Contact | None) -> str:
    return f"{contact.name} <{contact.email}>" if contact else "a removed contact"


def record_event(session: Session, invoice: Invoice, kind: str, detail: str, *, delivery: InvoiceDelivery | None = None,
                 link: InvoiceLink | None = None, actor: StaffUser | None = None) -> None:
    contact_id = delivery.contact_id if delivery else (link.contact_id if link else None)
    session.add(InvoiceEvent(
        invoice_id=invoice.id, at=now(), kind=kind, detail=detail, contact_id=contact_id,
        delivery_id=delivery.id if delivery else None, link_id=link.id if link else (delivery.link_id if delivery
                                                                                       else None),
        actor_id=actor.id if actor else None,
    ))
