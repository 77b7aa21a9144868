"""Late fees: charged by `run-due` exactly as the client's signed payment terms say, and waived by the admin.

Which terms govern an invoice: the newest payment terms the client had signed on or before the invoice's issue
date (clause 11 of the shipped terms: invoices issued before a new version stay under the version signed); a
balance already owed when the client first signed is under that first signature (the client agreed that unpaid
balances incur the fee while they stay unpaid; only the current period is ever charged, never months before).
A client who never signed gets no late fee. The percent, grace days and the clause quoted come from that signed
agreement (its merged variables and signed document), never from today's draft.

Each period's fee is its own invoice. The fee row is claimed by its unique (late invoice, period) inside a
``begin_write`` transaction that also creates the fee invoice, so two `run-due` processes never charge a period
twice; a waived fee keeps its row, so a waived period is never charged again.

A waiver voids the fee invoice through billing's void. If money was already applied to it, the waiver first moves
that money back to the client's credit (reversal allocations, as "Unapply" does), so the client is never out of
pocket for a waived fee and the books still show what happened.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import and_, bindparam, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, selectinload, undefer

from portal.clock import now
from portal.domain import invoices as invoice_rules
from portal.domain import late_fees as rules
from portal.domain import terms as T
from portal.domain.dunning import PromiseStatus, promise_outcome
from portal.domain.errors import DomainError
from portal.domain.evidence import AgreementStatus
from portal.domain.invoices import LineInput
from portal.models import Agreement, Allocation, Invoice, LateFee, PaymentPromise, PlanInvoice, StaffUser

from .. import billing, ledger
from ..errors import NotFound
from ..keysets import among
from ..locking import begin_write
from ..payments.locks import lock_client_invoices
from . import promises

MAX_REASON = 2000


@dataclass
class FeeRun:
    charged: list[int] = field(default_factory=list)  # LateFee ids
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (late invoice id, why)


@dataclass(frozen=True)
class Governing:
    """The signed agreement an invoice is under, with what it says about late fees."""

    agreement_id: int
    reference: str
    signed_on: date
    terms: rules.FeeTerms
    clause: str


# --- which terms govern an invoice ---------------------------------------------------------------------------------

def _signed_terms(session: Session, client_ids: set[int] | None = None) -> dict[int, list[Agreement]]:
    """Each client's signed payment terms (current or since superseded), oldest signature first."""
    query = (select(Agreement).options(defer(Agreement.document_html), undefer(Agreement.document_text))
             .where(Agreement.kind == T.TERMS, Agreement.signed_at.is_not(None),
                    Agreement.status.in_((AgreementStatus.SIGNED, AgreementStatus.SUPERSEDED)))
             .order_by(Agreement.client_id, Agreement.signed_at, Agreement.id))
    if client_ids is not None:
        query = query.where(Agreement.client_id.in_(client_ids))
    by_client: dict[int, list[Agreement]] = defaultdict(list)
    for agreement in session.scalars(query):
        by_client[agreement.client_id].append(agreement)
    return by_client


def governing(agreements: list[Agreement], issue_date: date) -> Governing | None:
    """The newest of ``agreements`` (oldest first) signed on or before ``issue_date``, else the first one signed;
    None when none was signed or the one that governs provides no late fee."""
    signed = [a for a in agreements if a.signed_at is not None]
    if not signed:
        return None
    before = [a for a in signed if a.signed_at.date() <= issue_date]
    agreement = before[-1] if before else signed[0]
    terms = rules.terms_from_variables(json.loads(agreement.merged_variables or "{}"))
    clause = rules.late_fee_clause(agreement.document_text or "")
    if terms is None or not clause:
        return None
    return Governing(agreement.id, agreement.reference, agreement.signed_at.date(), terms, clause)


def governing_for(session: Session, invoice: Invoice) -> Governing | None:
    return governing(_signed_terms(session, {invoice.client_id}).get(invoice.client_id, []), invoice.issue_date)


# --- exemptions ----------------------------------------------------------------------------------------------------

def on_current_plan(session: Session, invoice_id: int) -> bool:
    return session.scalar(select(exists().where(PlanInvoice.current_key == invoice_id))) or False


