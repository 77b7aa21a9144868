"""Payment-terms agreements on a real database: publishing, invitations, the signing rules, the evidence chain,
the signed PDF and its verification, re-consent, and emails through a real SMTP server on loopback."""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from types import SimpleNamespace

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select, text

from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.models import Agreement, AgreementEvent, TermsVersion
from portal.models.agreements import ImmutableRecord
from portal.services import agreements as svc
from portal.services import settings as settings_service
from portal.services import terms
from portal.services.errors import Conflict, NotFound
from portal.web.runtime import runtime
from tests.smtp_fixtures import mail_through_smtp  # noqa: F401 (fixtures)

LAW = "the laws of the State of Ohio; courts of Franklin County, Ohio"


def png(width: int = 300, height: int = 100) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x00\xff" * (width // 2) for _ in range(height))
    return (evidence.PNG_MAGIC + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def drawn() -> svc.Signature:
    return svc.Signature("drawn", drawn_data_url="data:image/png;base64," + base64.b64encode(png()).decode())


def meta_for(contact, session_id: str = "sess-1") -> svc.Meta:
    return svc.Meta(ip="203.0.113.7", user_agent="Mozilla/5.0 (test browser)", session_id=session_id,
                    contact_id=contact.id)


@pytest.fixture
def w(session, make):
    """The world: an MSP with published terms, a client with a billing contact, an admin."""
    settings_service.update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC",
                                     email="billing@acme.test")
    admin = make.staff()
    client = make.client("Harbor Dental Group LLC", net_days=15)
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW}, staff=admin)
    v1 = svc.publish(session, runtime(), T.TERMS, staff=admin, summary="First version")
    return SimpleNamespace(admin=admin, client=client, contact=contact, v1=v1,
                           staff_meta=svc.Meta(ip="198.51.100.2", user_agent="admin browser", session_id="adm",
                                               staff_id=admin.id))


def invite(session, w, contact=None) -> Agreement:
    return svc.invite(session, runtime(), w.client, contact or w.contact, meta=w.staff_meta)


def prepare(session, agreement, contact, *, skip: tuple[str, ...] = ()) -> svc.Meta:
    meta = meta_for(contact)
    disclosure, _ = svc.disclosure_document(session)
    if "consent" not in skip:
        svc.consent(session, runtime(), agreement, contact, disclosure_version_id=disclosure.id, meta=meta)
    if "view" not in skip:
        svc.record_view(session, runtime(), agreement, contact, meta=meta)
    clauses = [k for k in T.CLAUSE_KEYS if k not in skip]
    if clauses and "view" not in skip:
        svc.acknowledge(session, runtime(), agreement, contact, clauses, meta=meta)
    return meta


def sign(session, agreement, contact, meta=None, **changes):
    kwargs = dict(full_name="Dana Whitfield", title="Office Manager", authority_confirmed=True,
                  signature=svc.Signature("typed", typed="Dana Whitfield"),
                  document_sha256=agreement.document_sha256, meta=meta or meta_for(contact))
    kwargs.update(changes)
    return svc.sign(session, runtime(), agreement, contact, **kwargs)


def kinds(session, agreement) -> list[str]:
    return [e.kind for e in svc.events(session, agreement)]


def snapshot(session, agreement) -> tuple:
    session.expire_all()
    a = session.get(Agreement, agreement.id)
    count = session.scalar(select(func.count()).select_from(AgreementEvent)
                           .where(AgreementEvent.agreement_id == agreement.id))
    return a.status, a.event_count, a.chain_head, a.signed_at, a.pdf_sha256, count


# ---------------------------------------------------------------------------------------------------- versions

def test_publishing_stores_text_parameters_and_their_hash(session, w):
    v1 = session.get(TermsVersion, w.v1.id)
    params = json.loads(v1.parameters)
    assert v1.number == 1 and v1.kind == T.TERMS and params["governing_law"] == LAW
    assert v1.text == T.DEFAULT_TERMS_TEXT.strip() + "\n"
    assert v1.sha256 == evidence.sha256_hex(evidence.canonical_json({"parameters": params, "text": v1.text}))
    assert v1.published_by_staff_id == w.admin.id and v1.summary == "First version"


