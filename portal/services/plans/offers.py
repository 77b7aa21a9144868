"""Plan offers, the read side and the arithmetic: which invoices may go on a plan, the schedule a set of choices
makes (the live preview, and the figures an offer stores), and the offers and threads a page shows.

Writing an offer and answering one is in negotiation.py; signing one is in acceptance.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import ScalarSelect, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from portal.clock import today
from portal.domain import plans as P
from portal.domain import schedules as S
from portal.domain.errors import DomainError
from portal.domain.invoices import InvoiceStatus
from portal.domain.money import format_money
from portal.domain.payments import GATEWAY_MINIMUM_CENTS
from portal.domain.plan_offers import Proposer
from portal.domain.plans import OfferStatus
from portal.models import Invoice, PaymentPlan, PlanEvent, PlanInvoice, PlanOffer, PlanOfferInvoice

from ..errors import NotFound
from ..payments import checkout
from .policy import current_rules


@dataclass(frozen=True)
class Choice:
    """What the person chose on the offer form (every field optional until checked)."""

    invoice_ids: tuple[int, ...] = ()
    all_overdue: bool = False
    down_payment_cents: int | None = None
    down_payment_percent: Decimal | None = None
    pay_now_invoice_id: int | None = None
    installments: int | None = None
    installment_cents: int | None = None
    frequency: str = S.Frequency.MONTHLY
    custom_dates: tuple[date, ...] = ()
    first_due_on: date | None = None
    apr_percent: Decimal = Decimal(0)
    as_note: bool = False


@dataclass(frozen=True)
class Covered:
    invoice: Invoice
    balance_cents: int  # what it owes now, less any payment still on its way


@dataclass(frozen=True)
class Draft:
    """A checked set of choices and the schedule it makes. ``outside_policy``: for a client's proposal, the limit it
    goes beyond (a proposal may: it is a request); empty when it fits."""

    client_id: int
    currency: str
    covered: tuple[Covered, ...]
    pay_now_invoice_id: int | None
    schedule: S.Schedule
    as_note: bool
    outside_policy: str = ""

    @property
    def terms(self) -> S.PlanTerms:
        return self.schedule.terms

    @property
    def balance_cents(self) -> int:
        return self.terms.balance_cents


# ---------------------------------------------------------------------------------------------------- availability

def busy_invoices(session: Session, client_id: int, *, thread_id: int | None = None,
                  renegotiates_plan_id: int | None = None) -> dict[int, str]:
    """Invoice id -> why it cannot go on a new offer: already on a current plan (except the plan being
    renegotiated), or in another open offer thread of this client."""
    busy: dict[int, str] = {}
    for invoice_id, plan_id, reference, number in session.execute(_ON_PLANS, {"client_id": client_id}):
        if plan_id != renegotiates_plan_id:
            busy[invoice_id] = f"Invoice {number} is already on plan {reference}."
    for invoice_id, offer_thread, number in session.execute(_IN_OFFERS, {"client_id": client_id}):
        if offer_thread != thread_id:
            busy.setdefault(invoice_id, f"Invoice {number} is already in an open plan offer; answer or withdraw "
                                        "that offer first.")
    return busy


# Built once: the portal's home asks for an overdue client, and the plan pages on every view.
_ON_PLANS = (select(PlanInvoice.invoice_id, PaymentPlan.id, PaymentPlan.reference, Invoice.number)
             .join(PaymentPlan, PaymentPlan.id == PlanInvoice.plan_id)
             .join(Invoice, Invoice.id == PlanInvoice.invoice_id)
             .where(PaymentPlan.client_id == bindparam("client_id"), PlanInvoice.current_key.is_not(None)))
_IN_OFFERS = (select(PlanOfferInvoice.invoice_id, PlanOffer.thread_id, Invoice.number)
              .join(PlanOffer, PlanOffer.id == PlanOfferInvoice.offer_id)
              .join(Invoice, Invoice.id == PlanOfferInvoice.invoice_id)
              .where(PlanOffer.client_id == bindparam("client_id"), PlanOffer.status == OfferStatus.OPEN))


def plannable(session: Session, client_id: int, *, thread_id: int | None = None,
              renegotiates_plan_id: int | None = None) -> list[Covered]:
    """The client's invoices that could go on a new offer now, oldest due first."""
    items = checkout.payable(session, client_id)
    busy = busy_invoices(session, client_id, thread_id=thread_id, renegotiates_plan_id=renegotiates_plan_id)
    invoices = _invoices(session, [i.invoice_id for i in items])
    return [Covered(invoices[i.invoice_id], i.balance_cents) for i in items if i.invoice_id not in busy]


def _invoices(session: Session, ids: list[int]) -> dict[int, Invoice]:
    if not ids:
        return {}
    return {i.id: i for i in session.scalars(_BY_ID, {"ids": ids})}


