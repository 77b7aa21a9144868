"""Accepting a plan offer = signing its plan agreement (or promissory note), and the plan's end by the MSP.

Acceptance is one transaction under begin_write, locks in locking.py's order (the client's invoices, then the
offer): the offer must still be open and its thread unaccepted (``accept_key`` is unique, so a second tab fails at
the database even if both passed the check), what the covered invoices owe must be what the offer says (else the
client asks for a new offer: a schedule is never silently recomputed under a signature), and no covered invoice may
be on another current plan (``PlanInvoice.current_key`` is unique). Then: the signed agreement (the same evidence
chain, PDF and verify page as every agreement), the plan with its installments copied from the signed schedule,
the down payment's payment request (pay-now invoice first, then oldest first), other open offers on these invoices
superseded, and a renegotiated plan superseded. The signed copy is emailed after the commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import payments as pay_rules
from portal.domain import plan_agreements as PA
from portal.domain import plans as P
from portal.domain.errors import DomainError
from portal.domain.plan_offers import OfferEvent, check_client_may_accept
from portal.domain.plans import OfferStatus, PlanStatus
from portal.models import (
    Agreement,
    Client,
    Contact,
    Installment,
    PaymentPlan,
    PaymentRequest,
    PaymentRequestItem,
    PlanEvent,
    PlanInvoice,
    PlanOffer,
    PlanOfferInvoice,
    SavedPaymentMethod,
    StaffUser,
)

from .. import terms as terms_service
from ..agreements import rendered
from ..agreements.chain import Meta
from ..errors import NotFound
from ..locking import begin_write
from ..payments import checkout
from ..runtime import Runtime
from ..settings import get_settings
from . import offers
from .negotiation import event
from .policy import get_policy
from .progress import COVERED

ALREADY_ACCEPTED = "This offer was already accepted."
BALANCES_CHANGED = "The balances changed since this offer was made; please ask for a new offer."


SignedBy = rendered.SignedBy  # what the signer gave, one shape for every rendered document


@dataclass(frozen=True)
class Accepted:
    plan: PaymentPlan
    agreement: Agreement
    down_payment: PaymentRequest | None


def saved_method(session: Session, client_id: int) -> SavedPaymentMethod | None:
    """The method installments would be charged to: the client's active autopay default, else any active one."""
    from ..autopay import methods

    active = [m for m in methods.methods_of(session, client_id) if m.status == methods.ACTIVE]
    return next((m for m in active if m.is_default), None) or (active[0] if active else None)


def document(session: Session, rt: Runtime, offer: PlanOffer) -> rendered.Document:
    """The plan agreement (or note) the client is shown for this offer today."""
    from ..autopay import methods

    schedule = offers.schedule_of(offer)
    msp = get_settings(session)
    client = offer.client
    method = saved_method(session, client.id)
    rows = [PA.ScheduleLine(r.number, r.due_on, r.amount_cents, r.principal_cents, r.interest_cents,
                            r.balance_after_cents) for r in schedule.rows]
    covered = [PA.CoveredLine(i.invoice.number, i.invoice.due_date, i.balance_cents) for i in offer.invoices]
    version = rendered.current_version(session, PA.kind_for(offer.as_note))
    variables = PA.merge_variables(
        msp_legal_name=msp.legal_name or msp.name, msp_email=msp.reply_to or msp.email,
        client_legal_name=client.legal_name, currency=offer.currency, covered=covered,
        balance_cents=offer.balance_cents, down_payment_cents=offer.down_payment_cents,
        pay_now_number=offer.pay_now_invoice.number if offer.pay_now_invoice else None,
        frequency=schedule.terms.frequency.label, rows=rows, apr_percent=offer.apr_percent,
        grace_days=get_policy(session).grace_days, method=methods.label(method) if method else None,
        portal_url=rt.base_url + "/", effective_date=today(), as_note=offer.as_note)
    return rendered.render(version, variables)


