"""Emailing invoices with a magic link, tracking what happened to each email, and managing the links.

Every email about an invoice travels one path (``send_invoice`` with a ``kind``: the invoice itself, a reminder,
a fresh link a visitor asked for): the link and delivery rows are committed *before* the message leaves, then
each delivery records what the mail server answered. A refused message never loses the invoice or the link; it
shows as failed and can be retried.

The emailed token is signed (itsdangerous, salt "invoice-link") and names a link row, its invoice and a nonce.
The row decides validity (expiry, revocation, replacement, the contact's access); the token decides nothing.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import links as rules
from portal.domain.errors import DomainError
from portal.domain.money import format_money
from portal.gateways import email
from portal.models import Contact, Invoice, InvoiceDelivery, InvoiceEvent, InvoiceLink, StaffUser

from . import ledger
from .errors import NotFound
from .settings import get_settings

log = logging.getLogger(__name__)

LINK_SALT = "invoice-link"  # itsdangerous salt: a token of another purpose never verifies here
LINK_PATH = "/i/{token}"  # the public route in portal/web/links/routes.py; emails need it without a request
UNKNOWN = "unknown"  # a token that is tampered with or names no link: nothing may be said about it
MAX_TOKEN_CHARS = 400
TEMPLATES = {rules.INVOICE: "invoice", rules.REMINDER: "reminder", rules.FRESH_LINK: "invoice"}


# --- tokens ------------------------------------------------------------------------------------------------------

def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


def link_token(link: InvoiceLink) -> str:
    return _serializer().dumps([link.id, link.invoice_id, link.nonce])


def link_url(link: InvoiceLink) -> str:
    return current_app.config["BASE_URL"].rstrip("/") + LINK_PATH.format(token=link_token(link))


@dataclass(frozen=True)
class LinkAccess:
    """What a token opens. ``invoice`` is set only when the link is active; a dead link keeps its row (to send a
    fresh link) but the web layer must show nothing from it."""

    state: str
    link: InvoiceLink | None = None
    invoice: Invoice | None = None

    @property
    def ok(self) -> bool:
        return self.state == rules.ACTIVE


def resolve_link(session: Session, token: str) -> LinkAccess:
    link = _link_for_token(session, token)
    if link is None:
        return LinkAccess(UNKNOWN)
    state = rules.link_state(_facts(link), now())
    return LinkAccess(state, link, link.invoice if state == rules.ACTIVE else None)


def _link_for_token(session: Session, token: str) -> InvoiceLink | None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        payload = _serializer().loads(token)
    except BadData:
        return None
    if not (isinstance(payload, list) and len(payload) == 3):
        return None
    link_id, invoice_id, nonce = payload
    if not (type(link_id) is int and type(invoice_id) is int and isinstance(nonce, str)):
        return None
    link = session.get(InvoiceLink, link_id)
    # a link of another invoice, or a row whose nonce differs (re-created id), is the same as no link at all
    if link is None or link.invoice_id != invoice_id or not hmac.compare_digest(link.nonce, nonce):
        return None
    return link if link.contact is not None else None  # the contact was deleted (its links go with it)


def _facts(link: InvoiceLink) -> rules.LinkFacts:
    return rules.LinkFacts(
        expires_at=link.expires_at,
        revoked=link.revoked_at is not None,
        replaced=link.replaced_by_id is not None,
        contact_at_client=link.contact.client_id == link.invoice.client_id,
        contact_has_access=link.contact.portal_access,
        invoice_status=link.invoice.status,
    )


def link_state(link: InvoiceLink) -> str:
    return rules.link_state(_facts(link), now())


# --- sending -----------------------------------------------------------------------------------------------------

def send_invoice(
    session: Session,
    invoice: Invoice,
    *,
    contacts: Sequence[Contact] | None = None,
    actor: StaffUser | None = None,
    kind: str = rules.INVOICE,
    requested_via: InvoiceLink | None = None,
) -> list[InvoiceDelivery]:
    """Email the invoice to each contact (default: the client's billing contacts with portal access), each with
    their own link and the invoice PDF attached. ``kind="invoice"`` replaces the contacts' earlier links (the old
    emails' links stop working); a reminder or a fresh link reuses a contact's live link."""
    _lock(session, invoice)
    rules.check_sendable(invoice.status, kind)
    recipients = _recipients(session, invoice, contacts)
    pdf = _invoice_pdf(session, invoice)  # before any row is written: a rendering error leaves nothing half-done
    at = now()
    deliveries = []
    for contact in recipients:
        link = _new_link(session, invoice, contact, at) if kind == rules.INVOICE else _live_or_new_link(
            session, invoice, contact, at)
        deliveries.append(_new_delivery(session, invoice, contact, link, kind, actor, at, requested_via))
    session.commit()
    for delivery in deliveries:
        _deliver(session, delivery, pdf)
    return deliveries


def send_reminder(session: Session, invoice: Invoice, *, contacts: Sequence[Contact] | None = None,
                  actor: StaffUser | None = None) -> list[InvoiceDelivery]:
    """For the collections work: the same path, the reminder template, and the contacts' links kept."""
    return send_invoice(session, invoice, contacts=contacts, actor=actor, kind=rules.REMINDER)


def retry_delivery(session: Session, delivery: InvoiceDelivery, *, actor: StaffUser | None) -> InvoiceDelivery:
    """Send a failed email again, to the same contact, with the same link while it is still live."""
    invoice = _lock(session, delivery.invoice)
    already = session.scalar(select(InvoiceDelivery.id).where(InvoiceDelivery.retry_of_id == delivery.id))
    rules.check_retryable(delivery.status, delivery.created_at, already is not None, _superseded(delivery), now())
    rules.check_sendable(invoice.status, delivery.kind)
    contact = delivery.contact
    if contact is None or not _eligible(contact, invoice):
        raise DomainError("That contact no longer has portal access at this client; send the invoice instead.")
    pdf = _invoice_pdf(session, invoice)
    at = now()
    link = delivery.link
    if link is None or link_state(link) != rules.ACTIVE:
        link = _new_link(session, invoice, contact, at)
    retry = _new_delivery(session, invoice, contact, link, delivery.kind, actor, at, delivery.requested_via_link_id)
    retry.retry_of_id = delivery.id
    session.commit()
    _deliver(session, retry, pdf)
    return retry


@dataclass
class BulkResult:
    sent: list[str] = field(default_factory=list)  # invoice numbers every email of which was accepted
    failed: list[tuple[str, str]] = field(default_factory=list)  # (invoice number or id, why)


def send_many(session: Session, invoice_ids: Iterable[int], *, actor: StaffUser | None) -> BulkResult:
    """Bulk send from the invoice list. Each invoice is its own transaction: one bad invoice stops no other."""
    result = BulkResult()
    for invoice_id in dict.fromkeys(invoice_ids):
        invoice = session.get(Invoice, invoice_id)
        if invoice is None:
            result.failed.append((f"#{invoice_id}", "No such invoice."))
            continue
        try:
            deliveries = send_invoice(session, invoice, actor=actor)
        except DomainError as e:
            session.rollback()
            result.failed.append((invoice.number, str(e)))
            continue
        failed = [d for d in deliveries if d.status != "accepted"]
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


def _new_link(session: Session, invoice: Invoice, contact: Contact, at: datetime) -> InvoiceLink:
    """A fresh link for the contact; every earlier link of theirs to this invoice now points at it and is dead."""
    days = int(current_app.config["INVOICE_LINK_DAYS_AFTER_DUE"])
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


def _live_or_new_link(session: Session, invoice: Invoice, contact: Contact, at: datetime) -> InvoiceLink:
    live = session.scalars(
        select(InvoiceLink)
        .where(InvoiceLink.invoice_id == invoice.id, InvoiceLink.contact_id == contact.id,
               InvoiceLink.revoked_at.is_(None), InvoiceLink.replaced_by_id.is_(None), InvoiceLink.expires_at > at)
        .order_by(InvoiceLink.id.desc())
    ).first()
    return live or _new_link(session, invoice, contact, at)


def _new_delivery(session: Session, invoice: Invoice, contact: Contact, link: InvoiceLink, kind: str,
                  actor: StaffUser | None, at: datetime, requested_via: InvoiceLink | int | None,
                  ) -> InvoiceDelivery:
    via_id = requested_via.id if isinstance(requested_via, InvoiceLink) else requested_via
    delivery = InvoiceDelivery(
        invoice_id=invoice.id, contact_id=contact.id, link_id=link.id, kind=kind, to_email=contact.email,
        to_name=contact.name, status="sending", created_at=at, sent_by_id=actor.id if actor else None,
        requested_via_link_id=via_id, transport="", message_id="", error="",
    )
    session.add(delivery)
    session.flush()
    return delivery


def _invoice_pdf(session: Session, invoice: Invoice) -> bytes:
    from .documents import invoice_pdf  # the same document as on the portal and the magic-link page

    return invoice_pdf(session, invoice)


def _deliver(session: Session, delivery: InvoiceDelivery, pdf: bytes) -> None:
    invoice = delivery.invoice
    try:
        result = email.send(
            to=[delivery.to_email],
            subject=subject_for(session, invoice, delivery.kind),
            template=TEMPLATES[delivery.kind],
            context=email_context(session, invoice, delivery),
            attachments=[email.Attachment(f"{invoice.number}.pdf", pdf)],
        )
        ok, error, transport, message_id = result.ok, result.error, result.transport, result.message_id
    except Exception as e:  # a bug in rendering must still leave the delivery on record as failed, not "sending"
        log.exception("email for invoice %s failed before reaching the mail server", invoice.number)
        ok, error, transport, message_id = False, f"{type(e).__name__}: {e}", "", ""
    delivery.status = "accepted" if ok else "failed"
    delivery.error = error[:2000]
    delivery.transport = transport
    delivery.message_id = message_id or ""
    delivery.finished_at = now()
    who = f"{delivery.to_name} <{delivery.to_email}>" if delivery.to_name else delivery.to_email
    what = {rules.INVOICE: "Invoice", rules.REMINDER: "Reminder", rules.FRESH_LINK: "Fresh link"}[delivery.kind]
    if ok:
        where = "written to the outbox" if transport == "outbox" else "accepted by the mail server"
        _event(session, invoice, "sent", f"{what} emailed to {who} ({where}).", delivery=delivery)
    else:
        _event(session, invoice, "send_failed", f"{what} email to {who} failed: {delivery.error}", delivery=delivery)
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
    if invoice.status == "paid":
        return f"Invoice {invoice.number} from {msp} (paid)"
    return f"Invoice {invoice.number} from {msp}: {balance} due {due}"


def email_context(session: Session, invoice: Invoice, delivery: InvoiceDelivery) -> dict:
    paid = ledger.paid_cents(session, [invoice.id])[invoice.id]
    return {
        "kind": delivery.kind,
        "invoice": invoice,
        "client": invoice.client,
        "contact_name": delivery.to_name,
        "link_url": link_url(delivery.link) if delivery.link else "",
        "link_expires_at": delivery.link.expires_at if delivery.link else None,
        "paid_cents": paid,
        "balance_cents": ledger.balance_of(session, invoice),
        "overdue": invoice.status == "open" and invoice.due_date < today(),
        "msp": get_settings(session),
    }


# --- opens, revocation, fresh links ------------------------------------------------------------------------------

def record_open(session: Session, link: InvoiceLink, *, method: str, user_agent: str | None,
                by_staff: bool = False) -> bool:
    """Count a person opening the invoice. A HEAD request, a link scanner or staff previewing it does not count."""
    if by_staff or not rules.counts_as_open(method, user_agent):
        return False
    at = now()
    first = link.first_opened_at is None
    # one UPDATE with arithmetic in SQL: two tabs opened at once must both count
    session.execute(
        update(InvoiceLink)
        .where(InvoiceLink.id == link.id)
        .values(open_count=InvoiceLink.open_count + 1, last_opened_at=at,
                first_opened_at=func.coalesce(InvoiceLink.first_opened_at, at))
        .execution_options(synchronize_session=False)
    )
    if first:
        _event(session, link.invoice, "opened", f"Opened by {_who(link.contact)} for the first time.", link=link)
    session.commit()
    session.expire(link, ["open_count", "first_opened_at", "last_opened_at"])
    return True


def revoke_link(session: Session, link: InvoiceLink, *, actor: StaffUser | None) -> None:
    if link.revoked_at is not None:
        raise DomainError("That link is already revoked.")
    link.revoked_at, link.revoked_by_id = now(), actor.id if actor else None
    _event(session, link.invoice, "link_revoked", f"Link of {_who(link.contact)} revoked.", link=link, actor=actor)
    session.commit()


def sign_out_everywhere(session: Session, contact: Contact, *, actor: StaffUser | None) -> int:
    """Revoke every link the contact holds, to any invoice, and end their portal sessions. Returns links revoked."""
    live = session.scalars(
        select(InvoiceLink)
        .where(InvoiceLink.contact_id == contact.id, InvoiceLink.revoked_at.is_(None),
               InvoiceLink.replaced_by_id.is_(None))
        .order_by(InvoiceLink.id)
    ).all()
    at = now()
    for link in live:
        link.revoked_at, link.revoked_by_id = at, actor.id if actor else None
        _event(session, link.invoice, "link_revoked",
               f"{_who(contact)} signed out everywhere: link revoked.", link=link, actor=actor)
    contact.session_epoch += 1
    session.commit()
    return len(live)


def request_fresh_link(session: Session, token: str) -> str:
    """A visitor holding a dead link asks for a new one. It goes only to the link's contact, at the address on
    file, at most FRESH_LINKS_PER_LINK times a day per link. Returns what happened ("sent", "limited",
    "ignored") for logs and tests; the visitor is always told the same thing."""
    link = _link_for_token(session, token)
    if link is None:
        return "ignored"
    state = link_state(link)
    if state in (rules.NO_ACCESS, rules.VOID):
        return "ignored"
    earlier = session.scalars(
        select(InvoiceDelivery.created_at).where(InvoiceDelivery.requested_via_link_id == link.id)
    ).all()
    if not rules.fresh_link_allowed(earlier, now()):
        return "limited"
    _event(session, link.invoice, "fresh_link_requested",
           f"A fresh link was requested from a {state} link of {_who(link.contact)}.", link=link)
    try:
        send_invoice(session, link.invoice, contacts=[link.contact], kind=rules.FRESH_LINK, requested_via=link)
    except DomainError:
        session.rollback()
        return "ignored"
    return "sent"


# --- what admins see ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LinkRow:
    link: InvoiceLink
    state: str


@dataclass(frozen=True)
class DeliveryRow:
    delivery: InvoiceDelivery
    retryable: bool


@dataclass(frozen=True)
class DeliveryOverview:
    invoice: Invoice
    links: list[LinkRow]
    deliveries: list[DeliveryRow]
    events: list[InvoiceEvent]
    contacts: list[Contact]  # who the invoice can be sent to (portal access); billing ones are preselected

    @property
    def last_sent_at(self) -> datetime | None:
        return max((r.delivery.finished_at for r in self.deliveries
                    if r.delivery.status == "accepted" and r.delivery.finished_at), default=None)

    @property
    def sendable(self) -> bool:
        return self.invoice.status in ("open", "paid")


def overview(session: Session, invoice: Invoice) -> DeliveryOverview:
    links = session.scalars(
        select(InvoiceLink).where(InvoiceLink.invoice_id == invoice.id).order_by(InvoiceLink.id.desc())
    ).all()
    deliveries = session.scalars(
        select(InvoiceDelivery).where(InvoiceDelivery.invoice_id == invoice.id).order_by(InvoiceDelivery.id.desc())
    ).all()
    retried = {d.retry_of_id for d in deliveries if d.retry_of_id}
    events = session.scalars(
        select(InvoiceEvent).where(InvoiceEvent.invoice_id == invoice.id)
        .order_by(InvoiceEvent.at.desc(), InvoiceEvent.id.desc())
    ).all()
    contacts = session.scalars(
        select(Contact).where(Contact.client_id == invoice.client_id, Contact.portal_access.is_(True))
        .order_by(Contact.id)
    ).all()
    at = now()
    return DeliveryOverview(
        invoice=invoice,
        links=[LinkRow(link, rules.link_state(_facts(link), at)) for link in links],
        deliveries=[DeliveryRow(d, _retryable(d, d.id in retried, at)) for d in deliveries],
        events=list(events),
        contacts=list(contacts),
    )


def _retryable(delivery: InvoiceDelivery, retried: bool, at: datetime) -> bool:
    try:
        rules.check_retryable(delivery.status, delivery.created_at, retried, _superseded(delivery), at)
    except DomainError:
        return False
    return True


def _superseded(delivery: InvoiceDelivery) -> bool:
    return delivery.link is not None and delivery.link.replaced_by_id is not None


def unsent_open_invoices(session: Session, *, limit: int = 200, include_sent: bool = False) -> list[Invoice]:
    """For bulk send: open invoices (oldest first), by default only those never emailed successfully."""
    query = select(Invoice).where(Invoice.status == "open").order_by(Invoice.issue_date, Invoice.id).limit(limit)
    if not include_sent:
        sent = select(InvoiceDelivery.invoice_id).where(InvoiceDelivery.status == "accepted",
                                                        InvoiceDelivery.kind == rules.INVOICE)
        query = query.where(Invoice.id.not_in(sent))
    return list(session.scalars(query))


def get_invoice(session: Session, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound()
    return invoice


def get_delivery(session: Session, delivery_id: int) -> InvoiceDelivery:
    delivery = session.get(InvoiceDelivery, delivery_id)
    if delivery is None:
        raise NotFound()
    return delivery


def get_link(session: Session, link_id: int) -> InvoiceLink:
    link = session.get(InvoiceLink, link_id)
    if link is None:
        raise NotFound()
    return link


def get_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound()
    return contact


def contacts_by_id(session: Session, ids: Iterable[int]) -> list[Contact]:
    ids = list(ids)
    found = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))} if ids else {}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound()
    return [found[i] for i in ids]


def _who(contact: Contact | None) -> str:
    return f"{contact.name} <{contact.email}>" if contact else "a removed contact"


def _event(session: Session, invoice: Invoice, kind: str, detail: str, *, delivery: InvoiceDelivery | None = None,
           link: InvoiceLink | None = None, actor: StaffUser | None = None) -> None:
    contact_id = delivery.contact_id if delivery else (link.contact_id if link else None)
    session.add(InvoiceEvent(
        invoice_id=invoice.id, at=now(), kind=kind, detail=detail, contact_id=contact_id,
        delivery_id=delivery.id if delivery else None, link_id=link.id if link else (delivery.link_id if delivery
                                                                                       else None),
        actor_id=actor.id if actor else None,
    ))


__all__ = [
    "UNKNOWN", "BulkResult", "DeliveryOverview", "LinkAccess", "link_state", "link_token", "link_url",
    "overview", "record_open", "request_fresh_link", "resolve_link", "retry_delivery", "revoke_link",
    "send_invoice", "send_many", "send_reminder", "sign_out_everywhere", "unsent_open_invoices",
]