def test_publishing_an_unchanged_draft_is_refused(session, w):
    with pytest.raises(DomainError, match="Nothing changed since version 1"):
        svc.publish(session, runtime(), T.TERMS, staff=w.admin)
    assert session.scalar(select(func.count()).select_from(TermsVersion).where(TermsVersion.kind == T.TERMS)) == 1


def test_publishing_needs_the_governing_law_filled_in(session, make):
    admin = make.staff()
    with pytest.raises(DomainError, match="Governing law"):
        svc.publish(session, runtime(), T.TERMS, staff=admin)
    assert terms.current_version(session, T.TERMS) is None


def test_a_draft_with_an_unknown_merge_variable_is_refused_and_nothing_changes(session, w):
    before = terms.get_template(session, T.TERMS).draft_text
    with pytest.raises(DomainError, match="late_fees_pct"):
        terms.save_draft(session, T.TERMS, text="Fee {{ late_fees_pct }}", parameters=T.DEFAULT_PARAMETERS,
                         staff=w.admin)
    session.expire_all()
    assert terms.get_template(session, T.TERMS).draft_text == before


def test_a_published_version_cannot_be_edited(session, w):
    v1 = session.get(TermsVersion, w.v1.id)
    v1.text = "We may charge whatever we like."
    with pytest.raises(ImmutableRecord):
        session.commit()
    session.rollback()
    with pytest.raises(ImmutableRecord):
        session.delete(session.get(TermsVersion, w.v1.id))
        session.flush()
    session.rollback()
    # editing the template afterwards changes the draft only
    terms.save_draft(session, T.TERMS, text="# New\nDifferent.", parameters={**T.DEFAULT_PARAMETERS,
                                                                              "governing_law": LAW}, staff=w.admin)
    session.expire_all()
    stored = session.get(TermsVersion, w.v1.id)
    assert stored.text == T.DEFAULT_TERMS_TEXT.strip() + "\n" and stored.sha256 == w.v1.sha256


def test_version_comparison_lists_text_and_parameter_changes(session, w):
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT.replace("Collection costs", "Costs of collection"),
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW, "late_fee_percent": "1"},
                     staff=w.admin)
    v2 = svc.publish(session, runtime(), T.TERMS, staff=w.admin)
    rows, changes = terms.compare(terms.previous_version(session, v2), v2)
    assert ("removed", "## 9. Collection costs") in [(r.op, r.text) for r in rows]
    assert ("added", "## 9. Costs of collection") in [(r.op, r.text) for r in rows]
    assert [(c.old, c.new) for c in changes] == [("1.5", "1")]


# ---------------------------------------------------------------------------------------------------- invitations

def test_invitation_stores_the_rendered_document_and_emails_a_link(session, w, smtp_server):
    agreement = invite(session, w)
    assert agreement.status == "invited" and agreement.reference.startswith("AGR-")
    assert agreement.version_sha256 == w.v1.sha256
    assert agreement.document_sha256 == evidence.sha256_hex(agreement.document_html)
    assert "Harbor Dental Group LLC" in agreement.document_text and "**15 days**" in agreement.document_text
    assert "<strong>15 days</strong>" in agreement.document_html and LAW in agreement.document_html
    variables = json.loads(agreement.merged_variables)
    assert variables["msp_legal_name"] == "Acme IT Services LLC" and variables["net_days"] == "15"
    assert kinds(session, agreement) == ["invited", "email_sent"]
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["dana@harbor.test"]
    body = received.message.get_body(("plain",)).get_content()
    assert f"http://localhost/agreements/{agreement.reference}" in body
    assert svc.verify_events(session, runtime(), agreement).intact