def accept(session: Session, rt: Runtime, contact: Contact, public_id: str, signed: SignedBy, *,
           meta: Meta) -> Accepted:
    """Sign the offer's agreement and start the plan (see the module's docstring). Another client's offer is
    NotFound; every refusal changes nothing."""
    client_id = contact.client_id
    offer = offers.offer_for_client(session, client_id, public_id)
    check_client_may_accept(offer.status, offer.proposed_by)
    rendered.current_version(session, PA.kind_for(offer.as_note))  # publishes v1 outside the write lock
    terms_service.ensure_disclosure(session)  # likewise the E-SIGN disclosure (it commits when it publishes)
    offer_id, thread_id = offer.id, offer.thread_id
    begin_write(session)
    try:
        payable = {i.invoice_id: i.balance_cents for i in checkout.payable(session, client_id, lock=True)}
        offer = session.scalar(select(PlanOffer).where(PlanOffer.id == offer_id).with_for_update()
                               .execution_options(populate_existing=True))
        if offer is None or offer.client_id != client_id:
            raise NotFound()
        if _thread_accepted(session, thread_id):
            raise DomainError(ALREADY_ACCEPTED)
        check_client_may_accept(offer.status, offer.proposed_by)
        offer.accept_key = thread_id  # unique: of two tabs, the second flush fails
        try:
            session.flush()
        except IntegrityError:
            raise DomainError(ALREADY_ACCEPTED) from None
        for line in offer.invoices:
            if payable.get(line.invoice_id, 0) != line.balance_cents:
                raise DomainError(BALANCES_CHANGED)
        busy = offers.busy_invoices(session, client_id, thread_id=thread_id,
                                    renegotiates_plan_id=offer.renegotiates_plan_id)
        for line in offer.invoices:
            if line.invoice_id in busy and "already on plan" in busy[line.invoice_id]:
                raise DomainError(busy[line.invoice_id])
        client = session.get(Client, client_id)
        doc = document(session, rt, offer)
        if signed.shown_sha256 != doc.sha256:
            raise DomainError("The plan agreement changed since you opened it. Please read it again before signing.")
        agreement = rendered.sign_rendered(
            session, rt, client, contact, doc, shown_sha256=signed.shown_sha256, full_name=signed.full_name,
            title=signed.title, authority_confirmed=signed.authority_confirmed,
            consent_confirmed=signed.consent_confirmed, signature=signed.signature, meta=meta,
            data={"offer": offer.public_id, "balance_cents": offer.balance_cents,
                  "down_payment_cents": offer.down_payment_cents, "installments": offer.installments,
                  "apr_percent": str(offer.apr_percent), "as_note": offer.as_note})
        plan = _start_plan(session, offer, agreement, contact)
        request = _down_payment_request(session, offer, plan, contact)
        session.commit()
    except IntegrityError:  # current_key: an invoice went on another plan between our check and our insert
        session.rollback()
        raise DomainError("One of these invoices was just put on another plan; please ask for a new offer.") from None
    except BaseException:
        session.rollback()
        raise
    rendered.deliver_copy(session, rt, agreement, contact, meta)
    return Accepted(plan, agreement, request)


def _thread_accepted(session: Session, thread_id: int) -> bool:
    return session.scalar(select(PlanOffer.id).where(PlanOffer.thread_id == thread_id,
                                                     PlanOffer.status == OfferStatus.ACCEPTED).limit(1)) is not None


def _start_plan(session: Session, offer: PlanOffer, agreement: Agreement, contact: Contact) -> PaymentPlan:
    schedule = offers.schedule_of(offer)
    at = now()
    plan = PaymentPlan(
        reference="PLAN-" + secrets.token_hex(6), client_id=offer.client_id, offer_id=offer.id,
        agreement_id=agreement.id, status=PlanStatus.CURRENT, currency=offer.currency,
        balance_cents=offer.balance_cents, down_payment_cents=offer.down_payment_cents,
        principal_cents=schedule.principal_cents, apr_percent=offer.apr_percent,
        total_interest_cents=schedule.total_interest_cents, frequency=offer.frequency,
        grace_days=get_policy(session).grace_days, as_note=offer.as_note, accepted_at=at)
    session.add(plan)
    session.flush()
    plan.reference = f"PLAN-{plan.id:06d}"
    if offer.renegotiates_plan_id is not None:
        _supersede_plan(session, offer.renegotiates_plan_id, plan, contact)
    for line in offer.invoices:
        session.add(PlanInvoice(plan_id=plan.id, invoice_id=line.invoice_id, role=COVERED,
                                current_key=line.invoice_id))
    if offer.down_payment_cents:
        session.add(Installment(plan_id=plan.id, number=0, due_on=today(), amount_cents=offer.down_payment_cents,
                                principal_cents=offer.down_payment_cents, interest_cents=0,
                                balance_after_cents=schedule.principal_cents))
    for row in schedule.rows:
        session.add(Installment(plan_id=plan.id, number=row.number, due_on=row.due_on, amount_cents=row.amount_cents,
                                principal_cents=row.principal_cents, interest_cents=row.interest_cents,
                                balance_after_cents=row.balance_after_cents))
    offer.status, offer.decided_at = OfferStatus.ACCEPTED, at
    _supersede_other_offers(session, offer, contact)
    event(session, offer, OfferEvent.ACCEPTED, f"Signed as {agreement.reference}; plan {plan.reference} started.",
          contact=contact, plan_id=plan.id)
    session.flush()
    return plan


