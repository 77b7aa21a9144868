"""Emailing invoices with a magic link, tracking what happened to each email, and managing the links.

Every email about an invoice travels one path (``send_invoice`` with a ``kind``: the invoice itself, a reminder,
a fresh link a visitor asked for): the link and delivery rows are committed *before* the message leaves, then
each delivery records what the mail server answered. A refused message never loses the invoice or the link; it
shows as failed and can be retried.

The emailed token is signed (itsdangerous, salt "invoice-link") and names a link row, its invoice and a nonce.
The row decides validity (expiry, revocation, replacement, the contact's access); the token decides nothing.

Callers import this package (``from portal.services import delivery``); the work is split by seam: tokens.py (the
token and what it opens), sending.py (the one sending path), link_actions.py (opens, revocation, fresh links) and
overview.py (what admins see, and the admin lookups).
"""

from .link_actions import record_open, request_fresh_link, revoke_link, sign_out_everywhere
from .overview import (
    DeliveryOverview,
    DeliveryRow,
    LinkRow,
    contacts_by_id,
    get_contact,
    get_delivery,
    get_invoice,
    get_link,
    overview,
    unsent_open_invoices,
)
from .sending import (
    TEMPLATES,
    BulkResult,
    IssuedAndSent,
    email_context,
    issue_and_send,
    retry_delivery,
    send_invoice,
    send_many,
    send_reminder,
    subject_for,
)
from .tokens import (
    LINK_ENDPOINT,
    LINK_SALT,
    MAX_TOKEN_CHARS,
    UNKNOWN,
    LinkAccess,
    link_state,
    link_token,
    link_url,
    resolve_link,
)

__all__ = [
    "LINK_ENDPOINT", "LINK_SALT", "MAX_TOKEN_CHARS", "TEMPLATES", "UNKNOWN", "BulkResult", "DeliveryOverview",
    "DeliveryRow", "IssuedAndSent", "LinkAccess", "LinkRow", "contacts_by_id", "email_context", "get_contact",
    "get_delivery", "get_invoice", "get_link", "issue_and_send", "link_state", "link_token", "link_url", "overview",
    "record_open", "request_fresh_link", "resolve_link", "retry_delivery", "revoke_link", "send_invoice",
    "send_many", "send_reminder", "sign_out_everywhere", "subject_for", "unsent_open_invoices",
]
