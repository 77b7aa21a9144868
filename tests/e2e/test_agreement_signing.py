"""End to end in headless Chromium: an invited contact signs in through the emailed links, consents, reads the
terms, acknowledges each key clause, draws a signature on the canvas with the mouse, signs, downloads the signed
PDF, and the public verification page confirms that exact file."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from portal.domain import evidence
from portal.domain import terms as T
from portal.models import Agreement
from portal.services import agreements as svc
from portal.services import terms
from portal.services.settings import update_settings
from portal.web.runtime import runtime

pytestmark = pytest.mark.e2e


def emails(outbox) -> list:
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]


def link_in(message) -> str:
    return re.search(r"https?://\S+", message.get_body(("plain",)).get_content()).group(0)


def test_invited_contact_signs_with_a_drawn_signature_and_verifies_the_pdf(page, live_server, session, make, outbox,
                                                                           tmp_path):
    update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme.test")
    admin = make.staff()
    client = make.client("Harbor Dental Group LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield", title="Office Manager")
    terms.save_draft(session, T.TERMS, text=T.DEFAULT_TERMS_TEXT,
                     parameters={**T.DEFAULT_PARAMETERS, "governing_law": "the laws of the State of Ohio"}, staff=admin)
    svc.publish(session, runtime(), T.TERMS, staff=admin)
    invitation = svc.invite(session, runtime(), client, contact, meta=svc.Meta(staff_id=admin.id))

    # The invitation email links to the signing page, which asks the contact to sign in first.
    [invite_mail] = emails(outbox)
    assert invite_mail["To"] == "dana@harbor.test"
    page.goto(link_in(invite_mail))
    assert "/login" in page.url
    page.fill("input[type=email]", "dana@harbor.test")
    page.locator("form").first.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/login/sent"))
    sign_in_mail = next(m for m in emails(outbox) if m["Subject"] != invite_mail["Subject"])
    page.goto(link_in(sign_in_mail))
    page.get_by_role("button", name="Sign in").click()

    # Signed in, the contact is taken to the open invitation.
    page.wait_for_url(re.compile(rf"/agreements/{invitation.reference}$"))

    # 1. Consent to electronic records
    assert page.get_by_role("heading", name="Step 1: doing business electronically").is_visible()
    page.get_by_label(re.compile("agree to receive records and sign documents electronically")).check()
    page.get_by_role("button", name="Agree and continue").click()

    # 2. The full terms, exactly as stored, then one acknowledgment per high-risk clause
    page.wait_for_selector("#acknowledge")
    assert page.inner_text("#document-hash") == invitation.document_sha256
    assert "Remote disabling of systems" in page.inner_text("#terms .document")
    for clause in T.HIGH_RISK_CLAUSES:
        page.locator(f"input[name={clause.key}]").check()
    page.get_by_role("button", name="Continue to signing").click()

    # 3. Signer details and a signature drawn with the mouse
    page.wait_for_selector("#sign-form")
    page.get_by_label("Your full name", exact=True).fill("Dana Whitfield")
    page.get_by_label("Your title", exact=True).fill("Office Manager")
    page.get_by_label(re.compile("authorized to sign on behalf of Harbor Dental Group LLC")).check()
    page.get_by_label("Draw my signature").check()
    assert page.locator("input[name=typed_signature]").is_hidden()
    canvas = page.locator("#signature-canvas")
    # hovering waits until the canvas is in view and has stopped moving (the section above it was just shown), so
    # the box below is where the pointer really lands, on a loaded machine too
    canvas.hover()
    box = canvas.bounding_box()
    x, y = box["x"], box["y"]
    page.mouse.move(x + 30, y + 120)
    page.mouse.down()
    for step in range(1, 25):
        page.mouse.move(x + 30 + step * 14, y + 120 - (step % 6) * 15, steps=2)
    page.mouse.up()
    page.mouse.move(x + 80, y + 60)
    page.mouse.down()
    page.mouse.move(x + 200, y + 140, steps=8)
    page.mouse.up()
    drawn = page.locator("input[name=drawn_signature]").input_value()
    assert drawn.startswith("data:image/png;base64,"), "the strokes did not reach the signature pad"
    page.get_by_role("button", name="Sign", exact=True).click()

    page.wait_for_selector("#signed")
    assert "Signed. A copy is on its way" in page.inner_text("main")
    session.expire_all()
    agreement = session.scalar(select(Agreement).where(Agreement.id == invitation.id))
    assert agreement.status == "signed" and agreement.signature_kind == "drawn"
    assert agreement.signature_png == evidence.decode_signature_png(drawn)
    assert agreement.signer_name == "Dana Whitfield" and agreement.signed_ip == "127.0.0.1"
    kinds = [e.kind for e in svc.events(session, agreement)]
    assert kinds[:2] == ["invited", "email_sent"] and kinds[-2:] == ["signed", "copy_delivered"]
    assert {"opened", "consented", "viewed"} <= set(kinds) and kinds.count("clause_acknowledged") == 4
    assert "HeadlessChrome" in svc.events(session, agreement)[-2].user_agent

    # Download the signed PDF: the exact stored bytes
    with page.expect_download() as info:
        page.get_by_role("link", name="Download signed PDF").click()
    download = info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert download.suggested_filename == f"{agreement.reference}-signed.pdf"
    assert saved.read_bytes() == agreement.signed_pdf

    # The public verification page confirms that file
    page.goto("/verify")
    page.set_input_files("input[type=file]", str(saved))
    page.get_by_role("button", name="Check the file").click()
    result = page.locator("#verify-result")
    result.wait_for()
    assert result.get_attribute("data-outcome") == "match"
    assert f"This file matches signed agreement {agreement.reference} exactly" in result.inner_text()
    assert "Dana Whitfield, Office Manager" in result.inner_text()
    assert page.inner_text("#chain-status").startswith("Intact")