def _supersede_plan(session: Session, plan_id: int, new: PaymentPlan, contact: Contact) -> None:
    old = session.scalar(select(PaymentPlan).where(PaymentPlan.id == plan_id).with_for_update())
    if old is None or old.client_id != new.client_id or old.status != PlanStatus.CURRENT:
        raise DomainError("The plan this offer renegotiates is no longer current; please ask for a new offer.")
    # the old plan lets go of its invoices before the new one claims them (current_key is unique)
    session.execute(update(PlanInvoice).where(PlanInvoice.plan_id == old.id).values(current_key=None)
                    .execution_options(synchronize_session=False))
    old.status, old.superseded_by_id = PlanStatus.SUPERSEDED, new.id
    old.ended_reason = f"Renegotiated: replaced by {new.reference}, signed by {contact.name}."
    session.add(PlanEvent(client_id=old.client_id, plan_id=old.id, kind=OfferEvent.SUPERSEDED,
                          detail=f"Replaced by {new.reference}.", contact_id=contact.id, created_at=now()))


def _supersede_other_offers(session: Session, accepted: PlanOffer, contact: Contact) -> None:
    """Open offers of this client that cover any of the same invoices can no longer be accepted."""
    ids = [line.invoice_id for line in accepted.invoices]
    others = session.scalars(
        select(PlanOffer).join(PlanOfferInvoice, PlanOfferInvoice.offer_id == PlanOffer.id)
        .where(PlanOffer.client_id == accepted.client_id, PlanOffer.status == OfferStatus.OPEN,
               PlanOffer.id != accepted.id, PlanOfferInvoice.invoice_id.in_(ids)).distinct())
    for other in list(others):
        other.status, other.decided_at = OfferStatus.SUPERSEDED, now()
        other.decision_note = "Another plan for these invoices was signed."
        event(session, other, OfferEvent.SUPERSEDED, "Another plan for these invoices was signed.", contact=contact)


def _down_payment_request(session: Session, offer: PlanOffer, plan: PaymentPlan,
                          contact: Contact) -> PaymentRequest | None:
    """The checkout for the down payment, in the acceptance's transaction (the invoices are locked): allocated by
    the domain (pay-now invoice first, then oldest first) and checked like any checkout (never more than payable).
    The MSP's smallest part payment does not apply: the plan, not the client, chose the split."""
    if not offer.down_payment_cents:
        return None
    owed = [P.Owed(line.invoice_id, line.invoice.due_date, line.balance_cents) for line in offer.invoices]
    first = (offer.pay_now_invoice_id,) if offer.pay_now_invoice_id else ()
    shares = dict(P.allocate(offer.down_payment_cents, owed, first=first))
    items = checkout.payable(session, offer.client_id)
    chosen = pay_rules.choose_amounts(shares, items, partial_minimum_cents=0, currency=offer.currency)
    request = PaymentRequest(
        public_id=secrets.token_urlsafe(24), client_id=offer.client_id, contact_id=contact.id, currency=offer.currency,
        amount_cents=sum(chosen.values()), status=pay_rules.PaymentRequestStatus.OPEN, created_at=now(),
        items=[PaymentRequestItem(invoice_id=invoice_id, amount_cents=cents) for invoice_id, cents in chosen.items()])
    session.add(request)
    session.flush()
    plan.down_payment_request_id = request.id
    return request


# ---------------------------------------------------------------------------------------------------- ending a plan

def cancel_plan(session: Session, plan_id: int, *, staff: StaffUser, reason: str) -> PaymentPlan:
    """The MSP ends a current plan: its invoices leave the plan (normal collection rules apply again), open offers
    renegotiating it are superseded, and the timeline says who and why."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the plan is canceled.")
    if len(reason) > 2000:
        raise DomainError("The reason is too long (2,000 characters at most).")
    plan = session.get(PaymentPlan, plan_id)
    if plan is None:
        raise NotFound()
    client_id = plan.client_id
    begin_write(session)
    try:
        checkout.payable(session, client_id, lock=True)
        plan = session.scalar(select(PaymentPlan).where(PaymentPlan.id == plan_id).with_for_update()
                              .execution_options(populate_existing=True))
        assert plan is not None
        if plan.status != PlanStatus.CURRENT:
            raise DomainError(f"Plan {plan.reference} is {plan.status}; only a current plan can be canceled.")
        session.execute(update(PlanInvoice).where(PlanInvoice.plan_id == plan.id).values(current_key=None)
                        .execution_options(synchronize_session=False))
        at = now()
        plan.status, plan.canceled_at = PlanStatus.CANCELED, at
        plan.ended_reason = f"Canceled by {staff.name}: {reason}"
        checkout.withdraw(session, plan.down_payment_request_id)  # an unpaid down payment is no longer asked
        for offer in session.scalars(select(PlanOffer).where(PlanOffer.renegotiates_plan_id == plan.id,
                                                             PlanOffer.status == OfferStatus.OPEN)):
            offer.status, offer.decided_at = OfferStatus.SUPERSEDED, at
            offer.decision_note = f"Plan {plan.reference} was canceled."
            event(session, offer, OfferEvent.SUPERSEDED, offer.decision_note, staff=staff)
        session.add(PlanEvent(client_id=client_id, plan_id=plan.id, kind=OfferEvent.CANCELED, detail=reason,
                              staff_id=staff.id, created_at=at))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return plan
