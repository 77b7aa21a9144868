"""An MSP with published payment terms, a client invited to sign them, and a second client next door."""

from __future__ import annotations

import base64
import re
import struct
import zlib
from dataclasses import dataclass

import pytest

from portal.domain import evidence
from portal.domain import terms as T
from portal.models import Agreement, Client, Contact, StaffUser, TermsVersion
from portal.services import agreements as svc
from portal.services import terms
from portal.services.settings import update_settings
from portal.web.runtime import runtime

LAW = "the laws of the State of Ohio"


@dataclass
class World:
    admin: StaffUser
    client: Client
    contact: Contact
    other_client: Client
    other_contact: Contact
    v1: TermsVersion


def publish_terms(session, admin, **parameters) -> TermsVersion:
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW, **parameters}, staff=admin)
    return svc.publish(session, runtime(), T.TERMS, staff=admin)


@pytest.fixture
def world(session, make) -> World:
    update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme.test")
    admin = make.staff()
    client = make.client("Harbor Dental Group LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    other_client = make.client("Bayside Law PC")
    other_contact = make.contact(other_client, email="ap@bayside.test", name="Bay Side")
    return World(admin, client, contact, other_client, other_contact, publish_terms(session, admin))


@pytest.fixture
def invitation(session, world) -> Agreement:
    return svc.invite(session, runtime(), world.client, world.contact, meta=svc.Meta(staff_id=world.admin.id))


def walk(session, agreement, contact) -> svc.Meta:
    """Consent, view and acknowledge through the service (for tests about what comes after)."""
    meta = svc.Meta(ip="203.0.113.9", user_agent="test", session_id="walk", contact_id=contact.id)
    disclosure, _ = svc.disclosure_document(session)
    svc.consent(session, runtime(), agreement, contact, disclosure_version_id=disclosure.id, meta=meta)
    svc.record_view(session, runtime(), agreement, contact, meta=meta)
    svc.acknowledge(session, runtime(), agreement, contact, list(T.CLAUSE_KEYS), meta=meta)
    return meta


def sign_typed(session, agreement, contact, name="Dana Whitfield") -> Agreement:
    meta = walk(session, agreement, contact)
    return svc.sign(session, runtime(), agreement, contact, full_name=name, title="Office Manager",
                    authority_confirmed=True, signature=svc.Signature("typed", typed=name),
                    document_sha256=agreement.document_sha256, meta=meta)


@pytest.fixture
def signed(session, world, invitation) -> Agreement:
    return sign_typed(session, invitation, world.contact)


def png_data_url(width: int = 400, height: int = 120) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x00\xff" * (width // 2) for _ in range(height))
    png = (evidence.PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def assert_clean(body: str, url: str) -> None:
    """No inline script or style: the CSP would block them."""
    assert not re.search(r"\sstyle=", body), url
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body), url
    assert not re.search(r"\son[a-z]+=", body), url


def csrf_token(body: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
