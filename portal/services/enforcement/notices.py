"""Formal notices before remote disable or equipment recovery: preview, issue (email plus the portal banner),
delivery, opening, and withdrawal once the overdue balance is paid (settled money only) or by the MSP.

Every one of those steps is also an event on the client's signed terms agreement (the evidence chain of
portal.services.agreements.chain), appended in the same transaction as the row change, so the chain and the notice
never disagree and the agreement still verifies. The portal never disables anything: it records the notice and
the earliest date the terms permit remote disable (``live_notice`` -> ``disable_permitted_on``).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.clock import now, today
from portal.domain import notices as N
from portal.domain.errors import DomainError
from portal.domain.money import format_money
from portal.models import Agreement, Client, Contact, EnforcementNotice, Invoice, StaffUser

from .. import ledger, mail
from ..agreements import rendered
from ..agreements.chain import SYSTEM, Meta
from ..agreements.invitations import signed_terms_of
from ..errors import NotFound
from ..locking import begin_write
from ..payments.autopay_mail import billing_emails
from ..payments.locks import end_reads
from ..payments.reconciliation import OWED_EMAIL_WINDOW
from ..plans.progress import current_plan_invoice_ids
from ..runtime import Runtime
from ..settings import get_settings
from . import equipment

log = logging.getLogger(__name__)

ISSUED = N.NoticeStatus.ISSUED
WITHDRAWN = N.NoticeStatus.WITHDRAWN
ALREADY_LIVE = "A notice of this kind is already live for this client. Withdraw it first to issue a new one."


def signed_terms(session: Session, client_id: int) -> Agreement | None:
    """The terms the client signed last: the version whose numbers bind it."""
    return signed_terms_of(session, [client_id]).get(client_id)


def past_due(session: Session, client_id: int, on: date) -> N.PastDue:
    """How late the client is, from the ledger: only settled money reduces a balance, and invoices a current plan
    collects are left out (the plan is the agreed way to pay them)."""
    items = ledger.open_items(session, client_id)
    on_plan = current_plan_invoice_ids(session, client_id)
    ids = [i.invoice_id for i in items if i.invoice_id not in on_plan]
    due = {row.id: row.due_date for row in session.execute(select(Invoice.id, Invoice.due_date)
                                                            .where(Invoice.id.in_(ids)))} if ids else {}
    return N.past_due(((due[i.invoice_id], i.balance_cents) for i in items if i.invoice_id in due), on)


def _equipment(session: Session, client_id: int, kind: N.NoticeKind) -> list[N.EquipmentLine]:
    """The equipment concerned, from the register (equipment.py). Recovery concerns only what the MSP still owns."""
    rows = equipment.rows_for_client(session, client_id)
    if kind == N.NoticeKind.EQUIPMENT_RECOVERY:
        rows = [e for e in rows if e.owned_until_paid]
    return [N.EquipmentLine(e.item, e.serial_number, e.location, e.value_cents) for e in rows]


@dataclass(frozen=True)
class Draft:
    """What a notice would say if issued now (the admin's preview; issuing writes exactly this)."""

    client: Client
    kind: N.NoticeKind
    agreement: Agreement
    terms: N.NoticeTerms
    late: N.PastDue
    currency: str
    clause: str
    equipment: list[N.EquipmentLine]
    disable_permitted_on: date

    @property
    def title(self) -> str:
        return N.KIND_TITLES[self.kind]


def draft(session: Session, client: Client, kind: str, on: date) -> Draft:
    """The notice as it would be issued on ``on``; a DomainError says why the terms do not allow it yet."""
    chosen = N.parse_kind(kind)
    agreement = signed_terms(session, client.id)
    variables = N.parse_variables(agreement.merged_variables) if agreement is not None else None
    terms = N.terms_from(variables)
    assert agreement is not None and variables is not None
    late = past_due(session, client.id, on)
    N.check_may_issue(terms, late)
    concerned = _equipment(session, client.id, chosen)
    N.check_equipment(chosen, concerned)
    return Draft(client, chosen, agreement, terms, late, get_settings(session).currency,
                 N.quote_clause(agreement.document_text, chosen, variables), concerned,
                 N.disable_permitted_on(on, terms))


def issue(session: Session, rt: Runtime, client: Client, kind: str, *, staff: StaffUser | None,
          meta: Meta = SYSTEM) -> EnforcementNotice:
    """Issue the notice (decided again under the write lock), record it on the terms' chain, then email it."""
    begin_write(session)
    try:
        found = draft(session, client, kind, today())
        at = now()
        notice = EnforcementNotice(
            public_id=secrets.token_urlsafe(18), client_id=client.id, agreement_id=found.agreement.id,
            kind=found.kind.value, status=ISSUED, open_key=N.open_key(client.id, found.kind),
            amount_due_cents=found.late.cents, currency=found.currency, clause=found.clause,
            equipment=N.equipment_json(found.equipment), disable_permitted_on=found.disable_permitted_on,
            issued_by_id=staff.id if staff else None, issued_at=at, withdrawn_reason="")
        session.add(notice)
        session.flush()
        rendered.record_event(session, rt, found.agreement, N.ISSUED_EVENT, meta, {
            "notice": notice.public_id, "kind": found.kind.value, "amount_due_cents": found.late.cents,
            "currency": found.currency, "days_past_due": found.late.days,
            "remote_disable_days": found.terms.remote_disable_days, "notice_days": found.terms.notice_days,
            "disable_permitted_on": found.disable_permitted_on.isoformat(), "clause": found.clause,
            "equipment": [e.serial_number for e in found.equipment]})
        session.commit()
    except IntegrityError:
        session.rollback()
        raise DomainError(ALREADY_LIVE) from None
    except BaseException:
        session.rollback()
        raise
    deliver(session, rt, notice.id)
    return notice


def notice_url(rt: Runtime, notice: EnforcementNotice) -> str:
    return rt.url("enforcement.notice", public_id=notice.public_id)


def deliver(session: Session, rt: Runtime, notice_id: int) -> bool:
    """Email the notice to the client's billing contacts; the delivery (accepted by the mail server) or its failure
    is an event on the chain."""
    notice = session.get(EnforcementNotice, notice_id)
    if notice is None or notice.status != ISSUED:
        return False
    client = notice.client
    to = billing_emails(client)
    context = {"msp": get_settings(session), "client": client, "notice": notice, "title": N.KIND_TITLES[
        N.NoticeKind(notice.kind)], "equipment": N.equipment_from_json(notice.equipment),
        "notice_url": notice_url(rt, notice)}
    subject = f"{N.KIND_TITLES[N.NoticeKind(notice.kind)]}: {format_money(notice.amount_due_cents, notice.currency)}"
    session.rollback()
    if to:
        delivery = mail.send(session, rt, to=to, subject=subject, template="notice_issued", context=context)
        ok, error, message_id = delivery.ok, delivery.error, delivery.message_id
    else:
        ok, error, message_id = False, "the client has no billing contact with an email address", ""
    begin_write(session)
    try:
        notice = session.get(EnforcementNotice, notice_id, with_for_update=True, populate_existing=True)
        assert notice is not None
        if ok:
            notice.delivered_at = now()
            rendered.record_event(session, rt, notice.agreement, N.DELIVERED_EVENT, SYSTEM, {
                "notice": notice.public_id, "to": list(to), "message_id": message_id})
        else:
            rendered.record_event(session, rt, notice.agreement, N.DELIVERY_FAILED_EVENT, SYSTEM, {
                "notice": notice.public_id, "to": list(to), "error": error[:500]})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if not ok:
        log.error("notice %s: email not delivered: %s", notice_id, error)
    return ok


def for_contact(session: Session, contact: Contact, public_id: str) -> EnforcementNotice:
    """The contact's own client's notice; another client's (or an unknown) id is NotFound."""
    if not public_id or len(public_id) > 40:
        raise NotFound()
    notice = session.scalar(select(EnforcementNotice).where(EnforcementNotice.public_id == public_id,
                                                            EnforcementNotice.client_id == contact.client_id))
    if notice is None:
        raise NotFound()
    return notice


def record_opening(session: Session, rt: Runtime, contact: Contact, public_id: str, meta: Meta) -> EnforcementNotice:
    """The client opened the notice page: the first opening is stamped and recorded on the chain."""
    notice = for_contact(session, contact, public_id)
    if notice.opened_at is not None:
        return notice
    begin_write(session)
    try:
        notice = session.get(EnforcementNotice, notice.id, with_for_update=True, populate_existing=True)
        assert notice is not None
        if notice.opened_at is None:
            notice.opened_at = now()
            rendered.record_event(session, rt, notice.agreement, N.OPENED_EVENT, meta,
                                  {"notice": notice.public_id, "contact_email": contact.email})
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return notice


def _withdraw(session: Session, rt: Runtime, notice: EnforcementNotice, reason: N.WithdrawReason, note: str,
              meta: Meta) -> None:
    notice.status, notice.open_key, notice.withdrawn_at = WITHDRAWN, None, now()
    notice.withdrawn_reason = f"{reason.value}: {note}"[:500] if note else reason.value
    rendered.record_event(session, rt, notice.agreement, N.WITHDRAWN_EVENT, meta,
                          {"notice": notice.public_id, "reason": reason.value, "note": note[:500]})


def withdraw(session: Session, rt: Runtime, client: Client, notice_id: int, *, staff: StaffUser, reason: str,
             meta: Meta = SYSTEM) -> EnforcementNotice:
    """The MSP withdraws a live notice (a reason is recorded); the client is told."""
    note = " ".join((reason or "").split())
    if not note:
        raise DomainError("Give a reason for withdrawing the notice: it is recorded and the client is told.")
    if len(note) > 500:
        raise DomainError("The reason is limited to 500 characters.")
    begin_write(session)
    try:
        notice = session.get(EnforcementNotice, notice_id, with_for_update=True, populate_existing=True)
        if notice is None or notice.client_id != client.id:
            raise NotFound()
        if notice.status != ISSUED:
            raise DomainError("This notice was already withdrawn.")
        _withdraw(session, rt, notice, N.WithdrawReason.STAFF, note, meta)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    send_withdrawals(session, rt)
    return notice


def withdraw_paid(session: Session, rt: Runtime, *, client_id: int | None = None, on: date | None = None) -> int:
    """Live notices whose grounds are gone (the overdue balance is paid with settled money) are withdrawn, and the
    clients told once. run-due's "notices withdrawn" step, and called right after a payment is booked (except run-due's
    own charges: the step follows them in the same run)."""
    on = on or today()
    query = select(EnforcementNotice.id).where(EnforcementNotice.status == ISSUED).order_by(EnforcementNotice.id)
    if client_id is not None:
        query = query.where(EnforcementNotice.client_id == client_id)
    ids = list(session.scalars(query))
    end_reads(session)  # not a rollback: that would expire what the caller holds loaded
    withdrawn = 0
    for notice_id in ids:
        begin_write(session)
        try:
            notice = session.get(EnforcementNotice, notice_id, with_for_update=True, populate_existing=True)
            if notice is None or notice.status != ISSUED:
                session.rollback()
                continue
            variables = N.parse_variables(notice.agreement.merged_variables)
            late = past_due(session, notice.client_id, on)
            if N.grounds_remain(N.terms_from(variables), late):
                session.rollback()
                continue
            _withdraw(session, rt, notice, N.WithdrawReason.PAID, "the overdue balance was paid", SYSTEM)
            session.commit()
            withdrawn += 1
        except BaseException:
            session.rollback()
            raise
    if withdrawn or client_id is None:  # after one client's payment: only its own news (run-due sends the rest)
        send_withdrawals(session, rt)
    return withdrawn


def send_withdrawals(session: Session, rt: Runtime) -> int:
    """Tell each client once that its notice is withdrawn. The send is claimed (stamped) before it goes out, so two
    processes never both send; a refused email (or a client with no billing contact) is un-stamped and tried again
    by the next runs, for a week (``OWED_EMAIL_WINDOW``): after that the portal's banner, gone since the withdrawal,
    has told the client, and every run would otherwise look at that notice again forever."""
    sent = 0
    ids = list(session.scalars(select(EnforcementNotice.id).where(
        EnforcementNotice.status == WITHDRAWN, EnforcementNotice.withdrawal_sent_at.is_(None),
        EnforcementNotice.withdrawn_at > now() - OWED_EMAIL_WINDOW)))
    end_reads(session)
    for notice_id in ids:
        begin_write(session)
        notice = session.get(EnforcementNotice, notice_id, with_for_update=True, populate_existing=True)
        if notice is None or notice.withdrawal_sent_at is not None:
            session.rollback()
            continue
        notice.withdrawal_sent_at = now()
        session.commit()
        client = notice.client
        context = {"msp": get_settings(session), "client": client, "notice": notice,
                   "title": N.KIND_TITLES[N.NoticeKind(notice.kind)], "paid": notice.withdrawn_reason.startswith(
                       N.WithdrawReason.PAID.value), "portal_url": rt.url("client.dashboard")}
        to = billing_emails(client)
        delivery = mail.send(session, rt, to=to, subject=f"Withdrawn: {context['title'].lower()}",
                             template="notice_withdrawn", context=context) if to else None
        if delivery is None or not delivery.ok:
            begin_write(session)
            notice = session.get(EnforcementNotice, notice_id, with_for_update=True, populate_existing=True)
            if notice is not None:
                notice.withdrawal_sent_at = None
            session.commit()
            log.error("notice %s: withdrawal email not delivered: %s", notice_id,
                      delivery.error if delivery else "no billing contact")
            continue
        sent += 1
    return sent


def live_notice(notices: Iterable[EnforcementNotice]) -> EnforcementNotice | None:
    """The live notice among a client's ``notices`` (``notices_of``: the staff panel lists them all, so this reads
    nothing again): its live remote-disable notice if any, else a live recovery notice. Its ``disable_permitted_on``
    is what the panel shows as "disable permitted from"."""
    live = [n for n in notices if n.status == ISSUED]
    return min(live, key=lambda n: (n.kind != N.NoticeKind.REMOTE_DISABLE, n.id), default=None)


def live_notices(session: Session, client_id: int) -> list[EnforcementNotice]:
    return list(session.scalars(_LIVE, {"client_id": client_id}))


# Built once: the portal's pages read it on every view (the notice banner).
_LIVE = (select(EnforcementNotice).where(EnforcementNotice.client_id == bindparam("client_id"),
                                         EnforcementNotice.status == ISSUED)
         .order_by(EnforcementNotice.id))


def notices_of(session: Session, client_id: int) -> list[EnforcementNotice]:
    return list(session.scalars(_OF_CLIENT, {"client_id": client_id}))


_OF_CLIENT = (select(EnforcementNotice).where(EnforcementNotice.client_id == bindparam("client_id"))
              .order_by(EnforcementNotice.id.desc()))


def get(session: Session, client: Client, notice_id: int) -> EnforcementNotice:
    notice = session.get(EnforcementNotice, notice_id)
    if notice is None or notice.client_id != client.id:
        raise NotFound()
    return notice