def _promised(session: Session, invoice: Invoice, today: date) -> bool:
    """A kept promise covering the invoice, or an open one not yet due or already paid (the promises step, which
    runs after this one, will keep it): for the invoice itself, or for the client's past-due balance made once the
    invoice was past due (made after its due date, as promises.covering counts it)."""
    live = or_(PaymentPromise.status == PromiseStatus.KEPT, PaymentPromise.status == PromiseStatus.OPEN)
    covers = or_(PaymentPromise.invoice_id == invoice.id,
                 and_(PaymentPromise.invoice_id.is_(None),
                      PaymentPromise.created_at >= datetime.combine(invoice.due_date + timedelta(days=1), time(),
                                                                    UTC)))
    for found in session.scalars(select(PaymentPromise).where(PaymentPromise.client_id == invoice.client_id, live,
                                                              covers)):
        if found.status == PromiseStatus.KEPT or found.promised_on >= today:
            return True
        if promise_outcome(found.amount_cents, found.promised_on, promises.paid_since(session, found),
                           today) == PromiseStatus.KEPT:
            return True
    return False


def exemption(session: Session, invoice: Invoice, today: date) -> str:
    """Why the invoice is not charged a late fee today ('' when it may be)."""
    if invoice.source == rules.FEE_SOURCE:
        return "a late-fee invoice (fees never compound)"
    if invoice.status != invoice_rules.OPEN:
        return f"invoice is {invoice.status}"
    if ledger.balance_of(session, invoice) <= 0:
        return "nothing is owed"
    if on_current_plan(session, invoice.id):
        return "on a current payment plan"
    if _promised(session, invoice, today):
        return "covered by a promise to pay"
    return ""


# --- charging ------------------------------------------------------------------------------------------------------

def charge_late_fees(session: Session, today: date) -> FeeRun:
    """`run-due`: each late invoice of a client under signed terms gets its current period's fee, once."""
    run = FeeRun()
    signed = _signed_terms(session)
    if not signed:
        return run
    candidates = session.execute(
        select(Invoice.id, Invoice.client_id, Invoice.issue_date, Invoice.due_date)
        .where(Invoice.status == invoice_rules.OPEN, Invoice.source != rules.FEE_SOURCE, Invoice.due_date < today,
               Invoice.client_id.in_(signed.keys()), ~exists().where(PlanInvoice.current_key == Invoice.id))
        .order_by(Invoice.client_id, Invoice.due_date, Invoice.id)).all()
    charged = {(i, p) for i, p in session.execute(
        select(LateFee.late_invoice_id, LateFee.period)
        .where(among(session, LateFee.late_invoice_id, [c.id for c in candidates])))} if candidates else set()
    cache: dict[tuple[int, date], Governing | None] = {}
    due: list[tuple[int, int, Governing]] = []  # worked out before any write: a rollback expires what was read
    for invoice_id, client_id, issue_date, due_date in candidates:
        key = (client_id, issue_date)
        if key not in cache:
            cache[key] = governing(signed[client_id], issue_date)
        terms = cache[key]
        if terms is None:
            continue
        period = rules.current_period(due_date, terms.terms.grace_days, today)
        if period is not None and (invoice_id, period) not in charged:
            due.append((invoice_id, period, terms))
    for invoice_id, period, terms in due:
        fee_id, why = charge_period(session, invoice_id, period, terms, today)
        if fee_id is not None:
            run.charged.append(fee_id)
        elif why:
            run.skipped.append((invoice_id, why))
    return run


def charge_period(session: Session, invoice_id: int, period: int, terms: Governing,
                  today: date) -> tuple[int | None, str]:
    """Claim (invoice, period) and raise its fee invoice in one transaction. (fee id, '') or (None, why not)."""
    begin_write(session)
    invoice = session.get(Invoice, invoice_id, populate_existing=True)
    if invoice is None:
        session.rollback()
        return None, "no such invoice"
    lock_client_invoices(session, invoice.client_id)
    session.refresh(invoice)
    why = exemption(session, invoice, today)
    if not why and session.scalar(select(LateFee.id).where(LateFee.late_invoice_id == invoice.id,
                                                           LateFee.period == period)):
        why = "already charged for this period"
    basis = rules.fee_basis(ledger.balance_of(session, invoice), 0, compounding=terms.terms.compounding)
    amount = rules.fee_cents(basis, terms.terms.percent)
    if not why and amount <= 0:
        why = "the fee rounds to nothing"
    if why:
        session.rollback()
        return None, why
    label = rules.period_label(invoice.due_date, terms.terms.grace_days, period)
    fee = LateFee(client_id=invoice.client_id, late_invoice_id=invoice.id, agreement_id=terms.agreement_id,
                  period=period, period_start=rules.period_start(invoice.due_date, terms.terms.grace_days, period),
                  basis_cents=basis, percent=terms.terms.percent, amount_cents=amount, clause=terms.clause,
                  created_at=now(), waiver_reason="")
    session.add(fee)
    try:
        session.flush()  # the claim: a concurrent run that got here first makes this fail
    except IntegrityError:
        session.rollback()
        return None, "already charged for this period"
    fee_invoice = billing.create_invoice(  # numbered under the numbering lock: no clash with a concurrent run
        session, invoice.client, issue=True, commit=False, source=rules.FEE_SOURCE, currency=invoice.currency,
        issue_date=today, due_date=today,
        lines=[LineInput(rules.line_text(terms.terms.percent, basis, invoice.currency, invoice.number, label),
                         Decimal(1), amount, taxable=False)],
        memo=memo_for(invoice.number, terms))
    fee.fee_invoice_id = fee_invoice.id
    session.commit()
    return fee.id, ""