def test_inviting_again_reuses_the_open_invitation(session, w, make, smtp_server):
    first = invite(session, w)
    other = make.contact(w.client, email="owner@harbor.test", name="Sam Owner")
    second = invite(session, w, other)
    assert second.id == first.id and second.invited_contact_id == other.id
    assert kinds(session, first) == ["invited", "email_sent", "invited", "email_sent"]
    assert [m.rcpt_tos for m in smtp_server.messages] == [["dana@harbor.test"], ["owner@harbor.test"]]


def test_invitations_need_published_terms_a_contact_of_the_client_and_portal_access(session, make):
    admin = make.staff()
    client, other = make.client(), make.client()
    contact = make.contact(client)
    meta = svc.Meta(staff_id=admin.id)
    with pytest.raises(DomainError, match="Publish your payment terms"):
        svc.invite(session, runtime(), client, contact, meta=meta)
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW}, staff=admin)
    svc.publish(session, runtime(), T.TERMS, staff=admin)
    with pytest.raises(DomainError, match="another client"):
        svc.invite(session, runtime(), other, contact, meta=meta)
    no_access = make.contact(client, portal_access=False)
    with pytest.raises(DomainError, match="no portal access"):
        svc.invite(session, runtime(), client, no_access, meta=meta)
    assert session.scalar(select(func.count()).select_from(Agreement)) == 0


def test_an_email_the_relay_refuses_is_recorded_as_evidence(session, w, smtp_server):
    smtp_server.reply_next("550 5.7.1 Relay denied")
    agreement = invite(session, w)
    [invited, failed] = svc.events(session, agreement)
    assert failed.kind == "email_failed" and "550" in svc.event_data(failed)["error"]
    assert smtp_server.messages == []


# ---------------------------------------------------------------------------------------------------- signing

def test_the_whole_flow_signs_stores_a_pdf_and_emails_the_copy(session, w, smtp_server, clock):
    agreement = invite(session, w)
    clock.advance(minutes=5)
    meta = prepare(session, agreement, w.contact)
    clock.advance(minutes=3)
    signed = sign(session, agreement, w.contact, meta=meta, signature=drawn())

    assert signed.status == "signed" and signed.open_key is None
    assert signed.signed_at == clock.now() and signed.signed_ip == "203.0.113.7"
    assert (signed.signer_name, signed.signer_title, signed.signer_email) == \
        ("Dana Whitfield", "Office Manager", "dana@harbor.test")
    assert signed.signature_kind == "drawn" and signed.signature_png == png()
    assert signed.pdf_sha256 == evidence.sha256_hex(signed.signed_pdf)
    assert kinds(session, signed) == ["invited", "email_sent", "consented", "viewed"] + \
        ["clause_acknowledged"] * 4 + ["signed", "copy_delivered"]
    rows = svc.events(session, signed)
    signed_event = next(e for e in rows if e.kind == "signed")
    data = svc.event_data(signed_event)
    assert data["version_sha256"] == w.v1.sha256 and data["document_sha256"] == signed.document_sha256
    assert data["signature_sha256"] == evidence.sha256_hex(png())
    assert signed.signed_chain_head == signed_event.hash
    assert (signed_event.ip, signed_event.session_id, signed_event.contact_id) == ("203.0.113.7", "sess-1",
                                                                                   w.contact.id)
    consent = svc.event_data(rows[2])
    disclosure = terms.current_version(session, T.DISCLOSURE)
    assert consent["disclosure_version_sha256"] == disclosure.sha256 and len(consent["disclosure_sha256"]) == 64
    assert svc.verify_events(session, runtime(), signed).intact

    pdf_text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(signed.signed_pdf)).pages)
    for expected in ("Payment Terms", "Harbor Dental Group LLC", "Certificate of signature", "Dana Whitfield",
                     "203.0.113.7", signed.reference):
        assert expected in pdf_text, expected
    assert signed.document_sha256 in pdf_text.replace("\n", "") and signed.signed_chain_head[:16] in pdf_text

    copy = smtp_server.messages[-1].message
    assert smtp_server.messages[-1].rcpt_tos == ["dana@harbor.test"]
    [attachment] = list(copy.iter_attachments())
    assert attachment.get_filename() == f"{signed.reference}-signed.pdf"
    assert attachment.get_content() == signed.signed_pdf


