"""Demo data for notices, charge authorizations and deliverables: the signed client furthest past its remote-disable
threshold has a formal notice issued (emailed to the outbox, on its portal banner, on its terms' evidence chain) and
a charge authorization its contact signed with no card on file, so it waits at the checkout (staff may cancel it);
an unpaid invoice carries a deliverable the client sees listed but cannot download until it is paid."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import notices as N
from portal.domain.errors import DomainError
from portal.domain.invoices import InvoiceStatus, LineInput
from portal.domain.payments import GATEWAY_MINIMUM_CENTS
from portal.models import ChargeAuthorization, Client, Deliverable, EnforcementNotice, Invoice, StaffUser

from . import agreements, billing, standing
from .demo_plans import DEMO_AGENT
from .enforcement import charge_authorizations as auths
from .enforcement import deliverables, notices
from .runtime import Runtime

#: A one-page PDF, written out by hand so the demo needs no renderer.
_REPORT = b"""%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>
endobj
4 0 obj << /Length 62 >> stream
BT /F1 18 Tf 72 720 Td (Quarterly network health report) Tj ET
endstream endobj
5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj
trailer << /Root 1 0 R >>
%%EOF
"""


def seed(session: Session, rt: Runtime, clients: list[Client], admin: StaffUser, today: date) -> None:
    signed = [c for c in clients if notices.signed_terms(session, c.id) is not None]
    notice_client = next((c for c in signed if _may_issue(session, c, today)), None)
    if notice_client is None and signed:
        # the demo's late payers have not signed the terms: one signed client falls behind on an emergency repair
        notice_client = signed[-1]
        variables = N.parse_variables(notices.signed_terms(session, notice_client.id).merged_variables)
        late_by = N.terms_from(variables).remote_disable_days + 5
        billing.create_invoice(session, notice_client, lines=[LineInput(
            "Emergency server replacement (after-hours)", Decimal(1), 184_000, taxable=False)],
            issue_date=today - timedelta(days=late_by + 30), due_date=today - timedelta(days=late_by), issue=True)
        standing.record_changes(session, today)  # the hold it causes is recorded like the demo's others
    if notice_client is not None and session.scalar(select(EnforcementNotice.id).limit(1)) is None:
        notices.issue(session, rt, notice_client, N.NoticeKind.REMOTE_DISABLE, staff=admin)
    if notice_client is not None and session.scalar(select(ChargeAuthorization.id).limit(1)) is None:
        _authorization_awaiting_payment(session, rt, notice_client, admin)
    owner = notice_client or clients[0]
    invoice = session.scalar(select(Invoice).where(Invoice.client_id == owner.id, Invoice.status == InvoiceStatus.OPEN)
                             .order_by(Invoice.due_date, Invoice.id).limit(1))
    if invoice is not None and session.scalar(select(Deliverable.id).limit(1)) is None:
        deliverables.attach(session, rt, invoice, filename="Network health report Q1.pdf", data=_REPORT, staff=admin)


def _authorization_awaiting_payment(session: Session, rt: Runtime, client: Client, admin: StaffUser) -> None:
    """Half the open balance, "for the emergency visit you asked for": signed in the portal, with no card on file
    the payment waits at the checkout (Admin -> client -> Notices and charge authorizations: "Signed, charging")."""
    if auths.card_on_file(session, rt, client.id) is not None:
        return  # signing would charge the card at once; the demo shows the one waiting for the client
    contact = next((c for c in client.contacts if c.is_billing and c.email), None)
    half = auths.open_cents(session, client.id) // 2
    if contact is None or half < GATEWAY_MINIMUM_CENTS:
        return
    row = auths.send(session, rt, client, amount_cents=half, staff=admin,
                     reason="Emergency on-site visit requested while the account is on hold")
    document = auths.document(session, rt, row, None)
    meta = agreements.Meta(ip=f"203.0.113.{10 + client.id}", user_agent=DEMO_AGENT,
                           session_id=f"demoauth{client.id:04d}", contact_id=contact.id)
    auths.sign(session, rt, contact, row.public_id, auths.SignedBy(
        full_name=contact.name, title=contact.title or "Office Manager", authority_confirmed=True,
        consent_confirmed=True, signature=agreements.Signature("typed", typed=contact.name),
        shown_sha256=document.sha256), meta=meta)


def _may_issue(session: Session, client: Client, today: date) -> bool:
    try:
        notices.draft(session, client, N.NoticeKind.REMOTE_DISABLE, today)
    except DomainError:
        return False
    return True
