"""`run-due` steps that warn the client before money moves: the pre-charge notice (N days before a charge, listing
what will be charged and when) and the expiring-card email (once per card). Each claim is a row written before the
email goes (a unique notice per invoice, a stamp on the card), so two nodes or a rerun never send one twice."""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import autopay as policy
from portal.domain.autopay import SavedMethodStatus
from portal.models import AutopayNotice, Client, Invoice, SavedPaymentMethod

from ..locking import begin_write
from ..runtime import Runtime
from . import autopay_mail
from .autopay_charging import PRE_CHARGE, notice_subject, plan_client
from .autopay_setup import enrolled_clients
from .locks import end_reads

log = logging.getLogger(__name__)


def send_pre_charge_notices(session: Session, rt: Runtime, today: date) -> int:
    """Emails sent: one per client with invoices whose notice is due today (or overdue, after a missed run)."""
    sent = 0
    for setup in enrolled_clients(session, rt.gateway.name):
        due = [p for p in plan_client(session, setup, today)
               if p.decision.skip is policy.Skip.NOTICE_PENDING and p.method is not None and p.decision.charge_on]
        if not due:
            continue
        claimed = []
        for plan in due:
            notice = AutopayNotice(kind=PRE_CHARGE, subject=notice_subject(plan.invoice_id), client_id=setup.client_id,
                                   sent_on=today, charge_on=plan.decision.charge_on, created_at=now())
            session.add(notice)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another node claimed it: it sends that one
                continue
            claimed.append((plan, notice))
        if not claimed:
            continue
        client = session.get(Client, setup.client_id)
        lines = [(session.get(Invoice, plan.invoice_id), plan.decision.charge_cents, plan.decision.charge_on)
                 for plan, _ in claimed]
        method = claimed[0][0].method
        if autopay_mail.send_pre_charge(session, rt, client, lines, method.label if method else ""):
            sent += 1
            begin_write(session)  # a fresh write transaction, as in delivery.sending._deliver
            for _, notice in claimed:
                notice.delivered = True
            session.commit()
    end_reads(session)
    return sent


def email_expiring_cards(session: Session, rt: Runtime, today: date) -> int:
    """Cards on autopay that expire within 30 days: the client is emailed once per card."""
    sent = 0
    cards = session.scalars(select(SavedPaymentMethod).where(
        SavedPaymentMethod.method_type == policy.CARD, SavedPaymentMethod.status == SavedMethodStatus.ACTIVE,
        SavedPaymentMethod.gateway == rt.gateway.name, SavedPaymentMethod.expiry_notice_sent_at.is_(None),
        SavedPaymentMethod.exp_month.is_not(None), SavedPaymentMethod.exp_year.is_not(None))
        .order_by(SavedPaymentMethod.id)).all()
    for card in cards:
        if policy.card_expiry(card.exp_month, card.exp_year, today) is not policy.Expiry.EXPIRING:
            continue
        claimed = session.execute(update(SavedPaymentMethod).where(
            SavedPaymentMethod.id == card.id, SavedPaymentMethod.expiry_notice_sent_at.is_(None))
            .values(expiry_notice_sent_at=now()))
        session.commit()
        if claimed.rowcount != 1:
            continue  # another node is sending it
        if autopay_mail.send_card_expiring(session, rt, card):
            sent += 1
    end_reads(session)
    return sent
