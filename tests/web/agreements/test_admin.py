"""Staff pages for terms: editing and publishing versions, who is on which version, invitations and evidence."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from portal.domain import terms as T
from portal.models import Agreement, Client, TermsVersion
from portal.services import agreements as svc
from portal.services import terms
from portal.web.runtime import runtime
from tests.conftest import sign_in

from .conftest import LAW, assert_clean, publish_terms, sign_typed


@pytest.fixture
def admin(http, world):
    sign_in(http, world.admin)
    return http


def params(**changes) -> dict:
    return {**T.DEFAULT_PARAMETERS, "governing_law": LAW, **changes}


def version_count(session, kind=T.TERMS) -> int:
    return session.scalar(select(func.count()).select_from(TermsVersion).where(TermsVersion.kind == kind))


# ---------------------------------------------------------------------------------------------------- templates

def test_template_page_warns_about_local_law_and_previews_the_draft(admin):
    page = admin.get("/admin/agreements/templates/terms")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="law-warning"' in body and "checked against the law" in body
    assert "Example Client LLC" in body and "Remote disabling of systems" in body
    assert "Version 1" in body and "Publish version 2" in body
    assert_clean(body, "/admin/agreements/templates/terms")



@pytest.mark.parametrize("kind", T.TEMPLATE_KINDS)
def test_every_document_kind_has_a_tab_and_its_shipped_text_previews_without_a_merge_error(admin, kind):
    page = admin.get(f"/admin/agreements/templates/{kind}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f'href="/admin/agreements/templates/{kind}" class="active"' in body
    assert "Example Client LLC" in body or kind == T.DISCLOSURE  # the disclosure names no client
    assert '<p class="field-error">' not in body  # the preview merged
    assert_clean(body, f"/admin/agreements/templates/{kind}")

def test_saving_the_draft_never_changes_a_published_version(admin, session, world):
    response = admin.post("/admin/agreements/templates/terms",
                          data={"body": "# Terms\n\nPay within {{ net_days }} days.", **params(grace_days="10")})
    assert response.status_code == 302
    session.expire_all()
    template = terms.get_template(session, T.TERMS)
    assert template.draft_text == "# Terms\n\nPay within {{ net_days }} days.\n"
    assert terms.draft_parameters(template)["grace_days"] == "10"
    v1 = session.get(TermsVersion, world.v1.id)
    assert v1.text == T.DEFAULT_TERMS_TEXT.strip() + "\n" and v1.sha256 == world.v1.sha256
    assert "has changes that are not published" in admin.get("/admin/agreements/templates/terms").get_data(
        as_text=True)


@pytest.mark.parametrize("changes, message", [
    ({"body": ""}, "The text cannot be empty."),
    ({"body": "Fee {{ late_fees }}"}, "unknown merge variables"),
    ({"late_fee_percent": "twelve"}, "enter a number"),
    ({"remote_disable_notice_days": "0"}, "from 1 to 90"),
    ({"grace_days": ""}, "enter a number"),
])
def test_bad_drafts_are_refused_and_nothing_changes(admin, session, changes, message):
    before = terms.get_template(session, T.TERMS).draft_text
    response = admin.post("/admin/agreements/templates/terms",
                          data={"body": T.DEFAULT_TERMS_TEXT, **params(), **changes})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    session.expire_all()
    assert terms.get_template(session, T.TERMS).draft_text == before


def test_publishing_needs_the_law_check_and_a_change(admin, session, world):
    response = admin.post("/admin/agreements/templates/terms/publish", data={"summary": "x"}, follow_redirects=True)
    assert "Confirm the clauses were checked against local law." in response.get_data(as_text=True)
    response = admin.post("/admin/agreements/templates/terms/publish", data={"law_checked": "y"},
                          follow_redirects=True)
    assert "Nothing changed since version 1" in response.get_data(as_text=True)
    assert version_count(session) == 1


def test_publishing_a_new_version_shows_its_changes_and_marks_signers_outdated(admin, session, world):
    agreement = svc.invite(session, runtime(), world.client, world.contact, meta=svc.Meta())
    sign_typed(session, agreement, world.contact)
    admin.post("/admin/agreements/templates/terms",
               data={"body": T.DEFAULT_TERMS_TEXT.replace("Collection costs", "Costs of collection"),
                     **params(late_fee_percent="1")})
    response = admin.post("/admin/agreements/templates/terms/publish",
                          data={"law_checked": "y", "summary": "Lower late fee"})
    v2 = session.scalar(select(TermsVersion).where(TermsVersion.number == 2, TermsVersion.kind == T.TERMS))
    assert response.headers["Location"].endswith(f"/admin/agreements/versions/{v2.id}")
    page = admin.get(f"/admin/agreements/versions/{v2.id}").get_data(as_text=True)
    assert "Changes since version 1" in page and "Lower late fee" in page and v2.sha256 in page
    assert "<del>1.5</del>" in page and "<ins>1</ins>" in page
    assert "<del>## 9. Collection costs</del>" in page and "<ins>## 9. Costs of collection</ins>" in page

    overview = admin.get("/admin/agreements/?status=outdated").get_data(as_text=True)
    assert "Harbor Dental Group LLC" in overview and "Outdated (signed v1)" in overview
    assert "Bayside Law PC" not in overview
    assert "Harbor Dental Group LLC" not in admin.get("/admin/agreements/?status=signed").get_data(as_text=True)


def test_a_published_version_has_no_way_to_be_edited(admin, world):
    url = f"/admin/agreements/versions/{world.v1.id}"
    assert admin.get(url).status_code == 200
    assert admin.post(url, data={"text": "changed"}).status_code == 405
    assert "cannot be edited" in admin.get(url).get_data(as_text=True)


def test_the_disclosure_is_versioned_the_same_way(admin, session, world):
    body = admin.get("/admin/agreements/templates/esign_disclosure").get_data(as_text=True)
    assert "Consent to electronic records" in body and 'id="law-warning"' not in body
    admin.post("/admin/agreements/templates/esign_disclosure", data={"body": T.DEFAULT_DISCLOSURE_TEXT + "\nMore.\n"})
    admin.post("/admin/agreements/templates/esign_disclosure/publish", data={"law_checked": "y"})
    assert version_count(session, T.DISCLOSURE) == 1
    assert admin.get("/admin/agreements/templates/nonsense").status_code == 404


# ---------------------------------------------------------------------------------------------------- clients

def test_overview_lists_every_client_with_its_status(admin, session, world, signed):
    body = admin.get("/admin/agreements/").get_data(as_text=True)
    assert "Signed v1" in body and "Bayside Law PC" in body and "Unsigned" in body
    bayside = body[body.index("Bayside Law PC"):]
    bayside = bayside[:bayside.index("</tr>")]
    assert bayside.count("Unsigned") == 1  # once, not "Unsigned Unsigned"
    harbor = body[body.index("Harbor Dental Group LLC"):]
    assert harbor[:harbor.index("</tr>")].count("Signed") == 1
    assert "Remind everyone who has not signed v1" in body
    assert_clean(body, "/admin/agreements/")


def test_overview_shows_a_page_of_clients_at_a_time_with_every_count(admin, session, make, world, signed):
    """The counts cover every client; the table a page of 25 (all of 10,000 clients took half a second to draw),
    the status filter kept from page to page."""
    for n in range(30):
        make.client(f"Unsigned Client {n:02d}")
    first = admin.get("/admin/agreements/").get_data(as_text=True)
    assert first.count('<tr data-client=') == 25 and "Page 1 of 2 · 32 in all" in first
    assert '<div class="value">31</div>' in first  # not invited: Bayside and the 30 new clients
    second = admin.get("/admin/agreements/?status=unsigned&page=2").get_data(as_text=True)
    assert second.count('<tr data-client=') == 6 and "Page 2 of 2 · 31 in all" in second
    assert 'href="/admin/agreements/?status=unsigned&amp;page=1"' in second and "Harbor Dental" not in second
    assert admin.get("/admin/agreements/?page=99").get_data(as_text=True).count('<tr data-client=') == 7


def test_the_overviews_counts_and_pages_agree_with_each_clients_own_status(admin, session, make, world):
    """The overview works out every client's standing from compact rows (whole records only for the page shown):
    the same answer as ``client_statuses`` for each kind of standing, page by page."""
    def agreement_for(client):
        contact = make.contact(client)
        return svc.invite(session, runtime(), client, contact, meta=svc.Meta()), contact

    sign_typed(session, svc.invite(session, runtime(), world.client, world.contact, meta=svc.Meta()), world.contact)
    publish_terms(session, world.admin, late_fee_percent="1")  # Harbor signed v1: outdated now
    signed, signer = agreement_for(make.client("Signed Co"))
    sign_typed(session, signed, signer, name=signer.name)
    agreement_for(make.client("Invited Co"))
    voided, decliner = agreement_for(make.client("Declined Co"))  # voided, then invited again and declined
    svc.void(session, runtime(), voided, reason="Wrong contact", meta=svc.Meta())
    declined = svc.invite(session, runtime(), voided.client, decliner, meta=svc.Meta())
    svc.invite(session, runtime(), world.client, world.contact, meta=svc.Meta())  # Harbor: invited to v2 as well
    svc.decline(session, runtime(), declined, decliner, reason="No.", meta=svc.Meta(contact_id=decliner.id))
    make.client("Gone Co", status="inactive")
    for n in range(4):
        make.client(f"Unsigned {n}")

    whole = {row.client.id: row for row in terms.client_statuses(session)}
    counts, _ = terms.overview(session, "", 1, 3)
    assert counts == Counter(row.status for row in whole.values())
    assert set(counts) == set(T.TermsStanding) and session.scalar(select(Client).where(Client.legal_name == "Gone Co"))
    for wanted in ("", *T.TermsStanding):
        listed, number = [], 1
        while True:
            _, page = terms.overview(session, wanted, number, 3)
            listed += [(row.client.id, row.status, row.label, row.latest and row.latest.id) for row in page.items]
            if not page.has_next:
                break
            number += 1
        expected = [(r.client.id, r.status, r.label, r.latest and r.latest.id) for r in whole.values()
                    if wanted in ("", r.status)]
        assert listed == expected, wanted


def test_invite_from_the_client_page_emails_the_contact(admin, session, world, outbox):
    page = admin.get(f"/admin/agreements/clients/{world.client.id}").get_data(as_text=True)
    assert "dana@harbor.test" in page
    response = admin.post(f"/admin/agreements/clients/{world.client.id}/invite",
                          data={"contact_id": world.contact.id}, follow_redirects=True)
    agreement = session.scalar(select(Agreement).where(Agreement.client_id == world.client.id))
    body = response.get_data(as_text=True)
    assert f"Invitation {agreement.reference} emailed to dana@harbor.test" in body
    assert "Evidence timeline" in body and "Invited to sign" in body and "Email sent" in body
    assert 'id="chain-status"' in body and "Intact" in body
    [eml] = list(outbox.glob("*.eml"))
    assert f"/agreements/{agreement.reference}" in eml.read_text()
    assert agreement.invited_by_staff_id == world.admin.id


def test_invite_refuses_a_contact_of_another_client(admin, session, world):
    response = admin.post(f"/admin/agreements/clients/{world.client.id}/invite",
                          data={"contact_id": world.other_contact.id}, follow_redirects=True)
    assert "Choose a contact of this client" in response.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Agreement)) == 0


def test_resend_and_void_an_invitation(admin, session, world, invitation, outbox):
    url = f"/admin/agreements/{invitation.id}"
    response = admin.post(f"{url}/resend", data={"contact_id": world.contact.id}, follow_redirects=True)
    assert "Invitation sent again to dana@harbor.test" in response.get_data(as_text=True)
    assert len(list(outbox.glob("*.eml"))) == 2
    response = admin.post(f"{url}/resend", data={"contact_id": world.other_contact.id}, follow_redirects=True)
    assert "Choose a contact of this client" in response.get_data(as_text=True)
    assert len(list(outbox.glob("*.eml"))) == 2

    response = admin.post(f"{url}/void", data={"reason": ""}, follow_redirects=True)
    assert "Say why the invitation is voided." in response.get_data(as_text=True)
    assert session.get(Agreement, invitation.id).status == "invited"
    response = admin.post(f"{url}/void", data={"reason": "Wrong person"}, follow_redirects=True)
    assert f"Invitation {invitation.reference} voided" in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Agreement, invitation.id).status == "void"
    response = admin.post(f"{url}/resend", data={}, follow_redirects=True)
    assert "Only an open invitation can be sent again." in response.get_data(as_text=True)


def test_a_signed_agreement_cannot_be_voided_and_its_pdf_downloads(admin, session, signed):
    url = f"/admin/agreements/{signed.id}"
    response = admin.post(f"{url}/void", data={"reason": "Client disputes"}, follow_redirects=True)
    assert "Only an unsigned invitation can be voided." in response.get_data(as_text=True)
    session.expire_all()
    assert session.get(Agreement, signed.id).status == "signed"
    pdf = admin.get(f"{url}/pdf")
    assert pdf.status_code == 200 and pdf.data == signed.signed_pdf
    page = admin.get(url).get_data(as_text=True)
    assert "Dana Whitfield" in page and signed.pdf_sha256 in page and "Clause acknowledged" in page
    assert_clean(page, url)


def test_the_agreement_page_reports_a_broken_chain(admin, session, signed):
    from sqlalchemy import text

    session.execute(text("UPDATE agreement_events SET ip = '10.0.0.1' WHERE agreement_id = :a AND seq = 3"),
                    {"a": signed.id})
    session.commit()
    body = admin.get(f"/admin/agreements/{signed.id}").get_data(as_text=True)
    assert "Broken" in body and "event 3 was changed after it was recorded" in body


def test_remind_everyone(admin, session, world, outbox):
    response = admin.post("/admin/agreements/remind", follow_redirects=True)
    assert "Reminders sent: 2" in response.get_data(as_text=True)
    recipients = sorted(eml.read_text().split("To: ")[1].split("\n")[0] for eml in outbox.glob("*.eml"))
    assert recipients == ["ap@bayside.test", "dana@harbor.test"]
    assert session.scalar(select(func.count()).select_from(Agreement).where(Agreement.status == "invited")) == 2


def test_unknown_records_are_404(admin):
    for url in ("/admin/agreements/999999", "/admin/agreements/999999/pdf", "/admin/agreements/versions/999999",
                "/admin/agreements/clients/999999"):
        assert admin.get(url).status_code == 404, url


def test_staff_pages_are_for_staff(http, world, invitation):
    response = http.get("/admin/agreements/")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    sign_in(http, world.contact)
    for url in ("/admin/agreements/", f"/admin/agreements/{invitation.id}", "/admin/agreements/templates/terms"):
        assert http.get(url).status_code == 403, url
    assert http.post(f"/admin/agreements/{invitation.id}/void", data={"reason": "x"}).status_code == 403
    assert http.post("/admin/agreements/templates/terms/publish", data={"law_checked": "y"}).status_code == 403


def test_publish_law_placeholder_must_be_filled(admin, session, world):
    admin.post("/admin/agreements/templates/terms", data={"body": T.DEFAULT_TERMS_TEXT + "\nx\n",
                                                          **params(governing_law="")})
    response = admin.post("/admin/agreements/templates/terms/publish", data={"law_checked": "y"},
                          follow_redirects=True)
    assert "fill this in before publishing" in response.get_data(as_text=True)
    assert version_count(session) == 1
    publish_terms(session, world.admin, late_fee_percent="2")
    assert version_count(session) == 2
