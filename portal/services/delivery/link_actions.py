"""What happens to a link after it is sent: a person opens it, staff revoke it (or sign the contact out
everywhere), a visitor holding a dead link asks for a fresh one."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import links as rules
from portal.domain.errors import DomainError
from portal.models import Contact, InvoiceDelivery, InvoiceLink, StaffUser

from ..locking import begin_write
from ..runtime import Runtime
from .sending import contact_label, record_event, send_in_transaction
from .tokens import link_for_token, link_state


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
        record_event(session, link.invoice, "opened", f"Opened by {contact_label(link.contact)} for the first time.",
                     link=link)
    session.commit()
    session.expire(link, ["open_count", "first_opened_at", "last_opened_at"])
    return True


def revoke_link(session: Session, link: InvoiceLink, *, actor: StaffUser | None) -> None:
    begin_write(session)
    session.refresh(link)  # what another request did to it before we took the lock
    if link.revoked_at is not None:
        raise DomainError("That link is already revoked.")
    link.revoked_at, link.revoked_by_id = now(), actor.id if actor else None
    record_event(session, link.invoice, "link_revoked", f"Link of {contact_label(link.contact)} revoked.", link=link,
                 actor=actor)
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
        record_event(session, link.invoice, "link_revoked",
                     f"{contact_label(contact)} signed out everywhere: link revoked.", link=link, actor=actor)
    contact.session_epoch += 1
    session.commit()
    return len(live)


def request_fresh_link(session: Session, rt: Runtime, token: str) -> str:
    """A visitor holding a dead link asks for a new one. It goes only to the link's contact, at the address on
    file, at most FRESH_LINKS_PER_LINK times a day per link. Returns what happened ("sent", "limited",
    "ignored") for logs and tests; the visitor is always told the same thing."""
    begin_write(session)  # the daily limit is counted and then written: two requests must not both pass it
    link = link_for_token(session, rt, token)
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
    record_event(session, link.invoice, "fresh_link_requested",
                 f"A fresh link was requested from a {state} link of {contact_label(link.contact)}.", link=link)
    try:
        send_in_transaction(session, rt, link.invoice, contacts=[link.contact], actor=None, kind=rules.FRESH_LINK,
                            requested_via=link)
    except DomainError:
        session.rollback()
        return "ignored"
    return "sent"
