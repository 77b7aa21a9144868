"""Making and answering plan offers: the MSP's offer (emailed to the billing contact), the client's proposal or
self-service pick, counters from either side, approving a proposal, rejecting and withdrawing. Every step is a
PlanEvent on the thread, so the thread read in order is the negotiation's history.

Each function owns its transaction: begin_write, the client's invoices locked first (locking.py), then the offer
rows; a refusal changes nothing.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain.errors import DomainError
from portal.domain.money import format_money
from portal.domain.plan_offers import (
    OfferEvent,
    Proposer,
    check_client_may_answer,
    check_may_withdraw,
    check_staff_may_answer,
)
from portal.domain.plans import OfferStatus, PlanStatus
from portal.models import Client, Contact, PaymentPlan, PlanEvent, PlanOffer, PlanOfferInvoice, StaffUser

from .. import mail
from ..errors import NotFound
from ..locking import begin_write
from ..payments import checkout
from ..runtime import Runtime
from ..settings import get_settings
from . import offers
from .offers import Choice, Draft
from .policy import get_policy

MAX_MESSAGE = 2000


def _message(text: str) -> str:
    text = (text or "").strip()
    if len(text) > MAX_MESSAGE:
        raise DomainError(f"The message is too long ({MAX_MESSAGE} characters at most).")
    return text


def _row(draft: Draft, *, proposer: Proposer, staff: StaffUser | None, contact: Contact | None, message: str,
         parent: PlanOffer | None = None, renegotiates_plan_id: int | None = None) -> PlanOffer:
    terms = draft.terms
    at = now()
    return PlanOffer(
        public_id=secrets.token_urlsafe(18)[:24], client_id=draft.client_id,
        thread_id=parent.thread_id if parent else None, parent_id=parent.id if parent else None,
        renegotiates_plan_id=parent.renegotiates_plan_id if parent else renegotiates_plan_id,
        status=OfferStatus.OPEN, proposed_by=proposer, staff_id=staff.id if staff else None,
        contact_id=contact.id if contact else None, message=message, currency=draft.currency,
        balance_cents=terms.balance_cents, down_payment_cents=terms.down_payment_cents,
        pay_now_invoice_id=draft.pay_now_invoice_id, installments=terms.installments, frequency=terms.frequency,
        custom_dates=",".join(d.isoformat() for d in terms.custom_dates), first_due_on=terms.first_due_on,
        apr_percent=terms.apr_percent, as_note=draft.as_note, created_at=at, sent_at=at,
        invoices=[PlanOfferInvoice(invoice_id=c.invoice.id, balance_cents=c.balance_cents) for c in draft.covered],
    )


def _add(session: Session, offer: PlanOffer) -> PlanOffer:
    session.add(offer)
    session.flush()
    if offer.thread_id is None:
        offer.thread_id = offer.id
    return offer


def event(session: Session, offer: PlanOffer, kind: OfferEvent, detail: str, *, staff: StaffUser | None = None,
          contact: Contact | None = None, plan_id: int | None = None) -> PlanEvent:
    row = PlanEvent(client_id=offer.client_id, thread_id=offer.thread_id, plan_id=plan_id, kind=kind,
                    detail=detail[:4000], staff_id=staff.id if staff else None,
                    contact_id=contact.id if contact else None, created_at=now())
    session.add(row)
    return row


def summary(offer: PlanOffer) -> str:
    """'$1,200.00: $120.00 down, then 6 monthly payments from April 1, 2026 (0% APR)' for the history."""
    down = f"{format_money(offer.down_payment_cents, offer.currency)} down, then " if offer.down_payment_cents else ""
    apr = f"{offer.apr_percent.normalize():f}% APR"
    note = ", as a promissory note" if offer.as_note else ""
    return (f"{format_money(offer.balance_cents, offer.currency)}: {down}{offer.installments} payment"
            f"{'' if offer.installments == 1 else 's'} ({offer.frequency}) from "
            f"{offer.first_due_on.strftime('%B %-d, %Y')}, {apr}{note}")


def _locked_offer(session: Session, offer_id: int, client_id: int | None = None) -> PlanOffer:
    """Inside the write transaction: the client's invoices are locked first, then the offer row."""
    offer = session.get(PlanOffer, offer_id)
    if offer is None or (client_id is not None and offer.client_id != client_id):
        raise NotFound()
    checkout.payable(session, offer.client_id, lock=True)
    offer = session.scalar(select(PlanOffer).where(PlanOffer.id == offer_id).with_for_update()
                           .execution_options(populate_existing=True))
    assert offer is not None
    return offer


def _run(session: Session, work):
    begin_write(session)
    try:
        result = work()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result


# ---------------------------------------------------------------------------------------------------- the MSP