def memo_for(invoice_number: str, terms: Governing) -> str:
    return (f"Late fee on invoice {invoice_number}, as provided by the payment terms you signed on "
            f"{terms.signed_on.strftime('%b %-d, %Y')} (agreement {terms.reference}), section {terms.clause}")


# --- reading ------------------------------------------------------------------------------------------------------

def fee_for_invoice(session: Session, fee_invoice_id: int) -> LateFee | None:
    """The late fee an invoice charges, if it is a late-fee invoice."""
    return session.scalar(_FEE_OF_INVOICE, {"fee_invoice_id": fee_invoice_id})


# Built once: every view of an invoice asks.
_FEE_OF_INVOICE = select(LateFee).where(LateFee.fee_invoice_id == bindparam("fee_invoice_id"))


def fees_on(session: Session, late_invoice_id: int) -> list[LateFee]:
    return list(session.scalars(select(LateFee).where(LateFee.late_invoice_id == late_invoice_id)
                                .order_by(LateFee.period)))


def recent_fees(session: Session, *, limit: int = 200, client_id: int | None = None) -> list[LateFee]:
    """With the invoices (and the late one's client) a list of fees shows: one statement each, not one per fee."""
    query = (select(LateFee).options(selectinload(LateFee.late_invoice).selectinload(Invoice.client),
                                     selectinload(LateFee.fee_invoice))
             .order_by(LateFee.created_at.desc(), LateFee.id.desc()).limit(limit))
    if client_id is not None:
        query = query.where(LateFee.client_id == client_id)
    return list(session.scalars(query))


def get_fee(session: Session, fee_id: int) -> LateFee:
    fee = session.get(LateFee, fee_id)
    if fee is None:
        raise NotFound("No such late fee.")
    return fee


# --- waiving ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Waived:
    fee: LateFee
    credited_cents: int  # money that had been applied to the fee invoice, now the client's credit


def waive_fee(session: Session, fee_id: int, *, staff: StaffUser | None, reason: str) -> Waived:
    """Waive one fee with a reason (required, kept). The fee invoice is voided; money already applied to it goes
    back to the client's credit first. The row stays, so the period is never charged again."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError("Say why the late fee is waived; the reason is kept on record.")
    if len(reason) > MAX_REASON:
        raise DomainError(f"Keep the reason under {MAX_REASON} characters.")
    begin_write(session)
    fee = session.get(LateFee, fee_id, populate_existing=True)
    if fee is None:
        session.rollback()
        raise NotFound("No such late fee.")
    lock_client_invoices(session, fee.client_id)
    session.refresh(fee)
    if fee.waived_at is not None:
        session.rollback()
        raise DomainError("That late fee was already waived.")
    credited = 0
    fee.waived_at, fee.waived_by_id, fee.waiver_reason = now(), staff.id if staff else None, reason
    invoice = fee.fee_invoice
    if invoice is not None and invoice.status != invoice_rules.VOID:
        session.refresh(invoice)
        credited = _credit_back(session, invoice)
        try:
            billing.void_invoice(session, invoice, f"Late fee waived: {reason}")  # commits
        except DomainError:
            session.rollback()
            raise
    else:
        session.commit()
    return Waived(fee, credited)


def _credit_back(session: Session, invoice: Invoice) -> int:
    per_payment = session.execute(select(Allocation.payment_id, func.sum(Allocation.amount_cents))
                                  .where(Allocation.invoice_id == invoice.id).group_by(Allocation.payment_id)).all()
    moved = 0
    for payment_id, cents in per_payment:
        if cents > 0:
            session.add(Allocation(payment_id=payment_id, invoice_id=invoice.id, amount_cents=-int(cents),
                                   created_at=now(), note="late fee waived"))
            moved += int(cents)
    if moved:
        session.flush()
        billing.refresh_status(session, invoice)
    return moved