_BY_ID = select(Invoice).where(Invoice.id.in_(bindparam("ids", expanding=True)))  # built once


# ---------------------------------------------------------------------------------------------------- the draft

def draft(session: Session, client_id: int, choice: Choice, *, proposer: Proposer, thread_id: int | None = None,
          renegotiates_plan_id: int | None = None, lock: bool = False) -> Draft:
    """Check the choices and build the schedule. Refuses (DomainError, or NotFound for another client's invoice
    seen from the client's side) with a message naming the problem. ``lock``: inside a write transaction, lock
    the client's invoices first (locking.py's order)."""
    items = {i.invoice_id: i for i in checkout.payable(session, client_id, lock=lock)}
    busy = busy_invoices(session, client_id, thread_id=thread_id, renegotiates_plan_id=renegotiates_plan_id)
    on = today()
    if choice.all_overdue:
        overdue = [i for i in _invoices(session, list(items)).values() if i.due_date < on and i.id not in busy]
        if not overdue:
            raise DomainError("There are no overdue invoices that are not already on a plan or in an open offer.")
        ids = [i.id for i in sorted(overdue, key=lambda i: (i.due_date, i.id))]
    else:
        ids = list(dict.fromkeys(choice.invoice_ids))
    if not ids:
        raise DomainError("Choose at least one invoice for the plan.")
    covered = []
    for invoice_id in ids:
        invoice = session.get(Invoice, invoice_id)
        if invoice is None or invoice.client_id != client_id:
            if proposer != Proposer.MSP:
                raise NotFound()
            raise DomainError("That invoice belongs to another client.")
        if invoice.status != InvoiceStatus.OPEN:
            raise DomainError(f"Invoice {invoice.number} is {invoice.status}: only open invoices can go on a plan.")
        if invoice_id not in items:
            raise DomainError(f"Invoice {invoice.number} has nothing left to pay (or a payment on it is still "
                              "being processed).")
        if invoice_id in busy:
            raise DomainError(busy[invoice_id])
        covered.append(Covered(invoice, items[invoice_id].balance_cents))
    currencies = {c.invoice.currency for c in covered}
    if len(currencies) > 1:
        raise DomainError("Invoices in different currencies cannot share a plan.")
    currency = currencies.pop()
    balance = sum(c.balance_cents for c in covered)
    down = _down_payment(choice, balance)
    if 0 < down < GATEWAY_MINIMUM_CENTS:
        raise DomainError(f"A down payment must be at least {format_money(GATEWAY_MINIMUM_CENTS, currency)}, "
                          "or none at all.")
    pay_now = choice.pay_now_invoice_id
    if pay_now is not None:
        chosen = next((c for c in covered if c.invoice.id == pay_now), None)
        if chosen is None:
            raise DomainError("The invoice to pay now must be one of the invoices on the plan.")
        if down < chosen.balance_cents:
            raise DomainError(f"To pay invoice {chosen.invoice.number} now, the down payment must be at least its "
                              f"balance, {format_money(chosen.balance_cents, currency)}.")
    rules = current_rules(session)
    by_client = proposer != Proposer.MSP
    apr = rules.apr_percent if by_client else choice.apr_percent
    terms = S.PlanTerms(balance_cents=balance, down_payment_cents=down,
                        installments=_installments(choice, balance - down), frequency=_frequency(choice.frequency),
                        first_due_on=_first_due(choice), apr_percent=apr, custom_dates=tuple(choice.custom_dates))
    schedule = S.build_schedule(terms, start_on=on)
    outside = ""
    if proposer == Proposer.CLIENT:  # a request: may go beyond the policy, but the MSP sees where
        try:
            P.check_offer(terms, rules, by_client=True)
        except DomainError as e:
            outside = str(e)
    else:
        P.check_offer(terms, rules, by_client=by_client)
    return Draft(client_id, currency, tuple(covered), pay_now, schedule, choice.as_note and not by_client, outside)


def _down_payment(choice: Choice, balance: int) -> int:
    if choice.down_payment_percent is not None:
        return S.down_payment_for_percent(balance, choice.down_payment_percent)
    down = choice.down_payment_cents or 0
    if down < 0:
        raise DomainError("The down payment cannot be negative.")
    if down > balance:
        raise DomainError(f"The down payment cannot be more than the balance ({format_money(balance)}).")
    return down


def _installments(choice: Choice, principal: int) -> int:
    if choice.installment_cents is not None:
        if choice.installment_cents <= 0:
            raise DomainError("The installment amount must be more than zero.")
        return S.installments_for_amount(principal, choice.installment_cents)
    if choice.installments is None:
        raise DomainError("Enter the number of installments or the amount of each.")
    if choice.installments <= 0:
        raise DomainError("The number of installments must be at least 1.")
    return choice.installments


def _frequency(value: str) -> S.Frequency:
    try:
        return S.Frequency(value)
    except ValueError:
        raise DomainError("Choose how often the installments fall due.") from None


