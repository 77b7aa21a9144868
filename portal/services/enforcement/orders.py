"""Equipment orders and their deposits: the admin's deposit request for a quote, the client's acceptance (signing
the deposit agreement, which issues the deposit invoice and its payment request, paid at the usual checkout), and
"cleared to order" once the deposit has settled.

Cleared means settled money: the deposit invoice is paid, and an invoice is only paid by money that arrived (a
bank debit still processing leaves it open, see payments.results). ``clear_settled`` runs inside the booking that
pays the invoice (results.book), so a card payment clears the order at once and a bank debit clears it when it
settles; run-due's "orders cleared" step catches any other way the invoice got paid (a check recorded by staff,
client credit applied, a booking finished by reconciliation).

Locks, in locking.py's order: the client's invoices first (the credit check reads them), then the order row.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import now, today
from portal.domain import deposit_agreement as DA
from portal.domain import invoices as invoice_rules
from portal.domain import orders as rules
from portal.domain import payments as pay_rules
from portal.domain.errors import DomainError
from portal.domain.invoices import LineInput
from portal.domain.ledger import OpenItem
from portal.domain.notices import parse_variables
from portal.domain.orders import OrderItem, OrderStatus
from portal.domain.terms import DEFAULT_PARAMETERS
from portal.models import (
    Agreement,
    Client,
    Contact,
    EquipmentOrder,
    Invoice,
    PaymentRequest,
    PaymentRequestItem,
    StaffUser,
)

from .. import billing, ledger, mail
from .. import terms as terms_service
from ..agreements import rendered
from ..agreements.chain import Meta
from ..errors import NotFound
from ..locking import begin_write
from ..runtime import Runtime
from ..settings import get_settings
from . import credit, notices

ALREADY_ACCEPTED = "This deposit agreement was already accepted."
OPEN = (OrderStatus.REQUESTED, OrderStatus.ACCEPTED)


def items_of(order: EquipmentOrder) -> list[OrderItem]:
    return rules.items_from_dicts(json.loads(order.items or "[]"))


def billing_contact(client: Client) -> Contact | None:
    return next((c for c in client.contacts if c.is_billing and c.portal_access), None) or \
        next((c for c in client.contacts if c.portal_access), None)


# --- the admin's side -----------------------------------------------------------------------------------------------

def default_deposit_percent(session: Session, client_id: int) -> Decimal:
    """The deposit the client agreed to in the terms it signed last (the shipped terms' figure if it signed none)."""
    agreement = notices.signed_terms(session, client_id)
    variables = parse_variables(agreement.merged_variables) if agreement is not None else None
    raw = (variables or {}).get("equipment_deposit_percent") or DEFAULT_PARAMETERS["equipment_deposit_percent"]
    try:
        return Decimal(raw)
    except ArithmeticError:  # a signed value that is not a number: the shipped default
        return Decimal(DEFAULT_PARAMETERS["equipment_deposit_percent"])


def create_order(session: Session, rt: Runtime, client_id: int, *, items: list[OrderItem], deposit_percent: Decimal,
                 quote_reference: str = "", staff: StaffUser | None, minimum_deposit_cents: int | None = None,
                 send: bool = True) -> EquipmentOrder:
    """A deposit request for a quote. Refused, with nothing written, when the items or the deposit are not
    acceptable or the client's open A/R plus the order's total would go over its credit limit. The billing
    contact is emailed a portal link (after the commit; a refused email does not undo the order)."""
    items = rules.check_items(items)
    total = rules.order_total(items)
    deposit = rules.deposit_cents(total, deposit_percent, minimum_cents=minimum_deposit_cents)
    quote_reference = (quote_reference or "").strip()
    if len(quote_reference) > 100:
        raise DomainError("The quote reference is too long (100 characters at most).")
    if session.get(Client, client_id) is None:
        raise NotFound()
    currency = get_settings(session).currency
    begin_write(session)  # the credit check reads the invoices, then the order is written
    try:
        credit.check(session, client_id, total, lock=True)
        order = EquipmentOrder(
            reference="ORD-" + secrets.token_hex(6), public_id=secrets.token_urlsafe(18), client_id=client_id,
            quote_reference=quote_reference, items=json.dumps([i.as_dict() for i in items]), currency=currency,
            total_cents=total, deposit_percent=deposit_percent, deposit_cents=deposit,
            status=OrderStatus.REQUESTED, created_by_id=staff.id if staff else None, created_at=now())
        session.add(order)
        session.flush()
        order.reference = f"ORD-{order.id:06d}"
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if send:
        notify_client(session, rt, order)
    return order


def notify_client(session: Session, rt: Runtime, order: EquipmentOrder) -> bool:
    """Email the billing contact a link to the order in the portal. Never raises for a delivery problem."""
    contact = billing_contact(order.client)
    if contact is None:
        return False
    msp = get_settings(session)
    delivery = mail.send(session, rt, to=[contact.email],
                         subject=f"Deposit requested for your equipment order {order.reference}",
                         template="equipment_order",
                         context={"contact": contact, "client": order.client, "msp": msp, "order": order,
                                  "items": items_of(order),
                                  "url": rt.url("orders.show", public_id=order.public_id)})
    return delivery.ok


def cancel_order(session: Session, order_id: int, *, staff: StaffUser | None, reason: str) -> EquipmentOrder:
    """The MSP withdraws an order not yet cleared. An unpaid deposit invoice is voided with it; a deposit already
    paid (or on its way) must be refunded first, so the order is kept. The deposit's checkout is withdrawn."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the order is canceled.")
    if len(reason) > 500:
        raise DomainError("The reason is too long (500 characters at most).")
    order = session.get(EquipmentOrder, order_id)
    if order is None:
        raise NotFound()
    client_id = order.client_id
    begin_write(session)
    try:
        items = {i.invoice_id: i.balance_cents for i in _payable(session, client_id)}
        order = _lock_order(session, order_id)
        if order.status not in OPEN:
            raise DomainError(f"Order {order.reference} is {order.status}; only an order not yet cleared can be "
                              "canceled.")
        invoice = order.deposit_invoice
        if invoice is not None and invoice.status != invoice_rules.VOID:
            if items.get(invoice.id) != invoice.total_cents:
                raise DomainError(f"The deposit invoice {invoice.number} has money paid or on its way; refund it "
                                  "before canceling the order.")
            invoice_rules.check_void(invoice.status, ledger.paid_cents(session, [invoice.id])[invoice.id])
            invoice.status, invoice.voided_at = invoice_rules.VOID, now()
            invoice.void_reason = f"Order {order.reference} canceled: {reason}"
        order.status, order.canceled_at = OrderStatus.CANCELED, now()
        _withdraw_checkout(session, order.request_id)  # its deposit link now says so and charges nothing
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return order


def orders_of(session: Session, client_id: int) -> list[EquipmentOrder]:
    return list(session.scalars(_OF_CLIENT, {"client_id": client_id}))


_OF_CLIENT = (select(EquipmentOrder).where(EquipmentOrder.client_id == bindparam("client_id"))
              .order_by(EquipmentOrder.created_at.desc(), EquipmentOrder.id.desc()))


def all_orders(session: Session, *, status: str | None = None, limit: int = 200) -> list[EquipmentOrder]:
    query = (select(EquipmentOrder).options(selectinload(EquipmentOrder.client))  # the list names each client
             .order_by(EquipmentOrder.created_at.desc(), EquipmentOrder.id.desc()).limit(limit))
    if status:
        query = query.where(EquipmentOrder.status == status)
    return list(session.scalars(query))


def get_order(session: Session, order_id: int) -> EquipmentOrder:
    order = session.get(EquipmentOrder, order_id)
    if order is None:
        raise NotFound()
    return order


def order_for_client(session: Session, client_id: int, public_id: str) -> EquipmentOrder:
    """The client's own order by its public id; another client's (or none) is NotFound."""
    if not public_id or len(public_id) > 64:
        raise NotFound()
    order = session.scalar(select(EquipmentOrder).where(EquipmentOrder.public_id == public_id,
                                                        EquipmentOrder.client_id == client_id))
    if order is None:
        raise NotFound()
    return order


def is_cleared(order: EquipmentOrder) -> bool:
    return order.status == OrderStatus.CLEARED


# --- the client's side ----------------------------------------------------------------------------------------------

def document(session: Session, rt: Runtime, order: EquipmentOrder) -> rendered.Document:
    """The deposit agreement the client is shown for this order today."""
    msp = get_settings(session)
    version = rendered.current_version(session, DA.EQUIPMENT_DEPOSIT)
    variables = DA.merge_variables(
        msp_legal_name=msp.legal_name or msp.name, msp_email=msp.reply_to or msp.email,
        client_legal_name=order.client.legal_name, order_reference=order.reference,
        quote_reference=order.quote_reference, items=items_of(order), currency=order.currency,
        total_cents=order.total_cents, deposit_percent=order.deposit_percent, deposit_cents=order.deposit_cents,
        portal_url=rt.base_url + "/", effective_date=today())
    return rendered.render(version, variables)


SignedBy = rendered.SignedBy  # what the signer gave, one shape for every rendered document


@dataclass(frozen=True)
class Accepted:
    order: EquipmentOrder
    agreement: Agreement
    request: PaymentRequest


def accept(session: Session, rt: Runtime, contact: Contact, public_id: str, signed: SignedBy, *,
           meta: Meta) -> Accepted:
    """Sign the order's deposit agreement: the agreement, the deposit invoice (issued) and its payment request, in
    one transaction. Another client's order is NotFound; a second submit (another tab, a double click) finds the
    order accepted and is refused; every refusal changes nothing. The signed copy is emailed after the commit."""
    client_id = contact.client_id
    order = order_for_client(session, client_id, public_id)
    rendered.current_version(session, DA.EQUIPMENT_DEPOSIT)  # publishes v1 outside the write lock
    terms_service.ensure_disclosure(session)  # likewise the E-SIGN disclosure (it commits when it publishes)
    order_id = order.id
    begin_write(session)
    try:
        _payable(session, client_id)  # the client's invoices first (the lock order)
        order = _lock_order(session, order_id)
        if order.status != OrderStatus.REQUESTED:
            raise DomainError(ALREADY_ACCEPTED if order.status in (OrderStatus.ACCEPTED, OrderStatus.CLEARED)
                              else f"Order {order.reference} was canceled.")
        client = session.get(Client, client_id)
        doc = document(session, rt, order)
        agreement = rendered.sign_rendered(
            session, rt, client, contact, doc, shown_sha256=signed.shown_sha256, full_name=signed.full_name,
            title=signed.title, authority_confirmed=signed.authority_confirmed,
            consent_confirmed=signed.consent_confirmed, signature=signed.signature, meta=meta,
            data={"order": order.reference, "total_cents": order.total_cents, "deposit_cents": order.deposit_cents,
                  "deposit_percent": str(order.deposit_percent)})
        invoice = _deposit_invoice(session, client, order)
        request = _deposit_request(session, order, invoice, contact)
        order.status, order.accepted_at = OrderStatus.ACCEPTED, now()
        order.agreement_id, order.deposit_invoice_id, order.request_id = agreement.id, invoice.id, request.id
        session.commit()
    except BaseException:
        session.rollback()
        raise
    rendered.deliver_copy(session, rt, agreement, contact, meta)
    return Accepted(order, agreement, request)


def _deposit_invoice(session: Session, client: Client, order: EquipmentOrder) -> Invoice:
    # due on acceptance: the MSP orders nothing until it is paid, and the client is at the checkout right now
    on = today()
    return billing.create_invoice(
        session, client, lines=[LineInput(f"Deposit for equipment order {order.reference}", Decimal(1),
                                          order.deposit_cents, taxable=False)],
        issue_date=on, due_date=on, currency=order.currency, issue=True, source=rules.DEPOSIT_SOURCE, commit=False,
        memo=f"Deposit of {order.deposit_percent.normalize():f}% on equipment order {order.reference}"
             + (f" (quote {order.quote_reference})" if order.quote_reference else "") + ".")


def _deposit_request(session: Session, order: EquipmentOrder, invoice: Invoice, contact: Contact) -> PaymentRequest:
    # the checkout's own checks; the deposit is paid whole, so the MSP's smallest part payment does not apply
    chosen = pay_rules.choose_amounts({invoice.id: order.deposit_cents},
                                      [OpenItem(invoice.id, invoice.total_cents, invoice.number)],
                                      partial_minimum_cents=0, currency=order.currency)
    request = PaymentRequest(
        public_id=secrets.token_urlsafe(24), client_id=order.client_id, contact_id=contact.id,
        currency=order.currency, amount_cents=sum(chosen.values()), status=pay_rules.PaymentRequestStatus.OPEN,
        created_at=now(),
        items=[PaymentRequestItem(invoice_id=invoice_id, amount_cents=cents) for invoice_id, cents in chosen.items()])
    session.add(request)
    session.flush()
    return request


def deposit_request(session: Session, order: EquipmentOrder) -> PaymentRequest | None:
    """The payment request the client pays the deposit with, while the deposit is still to pay."""
    if order.status != OrderStatus.ACCEPTED or order.request is None:
        return None
    return order.request if order.request.status == pay_rules.PaymentRequestStatus.OPEN else None


# --- clearing -------------------------------------------------------------------------------------------------------

def clear_settled(session: Session, *, client_id: int) -> int:
    """Accepted orders of this client whose deposit invoice is paid become cleared. Inside the caller's write
    transaction (its invoices locked); the caller commits. Returns how many were cleared."""
    orders = session.scalars(
        select(EquipmentOrder).join(Invoice, Invoice.id == EquipmentOrder.deposit_invoice_id)
        .where(EquipmentOrder.client_id == client_id, EquipmentOrder.status == OrderStatus.ACCEPTED,
               Invoice.status == invoice_rules.PAID)
        .with_for_update(of=EquipmentOrder)).all()
    for order in orders:
        order.status, order.cleared_at = OrderStatus.CLEARED, now()
    return len(orders)


def clear_all_settled(session: Session) -> int:
    """run-due: every client with an accepted order whose deposit is paid, one write transaction per client."""
    clients = session.scalars(
        select(EquipmentOrder.client_id).join(Invoice, Invoice.id == EquipmentOrder.deposit_invoice_id)
        .where(EquipmentOrder.status == OrderStatus.ACCEPTED, Invoice.status == invoice_rules.PAID)
        .distinct()).all()
    session.commit()
    cleared = 0
    for client_id in clients:
        begin_write(session)
        try:
            _payable(session, client_id)  # the lock order: the client's invoices first
            cleared += clear_settled(session, client_id=client_id)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    return cleared


# --- helpers --------------------------------------------------------------------------------------------------------

def _payable(session: Session, client_id: int) -> list[OpenItem]:
    from ..payments import checkout

    return checkout.payable(session, client_id, lock=True)


def _withdraw_checkout(session: Session, request_id: int | None) -> None:
    from ..payments import checkout

    checkout.withdraw(session, request_id)


def _lock_order(session: Session, order_id: int) -> EquipmentOrder:
    order = session.scalar(select(EquipmentOrder).where(EquipmentOrder.id == order_id).with_for_update()
                           .execution_options(populate_existing=True))
    if order is None:
        raise NotFound()
    return order