def test_signing_without_consent_is_impossible(session, w):
    agreement = invite(session, w)
    with pytest.raises(DomainError, match="electronically"):
        svc.record_view(session, runtime(), agreement, w.contact, meta=meta_for(w.contact))
    before = snapshot(session, agreement)
    with pytest.raises(DomainError, match="electronically"):
        sign(session, agreement, w.contact)
    assert snapshot(session, agreement) == before
    assert before[0] == "invited" and before[3] is None


def test_signing_without_viewing_the_document_is_impossible(session, w):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact, skip=("view",))
    with pytest.raises(DomainError, match="read the terms"):
        svc.acknowledge(session, runtime(), agreement, w.contact, list(T.CLAUSE_KEYS), meta=meta)
    before = snapshot(session, agreement)
    with pytest.raises(DomainError, match="read the terms"):
        sign(session, agreement, w.contact)
    assert snapshot(session, agreement) == before


@pytest.mark.parametrize("clause", T.HIGH_RISK_CLAUSES, ids=lambda c: c.key)
def test_signing_without_each_clause_acknowledgment_is_impossible(session, w, clause):
    agreement = invite(session, w)
    prepare(session, agreement, w.contact, skip=(clause.key,))
    before = snapshot(session, agreement)
    with pytest.raises(DomainError, match=clause.title) as refused:
        sign(session, agreement, w.contact)
    others = [c.title for c in T.HIGH_RISK_CLAUSES if c.key != clause.key]
    assert not any(title in str(refused.value) for title in others)
    assert snapshot(session, agreement) == before


def test_steps_done_by_another_contact_do_not_count_for_the_signer(session, w, make):
    agreement = invite(session, w)
    colleague = make.contact(w.client, email="colleague@harbor.test", name="Col League")
    prepare(session, agreement, colleague)
    with pytest.raises(DomainError, match="electronically"):
        sign(session, agreement, w.contact)
    assert snapshot(session, agreement)[0] == "invited"


def test_acknowledging_needs_known_clauses(session, w):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact, skip=T.CLAUSE_KEYS)
    for bad in ([], ["remote_disable", "free_lunch"]):
        with pytest.raises(DomainError, match="Tick each statement"):
            svc.acknowledge(session, runtime(), agreement, w.contact, bad, meta=meta)
    assert "clause_acknowledged" not in kinds(session, agreement)


@pytest.mark.parametrize("changes, message", [
    ({"full_name": " "}, "full name"),
    ({"title": ""}, "title"),
    ({"authority_confirmed": False}, "authorized"),
    ({"signature": svc.Signature("typed", typed="")}, "Type your name"),
    ({"signature": svc.Signature("typed", typed="D. W.")}, "match your full name"),
    ({"signature": svc.Signature("drawn", drawn_data_url="data:image/png;base64,AAAA")}, "drawn signature"),
    ({"signature": svc.Signature("stamp")}, "Choose how to sign"),
])
def test_signing_needs_name_title_authority_and_a_signature(session, w, changes, message):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact)
    before = snapshot(session, agreement)
    with pytest.raises(DomainError, match=message):
        sign(session, agreement, w.contact, meta=meta, **changes)
    assert snapshot(session, agreement) == before


def test_a_typed_signature_matching_the_name_signs(session, w):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact)
    signed = sign(session, agreement, w.contact, meta=meta,
                  signature=svc.Signature("typed", typed="  dana   whitfield "))
    assert signed.status == "signed" and signed.signature_text == "dana whitfield" and signed.signature_png is None


def test_a_contact_of_another_client_cannot_act_on_the_agreement(session, w, make):
    agreement = invite(session, w)
    stranger = make.contact(make.client("Other Co"))
    with pytest.raises(NotFound):
        svc.for_client(session, stranger.client_id, agreement.reference)
    disclosure, _ = svc.disclosure_document(session)
    with pytest.raises(NotFound):
        svc.consent(session, runtime(), agreement, stranger, disclosure_version_id=disclosure.id,
                    meta=meta_for(stranger))
    assert kinds(session, agreement) == ["invited", "email_sent"]