def _first_due(choice: Choice) -> date:
    if choice.frequency == S.Frequency.CUSTOM and choice.custom_dates:
        return choice.custom_dates[0]
    if choice.first_due_on is None:
        raise DomainError("Choose the first due date.")
    return choice.first_due_on


def choice_of(offer: PlanOffer) -> Choice:
    """The choices an offer stored (to approve a proposal as it is, or to pre-fill a counter)."""
    return Choice(invoice_ids=tuple(i.invoice_id for i in offer.invoices),
                  down_payment_cents=offer.down_payment_cents, pay_now_invoice_id=offer.pay_now_invoice_id,
                  installments=offer.installments, frequency=offer.frequency,
                  custom_dates=custom_dates(offer), first_due_on=offer.first_due_on,
                  apr_percent=Decimal(offer.apr_percent), as_note=offer.as_note)


def custom_dates(offer: PlanOffer) -> tuple[date, ...]:
    return tuple(date.fromisoformat(d) for d in offer.custom_dates.split(",") if d)


def terms_of(offer: PlanOffer) -> S.PlanTerms:
    return S.PlanTerms(balance_cents=offer.balance_cents, down_payment_cents=offer.down_payment_cents,
                       installments=offer.installments, frequency=S.Frequency(offer.frequency),
                       first_due_on=offer.first_due_on, apr_percent=Decimal(offer.apr_percent),
                       custom_dates=custom_dates(offer))


def schedule_of(offer: PlanOffer, *, start_on: date | None = None) -> S.Schedule:
    """The offer's schedule as it would be signed today (an expired first due date is refused)."""
    try:
        return S.build_schedule(terms_of(offer), start_on=start_on or today())
    except DomainError:
        if offer.first_due_on < (start_on or today()):
            raise DomainError("This offer's first due date has passed; please ask for a new offer.") from None
        raise


# ---------------------------------------------------------------------------------------------------- reading

def offer_for_client(session: Session, client_id: int, public_id: str) -> PlanOffer:
    """An offer the signed-in contact's client may see; anything else is NotFound (404)."""
    if not public_id or len(public_id) > 32:
        raise NotFound()
    offer = session.scalar(select(PlanOffer).where(PlanOffer.public_id == public_id,
                                                   PlanOffer.client_id == client_id))
    if offer is None:
        raise NotFound()
    return offer


def offer_for_staff(session: Session, offer_id: int) -> PlanOffer:
    offer = session.get(PlanOffer, offer_id)
    if offer is None:
        raise NotFound()
    return offer


def thread(session: Session, thread_id: int) -> list[PlanOffer]:
    return list(session.scalars(select(PlanOffer).where(PlanOffer.thread_id == thread_id).order_by(PlanOffer.id)))


def history(session: Session, thread_id: int) -> list[PlanEvent]:
    return list(session.scalars(select(PlanEvent).where(PlanEvent.thread_id == thread_id)
                                .order_by(PlanEvent.created_at, PlanEvent.id)))


def latest_in_threads(session: Session, client_id: int) -> list[PlanOffer]:
    """The newest offer of each of the client's threads, newest thread first."""
    return list(session.scalars(_LATEST_IN_THREADS, {"client_id": client_id}))


_LATEST_IN_THREADS = (select(PlanOffer).where(PlanOffer.id.in_(
    select(func.max(PlanOffer.id)).where(PlanOffer.client_id == bindparam("client_id")).group_by(PlanOffer.thread_id)
)).order_by(PlanOffer.id.desc()))


def open_offers(session: Session, client_id: int) -> list[PlanOffer]:
    return list(session.scalars(select(PlanOffer).where(PlanOffer.client_id == client_id,
                                                        PlanOffer.status == OfferStatus.OPEN)
                                .order_by(PlanOffer.id.desc())))


def plan_of(session: Session, offer: PlanOffer) -> PaymentPlan | None:
    """The plan an accepted offer started."""
    return session.scalar(select(PaymentPlan).where(PaymentPlan.offer_id == offer.id))


def all_open(session: Session) -> list[PlanOffer]:
    """Newest first, with their clients (the lists name each: one statement, not one per client)."""
    return list(session.scalars(select(PlanOffer).options(selectinload(PlanOffer.client))
                                .where(PlanOffer.status == OfferStatus.OPEN).order_by(PlanOffer.id.desc())))


def waiting_for_staff_expr() -> ScalarSelect[int]:
    """Open client proposals and counters: what the MSP has to answer (a count for the admin pages), as a column
    beside the signed-in staff user's row (staff.signed_in_staff), so it costs no round trip of its own."""
    return (select(func.count(PlanOffer.id))
            .where(PlanOffer.status == OfferStatus.OPEN, PlanOffer.proposed_by == Proposer.CLIENT).scalar_subquery())
