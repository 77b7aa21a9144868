"""Magic-link tokens and what they open.

The emailed token is signed (itsdangerous, salt "invoice-link") and names a link row, its invoice and a nonce.
The row decides validity (expiry, revocation, replacement, the contact's access); the token decides nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import links as rules
from portal.models import Invoice, InvoiceLink

from ..runtime import Runtime

LINK_SALT = "invoice-link"  # itsdangerous salt: a token of another purpose never verifies here
LINK_ENDPOINT = "links.invoice"  # the public page a token opens (portal/web/links/routes.py)
UNKNOWN = "unknown"  # a token that is tampered with or names no link: nothing may be said about it
MAX_TOKEN_CHARS = 400


def _serializer(rt: Runtime) -> URLSafeSerializer:
    return URLSafeSerializer(rt.secret_key, salt=LINK_SALT)


def link_token(rt: Runtime, link: InvoiceLink) -> str:
    return _serializer(rt).dumps([link.id, link.invoice_id, link.nonce])


def link_url(rt: Runtime, link: InvoiceLink) -> str:
    """The link's absolute address on the public BASE_URL, built from the real route (emails leave from commands
    too, where there is no request)."""
    return rt.url(LINK_ENDPOINT, token=link_token(rt, link))


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


def resolve_link(session: Session, rt: Runtime, token: str) -> LinkAccess:
    link = link_for_token(session, rt, token)
    if link is None:
        return LinkAccess(UNKNOWN)
    state = rules.link_state(link_facts(link), now())
    return LinkAccess(state, link, link.invoice if state == rules.ACTIVE else None)


def link_for_token(session: Session, rt: Runtime, token: str) -> InvoiceLink | None:
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    try:
        payload = _serializer(rt).loads(token)
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


def link_facts(link: InvoiceLink) -> rules.LinkFacts:
    return rules.LinkFacts(
        expires_at=link.expires_at,
        revoked=link.revoked_at is not None,
        replaced=link.replaced_by_id is not None,
        contact_at_client=link.contact.client_id == link.invoice.client_id,
        contact_has_access=link.contact.portal_access,
        invoice_status=link.invoice.status,
    )


def link_state(link: InvoiceLink) -> str:
    return rules.link_state(link_facts(link), now())
