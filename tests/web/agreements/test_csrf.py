"""CSRF on every agreements form: a POST without the token is refused and changes nothing; with it, it works."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.models import Agreement, AgreementEvent, TermsTemplate, TermsVersion
from tests.conftest import sign_in

from .conftest import csrf_token


@pytest.fixture
def app_config(app_config):
    app_config["WTF_CSRF_ENABLED"] = True
    return app_config


def state(session) -> tuple:
    session.expire_all()
    counts = tuple(session.scalar(select(func.count()).select_from(m)) for m in (Agreement, AgreementEvent,
                                                                                  TermsVersion))
    statuses = tuple(session.scalars(select(Agreement.status).order_by(Agreement.id)))
    drafts = tuple(session.scalars(select(TermsTemplate.draft_text).order_by(TermsTemplate.id)))
    session.commit()
    return counts, statuses, drafts


def test_contact_posts_need_the_token(http, session, world, invitation):
    sign_in(http, world.contact)
    url = f"/agreements/{invitation.reference}"
    http.get(url)  # records "opened" once for this session before the snapshot
    before = state(session)
    for step in ("consent", "acknowledge", "sign", "decline"):
        response = http.post(f"{url}/{step}", data={"agree": "y", "reason": "forged"})
        assert response.status_code == 400, step
        assert "Your form expired or was sent from elsewhere" in response.get_data(as_text=True)
    assert state(session) == before

    page = http.get(url).get_data(as_text=True)
    disclosure = page.split('name="disclosure_version_id" type="hidden" value="')[1].split('"')[0]
    response = http.post(f"{url}/consent", data={"csrf_token": csrf_token(page), "agree": "y",
                                                 "disclosure_version_id": disclosure})
    assert response.status_code == 302
    assert "consented" in session.scalars(select(AgreementEvent.kind)).all()


def test_staff_posts_need_the_token(http, session, world, invitation):
    sign_in(http, world.admin)
    before = state(session)
    for url, data in ((f"/admin/agreements/{invitation.id}/void", {"reason": "forged"}),
                      (f"/admin/agreements/{invitation.id}/resend", {}),
                      (f"/admin/agreements/clients/{world.client.id}/invite", {"contact_id": world.contact.id}),
                      ("/admin/agreements/templates/terms", {"body": "forged"}),
                      ("/admin/agreements/templates/terms/publish", {"law_checked": "y"}),
                      ("/admin/agreements/remind", {})):
        assert http.post(url, data=data).status_code == 400, url
    assert state(session) == before

    page = http.get(f"/admin/agreements/{invitation.id}").get_data(as_text=True)
    response = http.post(f"/admin/agreements/{invitation.id}/void",
                         data={"csrf_token": csrf_token(page), "reason": "Wrong contact"})
    assert response.status_code == 302
    assert state(session)[1] == ("void",)


def test_public_verification_needs_the_token(http, signed):
    assert http.post("/verify/reference", data={"reference": signed.reference}).status_code == 400
    page = http.get("/verify").get_data(as_text=True)
    body = http.post("/verify/reference", data={"csrf_token": csrf_token(page), "reference": signed.reference})
    assert body.status_code == 200 and "is signed and its record is intact" in body.get_data(as_text=True)
