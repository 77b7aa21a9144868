"""What admins see of an invoice's emails and links, and the lookups the admin pages need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now
from portal.domain import links as rules
from portal.domain.errors import DomainError
from portal.domain.invoices import ISSUED, InvoiceStatus
from portal.domain.links import DeliveryStatus
from portal.models import Contact, Invoice, InvoiceDelivery, InvoiceEvent, InvoiceLink

from ..errors import NotFound
from .sending import superseded
from .tokens import link_facts

Record = TypeVar("Record")


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
                    if r.delivery.status == DeliveryStatus.ACCEPTED and r.delivery.finished_at), default=None)

    @property
    def sendable(self) -> bool:
        return self.invoice.status in ISSUED


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
        links=[LinkRow(link, rules.link_state(link_facts(link), at)) for link in links],
        deliveries=[DeliveryRow(d, _retryable(d, d.id in retried, at)) for d in deliveries],
        events=list(events),
        contacts=list(contacts),
    )


def _retryable(delivery: InvoiceDelivery, retried: bool, at: datetime) -> bool:
    try:
        rules.check_retryable(delivery.status, delivery.created_at, retried, superseded(delivery), at)
    except DomainError:
        return False
    return True


def unsent_open_invoices(session: Session, *, limit: int = 200, include_sent: bool = False) -> list[Invoice]:
    """For bulk send: open invoices (oldest first), by default only those never emailed successfully, with their
    clients (the list names each: one statement for all of them, not one per client)."""
    query = (select(Invoice).options(selectinload(Invoice.client)).where(Invoice.status == InvoiceStatus.OPEN)
             .order_by(Invoice.issue_date, Invoice.id).limit(limit))
    if not include_sent:
        sent = select(InvoiceDelivery.invoice_id).where(InvoiceDelivery.status == DeliveryStatus.ACCEPTED,
                                                        InvoiceDelivery.kind == rules.INVOICE)
        query = query.where(Invoice.id.not_in(sent))
    return list(session.scalars(query))


def get_invoice(session: Session, invoice_id: int) -> Invoice:
    return _get(session, Invoice, invoice_id)


def get_delivery(session: Session, delivery_id: int) -> InvoiceDelivery:
    return _get(session, InvoiceDelivery, delivery_id)


def get_link(session: Session, link_id: int) -> InvoiceLink:
    return _get(session, InvoiceLink, link_id)


def get_contact(session: Session, contact_id: int) -> Contact:
    return _get(session, Contact, contact_id)


def _get(session: Session, model: type[Record], record_id: int) -> Record:
    record = session.get(model, record_id)
    if record is None:
        raise NotFound()
    return record


def contacts_by_id(session: Session, ids: Iterable[int]) -> list[Contact]:
    ids = list(ids)
    found = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(ids)))} if ids else {}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound()
    return [found[i] for i in ids]