def make_offer(session: Session, rt: Runtime, client_id: int, choice: Choice, *, staff: StaffUser,
               message: str = "", renegotiates_plan_id: int | None = None) -> PlanOffer:
    """Send a new offer to the client (status open, its own thread) and email the billing contact a link."""
    message = _message(message)
    if session.get(Client, client_id) is None:
        raise NotFound()

    def work() -> PlanOffer:
        if renegotiates_plan_id is not None:
            _check_renegotiable(session, client_id, renegotiates_plan_id)
        found = offers.draft(session, client_id, choice, proposer=Proposer.MSP, lock=True,
                             renegotiates_plan_id=renegotiates_plan_id)
        offer = _add(session, _row(found, proposer=Proposer.MSP, staff=staff, contact=None, message=message,
                                   renegotiates_plan_id=renegotiates_plan_id))
        event(session, offer, OfferEvent.OFFERED, summary(offer), staff=staff)
        return offer

    offer = _run(session, work)
    notify_client(session, rt, offer, "offer")
    return offer


def _check_renegotiable(session: Session, client_id: int, plan_id: int) -> None:
    plan = session.get(PaymentPlan, plan_id)
    if plan is None or plan.client_id != client_id:
        raise NotFound()
    if plan.status != PlanStatus.CURRENT:
        raise DomainError(f"Plan {plan.reference} is {plan.status}; only a current plan can be renegotiated.")


def approve(session: Session, rt: Runtime, offer_id: int, *, staff: StaffUser, message: str = "") -> PlanOffer:
    """Agree to the client's proposal as it stands: it becomes an MSP offer in the same thread, which the client
    then signs (the client always signs what it agrees to)."""
    message = _message(message)

    def work() -> PlanOffer:
        proposal = _locked_offer(session, offer_id)
        check_staff_may_answer(proposal.status, proposal.proposed_by)
        found = offers.draft(session, proposal.client_id, offers.choice_of(proposal), proposer=Proposer.MSP,
                             thread_id=proposal.thread_id, renegotiates_plan_id=proposal.renegotiates_plan_id)
        offer = _add(session, _row(found, proposer=Proposer.MSP, staff=staff, contact=None, message=message,
                                   parent=proposal))
        proposal.status, proposal.decided_at = OfferStatus.COUNTERED, now()
        proposal.decision_note = "Approved: sent back for signature."
        event(session, offer, OfferEvent.APPROVED, summary(offer), staff=staff)
        return offer

    offer = _run(session, work)
    notify_client(session, rt, offer, "approved")
    return offer


# ---------------------------------------------------------------------------------------------------- the client

def propose(session: Session, rt: Runtime, contact: Contact, choice: Choice, *, message: str) -> PlanOffer:
    """The client asks for a plan of its own making (it may go beyond the policy: the MSP decides)."""
    message = _message(message)

    def work() -> PlanOffer:
        found = offers.draft(session, contact.client_id, choice, proposer=Proposer.CLIENT, lock=True)
        offer = _add(session, _row(found, proposer=Proposer.CLIENT, staff=None, contact=contact, message=message))
        detail = summary(offer) + (f". Outside the policy: {found.outside_policy}" if found.outside_policy else "")
        event(session, offer, OfferEvent.PROPOSED, detail, contact=contact)
        return offer

    offer = _run(session, work)
    notify_staff(session, rt, offer)
    return offer


def choose(session: Session, contact: Contact, choice: Choice) -> PlanOffer:
    """A self-service pick within the MSP's policy: an offer the client may sign at once. An earlier pick of the
    client's still open is withdrawn (the client changed its mind before signing)."""
    if not get_policy(session).self_service:
        raise DomainError("Payment plans are arranged with us directly; please propose a plan instead.")

    def work() -> PlanOffer:
        checkout.payable(session, contact.client_id, lock=True)
        for earlier in session.scalars(select(PlanOffer).where(PlanOffer.client_id == contact.client_id,
                                                               PlanOffer.status == OfferStatus.OPEN,
                                                               PlanOffer.proposed_by == Proposer.POLICY)):
            earlier.status, earlier.decided_at = OfferStatus.WITHDRAWN, now()
            earlier.decision_note = "Replaced by a new choice."
            event(session, earlier, OfferEvent.WITHDRAWN, "Replaced by a new choice.", contact=contact)
        session.flush()
        if not any(c.invoice.due_date < today() for c in offers.plannable(session, contact.client_id)):
            raise DomainError("Plans can be set up here for overdue invoices; please propose a plan instead.")
        found = offers.draft(session, contact.client_id, choice, proposer=Proposer.POLICY, lock=False)
        offer = _add(session, _row(found, proposer=Proposer.POLICY, staff=None, contact=contact, message=""))
        event(session, offer, OfferEvent.CHOSEN, summary(offer), contact=contact)
        return offer

    return _run(session, work)


# ---------------------------------------------------------------------------------------------------- either side

