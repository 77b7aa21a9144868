"""The contact signing pages: each step over HTTP, what the page shows, what the database records, who may see it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.domain import terms as T
from portal.models import Agreement
from portal.services import agreements as svc
from portal.web.runtime import runtime
from tests.conftest import sign_in

from .conftest import assert_clean, png_data_url, publish_terms, sign_typed, walk

ALL_ACKS = {key: "y" for key in T.CLAUSE_KEYS}


def kinds(session, agreement) -> list[str]:
    session.expire_all()
    return [e.kind for e in svc.events(session, session.get(Agreement, agreement.id))]


def fresh(session, agreement) -> Agreement:
    session.expire_all()
    return session.get(Agreement, agreement.id)


@pytest.fixture
def portal(http, world):
    sign_in(http, world.contact)
    return http


def sign_data(agreement, **changes) -> dict:
    data = {"document_sha256": agreement.document_sha256, "full_name": "Dana Whitfield", "title": "Office Manager",
            "authority": "y", "signature_kind": "drawn", "drawn_signature": png_data_url(), "typed_signature": ""}
    data.update(changes)
    return data


def test_the_whole_flow_over_http(portal, session, world, invitation, outbox):
    url = f"/agreements/{invitation.reference}"
    consent_page = portal.get(url)
    body = consent_page.get_data(as_text=True)
    assert consent_page.status_code == 200
    assert "Step 1: doing business electronically" in body and "right to a paper copy" in body.lower()
    assert "Acme IT Services LLC" in body and "1. When invoices are due" not in body  # the terms come after consent
    assert kinds(session, invitation)[-1] == "opened"
    assert_clean(body, url)

    response = portal.post(f"{url}/consent", data={"disclosure_version_id": _disclosure_id(session), "agree": "y"})
    assert response.status_code == 302 and response.headers["Location"].endswith(url)

    review = portal.get(url).get_data(as_text=True)
    assert invitation.document_html in review  # exactly the stored, hashed document
    assert invitation.document_sha256 in review
    for clause in T.HIGH_RISK_CLAUSES:
        assert clause.title in review
    assert "45 days past due" in review and "10 days&#39; written notice" in review
    assert kinds(session, invitation)[-2:] == ["consented", "viewed"]

    response = portal.post(f"{url}/acknowledge", data=ALL_ACKS)
    assert response.status_code == 302
    sign_page = portal.get(url).get_data(as_text=True)
    assert 'id="signature-canvas"' in sign_page and "signature-pad.js" in sign_page
    assert "authorized to sign on behalf of Harbor Dental Group LLC" in sign_page
    assert_clean(sign_page, url)

    response = portal.post(f"{url}/sign", data=sign_data(invitation))
    assert response.status_code == 302
    agreement = fresh(session, invitation)
    assert agreement.status == "signed" and agreement.signature_kind == "drawn"
    assert agreement.signer_contact_id == world.contact.id and agreement.signed_ip == "127.0.0.1"
    events = svc.events(session, agreement)
    signed_event = next(e for e in events if e.kind == "signed")
    assert signed_event.user_agent.startswith("Werkzeug") and len(signed_event.session_id) == 32
    assert len({e.session_id for e in events if e.contact_id == world.contact.id}) == 1

    done = portal.get(url).get_data(as_text=True)
    assert "Download signed PDF" in done and "Signed. A copy is on its way" in done
    pdf = portal.get(f"{url}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data == agreement.signed_pdf
    assert f"{agreement.reference}-signed.pdf" in pdf.headers["Content-Disposition"]
    assert len(list(outbox.glob("*.eml"))) == 2  # the invitation and the signed copy


def _disclosure_id(session) -> str:
    version, _ = svc.disclosure_document(session)
    return str(version.id)


def test_reloading_a_step_does_not_flood_the_evidence(portal, session, invitation):
    url = f"/agreements/{invitation.reference}"
    portal.get(url)
    portal.get(url)
    portal.post(f"{url}/consent", data={"disclosure_version_id": _disclosure_id(session), "agree": "y"})
    portal.get(url)
    portal.get(url)
    assert kinds(session, invitation) == ["invited", "email_sent", "opened", "consented", "viewed"]


def test_consent_needs_the_box_ticked(portal, session, invitation):
    url = f"/agreements/{invitation.reference}"
    response = portal.post(f"{url}/consent", data={"disclosure_version_id": _disclosure_id(session)})
    assert response.status_code == 400
    assert "Tick the box to agree" in response.get_data(as_text=True)
    assert "consented" not in kinds(session, invitation)


def test_consent_to_a_stale_disclosure_is_refused(portal, session, invitation):
    url = f"/agreements/{invitation.reference}"
    response = portal.post(f"{url}/consent", data={"disclosure_version_id": "999999", "agree": "y"},
                           follow_redirects=True)
    assert "The disclosure was updated" in response.get_data(as_text=True)
    assert "consented" not in kinds(session, invitation)


@pytest.mark.parametrize("missing", T.CLAUSE_KEYS)
def test_every_clause_must_be_ticked(portal, session, world, invitation, missing):
    url = f"/agreements/{invitation.reference}"
    portal.post(f"{url}/consent", data={"disclosure_version_id": _disclosure_id(session), "agree": "y"})
    portal.get(url)
    response = portal.post(f"{url}/acknowledge", data={k: v for k, v in ALL_ACKS.items() if k != missing})
    assert response.status_code == 400
    assert "Tick this statement to acknowledge it." in response.get_data(as_text=True)
    assert "clause_acknowledged" not in kinds(session, invitation)


def test_posting_the_signature_straight_away_is_refused_by_the_service(portal, session, invitation):
    """Skipping the pages skips nothing: the service checks consent, view and acknowledgments itself."""
    url = f"/agreements/{invitation.reference}"
    before = kinds(session, invitation)
    response = portal.post(f"{url}/sign", data=sign_data(invitation))
    assert response.status_code == 400
    assert "agree to do business electronically first" in response.get_data(as_text=True)
    assert fresh(session, invitation).status == "invited"
    assert kinds(session, invitation) == before + ["opened"]  # re-showing the page recorded only the visit


def _refusal(response) -> tuple[int, str, bool]:
    """What a refused step answers: its status, the reason shown, and whether it is the consent page again."""
    body = response.get_data(as_text=True)
    reason = re.search(r'class="flash[^"]*error[^"]*"[^>]*>\s*([^<]+?)\s*<', body)
    return response.status_code, reason.group(1) if reason else "", 'name="disclosure_version_id"' in body


def test_acknowledging_and_signing_before_consent_are_refused_the_same_way(portal, session, invitation):
    url = f"/agreements/{invitation.reference}"
    portal.get(url)
    before = kinds(session, invitation)
    acknowledged = _refusal(portal.post(f"{url}/acknowledge", data=ALL_ACKS))
    signed = _refusal(portal.post(f"{url}/sign", data=sign_data(invitation)))
    assert acknowledged == signed == (400, "Please agree to do business electronically first.", True)
    assert kinds(session, invitation) == before and fresh(session, invitation).status == "invited"


@pytest.mark.parametrize("changes, message", [
    ({"full_name": ""}, "Enter your full name."),
    ({"title": ""}, "Enter your title."),
    ({"authority": ""}, "Confirm that you are authorized"),
    ({"drawn_signature": ""}, "Draw your signature in the box"),
    ({"drawn_signature": "data:image/png;base64,bm90IGEgcG5n"}, "could not be read"),
    ({"signature_kind": "typed", "typed_signature": "Someone Else"}, "must match your full name"),
    ({"signature_kind": "stamp"}, "Not a valid choice"),
    ({"document_sha256": "0" * 64}, "The document changed"),
    ({"document_sha256": "nothex"}, "This page is out of date"),
    ({"drawn_signature": "data:image/png;base64," + "A" * 600_000}, "too large"),
])
def test_bad_signatures_re_show_the_form_and_change_nothing(portal, session, world, invitation, changes, message):
    walk(session, invitation, world.contact)
    before = kinds(session, invitation)
    response = portal.post(f"/agreements/{invitation.reference}/sign", data=sign_data(invitation, **changes))
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in body
    assert 'id="sign-form"' in body
    agreement = fresh(session, invitation)
    assert agreement.status == "invited" and agreement.signed_pdf is None
    assert "signed" not in kinds(session, invitation)
    assert len(kinds(session, invitation)) >= len(before)


def test_typed_signature_signs(portal, session, world, invitation):
    walk(session, invitation, world.contact)
    response = portal.post(f"/agreements/{invitation.reference}/sign",
                           data=sign_data(invitation, signature_kind="typed", typed_signature="Dana Whitfield",
                                          drawn_signature=""))
    assert response.status_code == 302
    agreement = fresh(session, invitation)
    assert agreement.status == "signed" and agreement.signature_text == "Dana Whitfield"


def test_a_new_version_published_mid_flow_sends_the_contact_to_the_new_terms(portal, session, world, invitation):
    walk(session, invitation, world.contact)
    v2 = publish_terms(session, world.admin, late_fee_percent="1")
    url = f"/agreements/{invitation.reference}"
    response = portal.post(f"{url}/sign", data=sign_data(invitation))
    assert response.status_code == 400 and "newer version" in response.get_data(as_text=True)
    assert fresh(session, invitation).status == "superseded"
    page = portal.get(url).get_data(as_text=True)
    assert "A newer version replaced these terms" in page
    response = portal.get("/agreements/terms")
    new = session.scalar(select(Agreement).where(Agreement.version_id == v2.id))
    assert response.headers["Location"].endswith(f"/agreements/{new.reference}")


def test_decline(portal, session, invitation):
    url = f"/agreements/{invitation.reference}"
    response = portal.post(f"{url}/decline", data={"reason": "Clause 6 needs a call."}, follow_redirects=True)
    assert "You declined the terms" in response.get_data(as_text=True)
    agreement = fresh(session, invitation)
    assert agreement.status == "declined" and agreement.decline_reason == "Clause 6 needs a call."
    response = portal.post(f"{url}/decline", data={"reason": "x" * 2001}, follow_redirects=True)
    assert "under 2,000 characters" in response.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------- access

def test_a_contact_of_another_client_gets_404_everywhere(http, session, world, invitation):
    sign_in(http, world.other_contact)
    url = f"/agreements/{invitation.reference}"
    before = kinds(session, invitation)
    assert http.get(url).status_code == 404
    assert http.get(f"{url}/pdf").status_code == 404
    for step, data in (("consent", {"disclosure_version_id": _disclosure_id(session), "agree": "y"}),
                       ("acknowledge", ALL_ACKS), ("sign", sign_data(invitation)), ("decline", {})):
        assert http.post(f"{url}/{step}", data=data).status_code == 404, step
    assert kinds(session, invitation) == before
    assert invitation.reference not in http.get("/agreements/").get_data(as_text=True)


def test_unknown_references_are_404(portal):
    assert portal.get("/agreements/AGR-0000-0000-0000").status_code == 404
    assert portal.get("/agreements/nonsense").status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in_and_back(http, invitation):
    response = http.get(f"/agreements/{invitation.reference}")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"] and invitation.reference in response.headers["Location"]


def test_staff_use_the_admin_pages_instead(http, world, invitation):
    sign_in(http, world.admin)
    assert http.get(f"/agreements/{invitation.reference}").status_code == 403


# ---------------------------------------------------------------------------------------------------- first sign-in

def test_the_dashboard_sends_the_contact_to_sign_once_per_session(portal, session, world):
    response = portal.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/agreements/terms")
    response = portal.get("/agreements/terms")
    agreement = session.scalar(select(Agreement).where(Agreement.client_id == world.client.id))
    assert response.headers["Location"].endswith(f"/agreements/{agreement.reference}")
    assert agreement.status == "invited" and kinds(session, agreement) == ["invited"]
    assert portal.get("/").status_code == 200  # "Not now" is allowed: asked once per session
    assert portal.get("/agreements/terms").headers["Location"].endswith(agreement.reference)  # no duplicate
    assert session.scalar(select(func.count()).select_from(Agreement)) == 1


def test_no_prompt_when_signed_or_when_nothing_is_published(http, session, world, signed):
    sign_in(http, world.contact)
    assert http.get("/").status_code == 200
    sign_in(http, world.other_contact)
    assert http.get("/").status_code == 302  # the neighbour has not signed


def test_no_prompt_without_published_terms(http, make):
    contact = make.contact(make.client())
    sign_in(http, contact)
    assert http.get("/").status_code == 200
    response = http.get("/agreements/terms", follow_redirects=True)
    assert "no payment terms to sign" in response.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------- after signing

def test_list_and_re_consent_with_a_readable_diff(portal, session, world, signed):
    listing = portal.get("/agreements/").get_data(as_text=True)
    assert signed.reference in listing and "Signed" in listing
    publish_terms(session, world.admin, late_fee_percent="1")
    old_page = portal.get(f"/agreements/{signed.reference}").get_data(as_text=True)
    assert "A newer version of these terms was published" in old_page
    assert portal.get(f"/agreements/{signed.reference}/pdf").data == fresh(session, signed).signed_pdf

    new_url = portal.get("/agreements/terms").headers["Location"]
    portal.post(f"{new_url}/consent", data={"disclosure_version_id": _disclosure_id(session), "agree": "y"})
    review = portal.get(new_url).get_data(as_text=True)
    assert "What changed since the version you signed" in review
    assert "<del>" in review and "1.5%" in review and "<ins>" in review
    assert_clean(review, new_url)


def test_newly_published_terms_are_asked_for_on_the_next_page_view(portal, session, world, signed):
    assert portal.get("/invoices").status_code == 200  # signed: browsing as usual
    publish_terms(session, world.admin, late_fee_percent="1")

    response = portal.get("/invoices")  # the same session, any page of the account
    assert response.status_code == 302 and response.headers["Location"].endswith("/agreements/terms")
    # asked once per version: then a banner on every page, so the contact may look around before signing
    page = portal.get("/invoices")
    assert page.status_code == 200 and "New payment terms were published" in page.get_data(as_text=True)
    listing = portal.get("/agreements/").get_data(as_text=True)
    assert "Signed, outdated" in listing and "Sign the new version" in listing

    publish_terms(session, world.admin, late_fee_percent="1.25")  # and another version: asked again
    assert portal.get("/").headers["Location"].endswith("/agreements/terms")


def test_the_signer_sees_the_changes_as_formatted_text(portal, session, world, signed):
    publish_terms(session, world.admin, late_fee_percent="1")
    new_url = portal.get("/agreements/terms").headers["Location"]
    portal.post(f"{new_url}/consent", data={"disclosure_version_id": _disclosure_id(session), "agree": "y"})
    review = portal.get(new_url).get_data(as_text=True)
    changes = review[review.index('id="changes"'):review.index('id="terms"')]
    assert "**" not in changes and "## " not in changes  # no raw markdown
    assert re.search(r"<del><span class=\"visually-hidden\">Removed: </span><p>.*<strong>1\.5%", changes, re.S)
    assert re.search(r"<ins><span class=\"visually-hidden\">Added: </span><p>.*<strong>1%", changes, re.S)


def test_superseded_agreements_stay_downloadable(portal, session, world, signed):
    publish_terms(session, world.admin, late_fee_percent="1")
    new = svc.terms_for_contact(session, runtime(), world.contact, meta=svc.Meta())
    sign_typed(session, new, world.contact)
    assert fresh(session, signed).status == "superseded"
    page = portal.get(f"/agreements/{signed.reference}").get_data(as_text=True)
    assert "Signed, then replaced by a newer version" in page
    assert portal.get(f"/agreements/{signed.reference}/pdf").data == fresh(session, signed).signed_pdf