# ---------------------------------------------------------------------------------------------------- version binding

def test_a_signature_binds_to_the_version_it_was_invited_on(session, w):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact)
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT + "\n## 14. Extra\nA new clause.\n",
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW}, staff=w.admin)
    v2 = svc.publish(session, runtime(), T.TERMS, staff=w.admin, summary="Adds clause 14")

    session.expire_all()
    old = session.get(Agreement, agreement.id)
    assert old.status == "superseded" and old.open_key is None and kinds(session, old)[-1] == "superseded"
    before = snapshot(session, old)
    with pytest.raises(DomainError, match="newer version"):
        sign(session, old, w.contact, meta=meta)
    assert snapshot(session, old) == before

    new = invite(session, w)
    assert new.id != old.id and new.version_id == v2.id and new.version_sha256 == v2.sha256
    assert new.document_sha256 != old.document_sha256 and "A new clause." in new.document_text
    meta = prepare(session, new, w.contact)
    with pytest.raises(DomainError, match="document changed"):  # the old text's hash cannot sign the new one
        sign(session, new, w.contact, meta=meta, document_sha256=old.document_sha256)
    signed = sign(session, new, w.contact, meta=meta)
    assert svc.event_data(svc.events(session, signed)[-2])["version_sha256"] == v2.sha256


def test_a_stored_document_that_no_longer_matches_its_hash_cannot_be_signed(session, w):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact)
    session.execute(text("UPDATE agreements SET document_html = :h WHERE id = :i"),
                    {"h": agreement.document_html.replace("15 days", "5 days"), "i": agreement.id})
    session.commit()
    session.expire_all()
    with pytest.raises(DomainError, match="document changed"):
        sign(session, session.get(Agreement, agreement.id), w.contact, meta=meta)


# ---------------------------------------------------------------------------------------------------- tamper evidence

@pytest.fixture
def signed(session, w):
    agreement = invite(session, w)
    meta = prepare(session, agreement, w.contact)
    return sign(session, agreement, w.contact, meta=meta)


@pytest.mark.parametrize("column, value", [
    ("ip", "'10.9.9.9'"), ("user_agent", "'forged'"), ("kind", "'declined'"), ("session_id", "'other'"),
    ("data", "'{\"clause\":\"autopay\"}'"), ("hash", "'" + "f" * 64 + "'"),
])
def test_changing_any_stored_event_breaks_chain_verification(session, signed, column, value):
    assert svc.verify_events(session, runtime(), signed).intact
    session.execute(text(f"UPDATE agreement_events SET {column} = {value} WHERE agreement_id = :a AND seq = 4"),  # noqa: S608
                    {"a": signed.id})
    session.commit()
    report = svc.verify_events(session, runtime(), signed)
    assert not report.intact and report.bad_seq in (4, 5)
    result = svc.verify_reference(session, runtime(), signed.reference)
    assert result is not None and not result.chain.intact


def test_changing_an_event_time_breaks_chain_verification(session, signed, clock):
    row = session.scalar(select(AgreementEvent).where(AgreementEvent.agreement_id == signed.id,
                                                      AgreementEvent.kind == "signed"))
    session.execute(text("UPDATE agreement_events SET occurred_at = :t WHERE id = :i"),
                    {"t": clock.now().replace(tzinfo=None, hour=9), "i": row.id})
    session.commit()
    assert not svc.verify_events(session, runtime(), signed).intact


def test_deleting_the_newest_events_breaks_chain_verification(session, signed):
    session.execute(text("DELETE FROM agreement_events WHERE agreement_id = :a AND seq >= 9"), {"a": signed.id})
    session.commit()
    report = svc.verify_events(session, runtime(), signed)
    assert not report.intact and "events were recorded" in report.problem


