"""Enforcement tests: payment terms published and signed through the real signing machinery (so the notices'
events extend a real, anchored evidence chain that must still verify), a card saved in the sandbox or the fake
Stripe, and the help for reading mail."""

from __future__ import annotations

from datetime import UTC, datetime

from portal.domain import terms as T
from portal.gateways.payments import MandateAcceptance
from portal.models import Agreement
from portal.services import agreements, terms
from portal.services import settings as settings_service
from portal.services.agreements.chain import Meta
from portal.services.autopay import methods
from portal.web.runtime import runtime

LAW = "the laws of the State of Ohio; courts of Franklin County, Ohio"
META = Meta(ip="203.0.113.7", user_agent="Mozilla/5.0 (test browser)", session_id="b" * 32)
ACCEPTANCE = MandateAcceptance(ip_address="203.0.113.7", user_agent="Mozilla/5.0 (test)",
                               accepted_at=datetime(2026, 3, 3, 9, 0, tzinfo=UTC))


def publish_terms(session, *, remote_disable_days: int = 45, notice_days: int = 10, hold_days: int = 15,
                  deposit_percent: int = 50):
    settings_service.update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC",
                                     email="billing@acme.test")
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT, staff=None,
                     parameters={**T.DEFAULT_PARAMETERS, "remote_disable_days": str(remote_disable_days),
                                 "remote_disable_notice_days": str(notice_days), "hold_days": str(hold_days),
                                 "equipment_deposit_percent": str(deposit_percent),
                                 "governing_law": LAW})
    return agreements.publish(session, runtime(), T.TERMS, staff=None)


def sign_terms(session, client, contact) -> Agreement:
    """Invite, consent, view, acknowledge every clause, sign: the steps a contact takes in the portal."""
    rt = runtime()
    meta = Meta(ip=META.ip, user_agent=META.user_agent, session_id=META.session_id, contact_id=contact.id)
    agreement = agreements.invite(session, rt, client, contact, meta=meta, send=False)
    disclosure, _ = agreements.disclosure_document(session)
    agreements.consent(session, rt, agreement, contact, disclosure_version_id=disclosure.id, meta=meta)
    agreements.record_view(session, rt, agreement, contact, meta=meta)
    agreements.acknowledge(session, rt, agreement, contact, list(T.CLAUSE_KEYS), meta=meta)
    return agreements.sign(session, rt, agreement, contact, full_name="Dana Whitfield", title="Office Manager",
                           authority_confirmed=True, signature=agreements.Signature("typed", typed="Dana Whitfield"),
                           document_sha256=agreement.document_sha256, meta=meta)


def save_card(session, rt, contact, token: str, nonce: str = "nonce-0123456789abcdef"):
    return methods.save(session, rt, contact, methods.NewMethod(token=token, nonce=nonce,
                                                                bank_verification="automatic"), ACCEPTANCE)


def verifies(session, rt, agreement) -> bool:
    found = agreements.verify_reference(session, rt, agreement.reference)
    assert found is not None
    assert found.chain.intact, found.chain
    assert not found.breaks, found.breaks
    return found.signed
