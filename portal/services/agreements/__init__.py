"""Agreements a client signs: invite, consent, view, acknowledge, sign, decline, void, verify.

Every step appends an event to the agreement's hash chain (portal.domain.evidence). The service, not the page,
enforces the order: signing needs this signer's consent, a view of the document, one acknowledgment per
high-risk clause, name, title, the authority statement and a signature, on the version it was invited against.
Each public function owns its transaction.

Callers import this package (``from portal.services import agreements``); the work is split by seam:
chain.py (the evidence chain every step appends to), keys.py (the key and certificate kept outside the database
that vouch for the chain and the PDF), invitations.py (publishing, inviting, reminding and the staff actions),
signing.py (the contact's steps up to signing or declining) and documents.py (the signed PDF and verification).
Every step takes the app's Runtime (``rt``): the key, the URL builder, the mailer and the PDF renderer.
"""

from .chain import EVENT_LABELS, OPEN, SYSTEM, Meta, event_data, events, verify_events
from .documents import Break, Verification, pdf_filename, render_signed_pdf, verify_pdf, verify_reference
from .invitations import (
    ReminderRun,
    get,
    invite,
    needs_terms,
    open_invitation,
    previous_signed,
    publish,
    remind_outstanding,
    resend,
    signed_terms_of,
    terms_for_contact,
    terms_to_sign,
    void,
)
from .signing import (
    Progress,
    Signature,
    acknowledge,
    authority_statement,
    clause_statements,
    client_agreements,
    consent,
    consent_statement,
    decline,
    disclosure_document,
    for_client,
    progress,
    record_open,
    record_view,
    sign,
)

__all__ = [
    "EVENT_LABELS", "OPEN", "SYSTEM", "Break", "Meta", "Progress", "ReminderRun", "Signature",
    "Verification", "acknowledge", "authority_statement", "clause_statements", "client_agreements", "consent",
    "consent_statement", "decline", "disclosure_document", "event_data", "events", "for_client", "get", "invite",
    "needs_terms", "open_invitation", "pdf_filename", "previous_signed", "progress", "publish",
    "record_open", "record_view", "remind_outstanding", "render_signed_pdf", "resend", "sign", "signed_terms_of",
    "terms_for_contact", "terms_to_sign", "verify_events", "verify_pdf", "verify_reference", "void",
]