def test_events_cannot_be_changed_or_deleted_through_the_code(session, signed):
    row = svc.events(session, signed)[0]
    row.ip = "10.0.0.1"
    with pytest.raises(ImmutableRecord):
        session.commit()
    session.rollback()
    with pytest.raises(ImmutableRecord):
        session.delete(svc.events(session, signed)[0])
        session.flush()
    session.rollback()
    assert svc.verify_events(session, runtime(), signed).intact


def test_two_events_cannot_share_a_place_in_the_chain(session, signed):
    from sqlalchemy.exc import IntegrityError

    first = svc.events(session, signed)[0]
    session.add(AgreementEvent(agreement_id=signed.id, seq=1, kind="signed", occurred_at=first.occurred_at,
                               prev_hash=evidence.GENESIS, hash="0" * 64, data="{}"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


# ---------------------------------------------------------------------------------------------------- verification

def test_the_exact_pdf_verifies_and_one_changed_byte_does_not(session, signed):
    result = svc.verify_pdf(session, runtime(), signed.signed_pdf)
    assert result is not None and result.agreement.id == signed.id and result.pdf_match
    assert result.chain.intact and result.document_intact and result.signed
    altered = bytearray(signed.signed_pdf)
    altered[len(altered) // 2] ^= 0x01
    assert svc.verify_pdf(session, runtime(), bytes(altered)) is None
    assert svc.verify_pdf(session, runtime(), signed.signed_pdf + b"\n") is None
    assert svc.verify_pdf(session, runtime(), b"") is None


def test_verification_by_reference_tolerates_how_people_type_it(session, signed):
    typed = signed.reference.lower().replace("-", " ")
    result = svc.verify_reference(session, runtime(), typed)
    assert result is not None and result.agreement.id == signed.id and result.pdf_match is None
    assert svc.verify_reference(session, runtime(), "AGR-0000-0000-0000") is None
    assert svc.verify_reference(session, runtime(), "nonsense") is None


def test_a_stored_pdf_that_was_swapped_is_reported(session, signed):
    session.execute(text("UPDATE agreements SET signed_pdf = :p WHERE id = :i"), {"p": b"%PDF-forged", "i": signed.id})
    session.commit()
    result = svc.verify_reference(session, runtime(), signed.reference)
    assert result is not None and not result.document_intact


# ---------------------------------------------------------------------------------------------------- re-consent

def test_new_version_marks_signers_outdated_and_signing_it_supersedes_the_old(session, w, signed):
    assert terms.client_status(session, w.client).label == "Signed v1"
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW, "late_fee_percent": "1"},
                     staff=w.admin)
    svc.publish(session, runtime(), T.TERMS, staff=w.admin)
    session.expire_all()
    old = session.get(Agreement, signed.id)
    assert old.status == "signed" and old.outdated_at is not None and kinds(session, old)[-1] == "outdated"
    status = terms.client_status(session, w.client)
    assert status.status == "outdated" and status.label == "Outdated (signed v1)"
    assert svc.needs_terms(session, w.client.id)

    new = svc.terms_for_contact(session, runtime(), w.contact, meta=meta_for(w.contact))
    assert new.status == "invited" and new.version.number == 2
    assert svc.previous_signed(session, new).id == old.id
    diff = evidence.line_diff(old.document_text, new.document_text)
    assert [(r.op, "1.5%" in r.text) for r in diff if r.op != "same" and r.op != "skipped"] == \
        [("removed", True), ("added", False)]
    meta = prepare(session, new, w.contact)
    sign(session, new, w.contact, meta=meta)

    session.expire_all()
    old = session.get(Agreement, signed.id)
    assert old.status == "superseded" and old.superseded_at is not None and old.signed_pdf is not None
    assert svc.verify_pdf(session, runtime(), old.signed_pdf).agreement.id == old.id
    assert terms.client_status(session, w.client).label == "Signed v2"
    assert not svc.needs_terms(session, w.client.id)
    assert svc.verify_events(session, runtime(), old).intact


def test_needs_terms_only_when_published_and_not_settled(session, make):
    client = make.client()
    contact = make.contact(client)
    assert not svc.needs_terms(session, client.id)  # nothing published yet
    admin = make.staff()
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": LAW}, staff=admin)
    svc.publish(session, runtime(), T.TERMS, staff=admin)
    assert svc.needs_terms(session, client.id)
    agreement = svc.terms_for_contact(session, runtime(), contact, meta=meta_for(contact))
    assert svc.needs_terms(session, client.id)  # invited is not settled
    assert svc.terms_for_contact(session, runtime(), contact, meta=meta_for(contact)).id == agreement.id
    svc.decline(session, runtime(), agreement, contact, reason="Our lawyer will call you.", meta=meta_for(contact))
    assert not svc.needs_terms(session, client.id)


# ---------------------------------------------------------------------------------------------------- decline / void

def test_decline_records_the_reason_and_closes_the_invitation(session, w):
    agreement = invite(session, w)
    svc.decline(session, runtime(), agreement, w.contact, reason="Clause 6 is unacceptable.", meta=meta_for(w.contact))
    session.expire_all()
    agreement = session.get(Agreement, agreement.id)
    assert agreement.status == "declined" and agreement.decline_reason == "Clause 6 is unacceptable."
    assert terms.client_status(session, w.client).status == "declined"
    with pytest.raises(DomainError, match="declined"):
        sign(session, agreement, w.contact)


def test_void_an_unsigned_invitation_only(session, w, signed):
    with pytest.raises(DomainError, match="Only an unsigned invitation"):
        svc.void(session, runtime(), signed, reason="oops", meta=w.staff_meta)
    assert session.get(Agreement, signed.id).status == "signed"


def test_void_needs_a_reason_and_stops_signing(session, w):
    agreement = invite(session, w)
    with pytest.raises(DomainError, match="Say why"):
        svc.void(session, runtime(), agreement, reason="  ", meta=w.staff_meta)
    svc.void(session, runtime(), agreement, reason="Wrong contact", meta=w.staff_meta)
    session.expire_all()
    agreement = session.get(Agreement, agreement.id)
    assert agreement.status == "void" and agreement.void_reason == "Wrong contact"
    assert kinds(session, agreement)[-1] == "voided"
    with pytest.raises(DomainError, match="void"):
        sign(session, agreement, w.contact)
    with pytest.raises(DomainError, match="Only an open invitation"):
        svc.resend(session, runtime(), agreement, meta=w.staff_meta)
    assert invite(session, w).id != agreement.id  # a fresh invitation can follow


def test_signed_clients_cannot_be_invited_to_the_same_version(session, w, signed):
    with pytest.raises(Conflict, match="already signed version 1"):
        invite(session, w)


# ---------------------------------------------------------------------------------------------------- reminders

def test_reminders_go_to_clients_that_have_not_signed_and_not_too_often(session, w, make, smtp_server, clock):
    signed_client = make.client("Signed Co")
    signer = make.contact(signed_client, email="ap@signed.test")
    a = svc.invite(session, runtime(), signed_client, signer, meta=w.staff_meta)
    sign(session, a, signer, meta=prepare(session, a, signer), full_name="Pat Signer",
         signature=svc.Signature("typed", typed="Pat Signer"))
    make.client("No Contacts Co")
    smtp_server.reset()

    run = svc.remind_outstanding(session, runtime(), meta=w.staff_meta)
    assert (run.sent, run.failed, run.skipped) == (1, 0, 1)
    [message] = smtp_server.messages
    assert message.rcpt_tos == ["dana@harbor.test"] and message.message["Subject"].startswith("Reminder:")
    open_ = svc.open_invitation(session, w.client.id, w.v1)
    assert svc.event_data(svc.events(session, open_)[-1])["purpose"] == "reminder"

    again = svc.remind_outstanding(session, runtime(), meta=w.staff_meta)
    assert (again.sent, again.skipped) == (0, 2)
    clock.advance(days=3)
    assert svc.remind_outstanding(session, runtime(), meta=w.staff_meta).sent == 1
