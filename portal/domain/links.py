"""Rules for emailed invoice links: how long one lives, whether it still opens the invoice, what counts as an open,
and when an email about an invoice may be (re)sent. Pure: the caller passes in the time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from .errors import DomainError, InvalidTransition
from .invoices import ISSUED, InvoiceStatus

# Link states. Only ACTIVE opens the invoice; the others explain (to the link's holder) why it did not.
ACTIVE, EXPIRED, REVOKED, REPLACED, NO_ACCESS, VOID = "active", "expired", "revoked", "replaced", "no_access", "void"

# What an email about an invoice is for. Each kind has its own template; all travel the same send path.
INVOICE, REMINDER, FRESH_LINK = "invoice", "reminder", "fresh_link"
KINDS = (INVOICE, REMINDER, FRESH_LINK)



class DeliveryStatus(StrEnum):
    """One email about an invoice: sending until the mail server accepted or refused it."""

    SENDING = "sending"
    ACCEPTED = "accepted"
    FAILED = "failed"


FRESH_LINKS_PER_LINK = 3  # fresh links a visitor may ask for from one dead link ...
FRESH_LINK_WINDOW = timedelta(hours=24)  # ... within this window
STUCK_AFTER = timedelta(minutes=10)  # a "sending" delivery this old was interrupted (crash) and may be retried


def link_expires_at(due_date: date, issued_at: datetime, days_after_due: int) -> datetime:
    """The end (UTC) of due date + N days, but never sooner than N days after the link is issued: an overdue
    invoice sent today must still get a link that works for a while."""
    if days_after_due < 1:
        raise ValueError("days_after_due must be at least 1")
    by_due_date = datetime.combine(due_date + timedelta(days=days_after_due + 1), time.min, tzinfo=UTC)
    return max(by_due_date, issued_at + timedelta(days=days_after_due))


@dataclass(frozen=True)
class LinkFacts:
    """What decides a link's fate, read from the link row, its contact and its invoice."""

    expires_at: datetime
    revoked: bool
    replaced: bool
    contact_at_client: bool  # the contact still belongs to the invoice's client
    contact_has_access: bool
    invoice_status: str


def link_state(facts: LinkFacts, now: datetime) -> str:
    """Most fundamental reason first: a contact who left the client learns nothing, not even that the invoice
    was voided."""
    if not (facts.contact_at_client and facts.contact_has_access):
        return NO_ACCESS
    if facts.invoice_status not in ISSUED:
        return VOID  # drafts never had a link; anything else that is not payable reads as cancelled
    if facts.revoked:
        return REVOKED
    if facts.replaced:
        return REPLACED
    if now >= facts.expires_at:
        return EXPIRED
    return ACTIVE


# Substrings (lower case) of User-Agents that fetch links without a person: mail security scanners, chat and
# social previews, search crawlers and HTTP libraries. Their visits are not opens.
SCANNER_MARKERS = (
    "bot", "crawler", "spider", "preview", "scanner", "proofpoint", "mimecast", "barracuda", "safelinks",
    "safe links", "microsoft office existence discovery", "skypeuripreview", "facebookexternalhit", "whatsapp",
    "google-safety", "yahoomailproxy", "symantec", "trendmicro", "forcepoint", "zscaler", "sophos",
    "python-requests", "python-urllib", "aiohttp", "httpx", "curl/", "wget/", "go-http-client", "okhttp",
    "java/", "libwww-perl", "apache-httpclient", "axios/", "node-fetch",
)


def is_link_scanner(user_agent: str | None) -> bool:
    ua = (user_agent or "").strip().lower()
    return not ua or any(marker in ua for marker in SCANNER_MARKERS)


def counts_as_open(method: str, user_agent: str | None) -> bool:
    """A person opened the invoice: a GET from a browser. HEAD (link checkers) and known scanners do not count."""
    return method.upper() == "GET" and not is_link_scanner(user_agent)


def check_sendable(invoice_status: str, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    if invoice_status == InvoiceStatus.DRAFT:
        raise InvalidTransition("Issue the invoice before sending it.")
    if invoice_status == InvoiceStatus.VOID:
        raise InvalidTransition("A void invoice cannot be sent.")
    if kind == REMINDER and invoice_status != InvoiceStatus.OPEN:
        raise InvalidTransition("Nothing is owed on this invoice, so there is nothing to remind about.")


def check_retryable(status: str, created_at: datetime, already_retried: bool, superseded: bool,
                    now: datetime) -> None:
    """``superseded``: the invoice was sent to the contact again since (the email's link was replaced), so
    retrying the old email would only replace the newer link."""
    if already_retried:
        raise InvalidTransition("This email was already sent again.")
    if superseded:
        raise InvalidTransition("A newer email about this invoice went to this contact since; send it again instead.")
    if status == DeliveryStatus.FAILED or (status == DeliveryStatus.SENDING and now - created_at >= STUCK_AFTER):
        return
    raise InvalidTransition("Only an email that failed can be sent again.")


def fresh_link_allowed(earlier_requests: Iterable[datetime], now: datetime) -> bool:
    """At most FRESH_LINKS_PER_LINK fresh links per dead link per window, so a leaked link cannot flood an inbox."""
    recent = [at for at in earlier_requests if now - at < FRESH_LINK_WINDOW]
    return len(recent) < FRESH_LINKS_PER_LINK


@dataclass(frozen=True)
class ContactFacts:
    id: int
    is_billing: bool
    portal_access: bool


def pick_recipients(contacts: Iterable[ContactFacts]) -> list[int]:
    """Default recipients of an invoice email: the client's billing contacts who have portal access."""
    return [c.id for c in contacts if c.is_billing and c.portal_access]


class NoRecipients(DomainError):
    """The client has nobody to send the invoice to."""