def counter(session: Session, rt: Runtime, offer_id: int, choice: Choice, *, staff: StaffUser | None = None,
            contact: Contact | None = None, message: str = "") -> PlanOffer:
    """A new offer in the same thread answering the open one, which becomes countered. Staff counter the client's
    proposals; the client counters the MSP's offers (its counter is a proposal again)."""
    message = _message(message)
    by_client = contact is not None

    def work() -> PlanOffer:
        previous = _locked_offer(session, offer_id, contact.client_id if contact else None)
        if by_client:
            check_client_may_answer(previous.status, previous.proposed_by)
        else:
            check_staff_may_answer(previous.status, previous.proposed_by)
        proposer = Proposer.CLIENT if by_client else Proposer.MSP
        found = offers.draft(session, previous.client_id, choice, proposer=proposer, thread_id=previous.thread_id,
                             renegotiates_plan_id=previous.renegotiates_plan_id)
        offer = _add(session, _row(found, proposer=proposer, staff=staff, contact=contact, message=message,
                                   parent=previous))
        previous.status, previous.decided_at = OfferStatus.COUNTERED, now()
        detail = summary(offer)
        if found.outside_policy:
            detail += f". Outside the policy: {found.outside_policy}"
        event(session, offer, OfferEvent.COUNTERED, detail, staff=staff, contact=contact)
        return offer

    offer = _run(session, work)
    if by_client:
        notify_staff(session, rt, offer)
    else:
        notify_client(session, rt, offer, "counter")
    return offer


def reject(session: Session, rt: Runtime, offer_id: int, *, staff: StaffUser | None = None,
           contact: Contact | None = None, reason: str = "") -> PlanOffer:
    """Turn down the other side's open offer. Staff must say why (the client reads it)."""
    reason = _message(reason)
    if staff is not None and not reason:
        raise DomainError("Say why the proposal is rejected: the client sees your reason.")

    def work() -> PlanOffer:
        offer = _locked_offer(session, offer_id, contact.client_id if contact else None)
        if contact is not None:
            check_client_may_answer(offer.status, offer.proposed_by)
        else:
            check_staff_may_answer(offer.status, offer.proposed_by)
        offer.status, offer.decided_at, offer.decision_note = OfferStatus.REJECTED, now(), reason
        event(session, offer, OfferEvent.REJECTED, reason, staff=staff, contact=contact)
        return offer

    offer = _run(session, work)
    if staff is not None:
        notify_client(session, rt, offer, "rejected")
    return offer


def withdraw(session: Session, offer_id: int, *, staff: StaffUser | None = None, contact: Contact | None = None,
             reason: str = "") -> PlanOffer:
    """Take back one's own open offer (staff may also withdraw a client's self-service pick)."""
    reason = _message(reason)

    def work() -> PlanOffer:
        offer = _locked_offer(session, offer_id, contact.client_id if contact else None)
        check_may_withdraw(offer.status, offer.proposed_by, by_client=contact is not None)
        offer.status, offer.decided_at, offer.decision_note = OfferStatus.WITHDRAWN, now(), reason
        event(session, offer, OfferEvent.WITHDRAWN, reason, staff=staff, contact=contact)
        return offer

    return _run(session, work)


# ---------------------------------------------------------------------------------------------------- email

SUBJECTS = {"offer": "A payment plan offer from {msp}", "counter": "{msp} answered your payment plan proposal",
            "approved": "{msp} approved your payment plan: please sign it",
            "rejected": "{msp} answered your payment plan proposal"}


def billing_contact(client: Client) -> Contact | None:
    return next((c for c in client.contacts if c.is_billing and c.portal_access), None) or \
        next((c for c in client.contacts if c.portal_access), None)


def notify_client(session: Session, rt: Runtime, offer: PlanOffer, what: str) -> bool:
    """Email the billing contact a link to the offer in the portal (signing in, if needed, by the usual emailed
    sign-in link, which brings the contact back to this page). Never raises for a delivery problem."""
    contact = billing_contact(offer.client)
    if contact is None:
        return False
    msp = get_settings(session)
    delivery = mail.send(session, rt, to=[contact.email], subject=SUBJECTS[what].format(msp=msp.name),
                         template="plan_offer",
                         context={"contact": contact, "client": offer.client, "msp": msp, "offer": offer, "what": what,
                                  "summary": summary(offer),
                                  "url": rt.url("plan_offers.client_offer", public_id=offer.public_id)})
    return delivery.ok


def notify_staff(session: Session, rt: Runtime, offer: PlanOffer) -> bool:
    """Tell the MSP (its billing address in Settings) that a client proposal is waiting for an answer."""
    msp = get_settings(session)
    if not msp.email:
        return False
    delivery = mail.send(session, rt, to=[msp.email],
                         subject=f"Payment plan proposal from {offer.client.legal_name}", template="plan_proposal",
                         context={"client": offer.client, "contact": offer.contact, "msp": msp, "offer": offer,
                                  "summary": summary(offer),
                                  "url": rt.url("plan_offers.admin_offer", offer_id=offer.id)})
    return delivery.ok
