"""Enforcement pages over HTTP: the staff's notice preview (refused before the signed threshold, nothing written)
and issue, the panel's "disable permitted from", withdrawal; the client's banner and notice page (opening
recorded, another client's 404); sending and signing a charge authorization (charged once, refusals shown); the
deliverables upload (type and size refused), the client's locked list, refused and released downloads with safe
headers, another client's 404; CSRF on every form."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.gateways.payments import sandbox_token
from portal.models import AgreementEvent, ChargeAttempt, ChargeAuthorization, Deliverable, EnforcementNotice
from portal.services import payments
from portal.services.enforcement import charge_authorizations as auths
from portal.services.enforcement import deliverables, notices
from tests.conftest import sign_in
from tests.enforcement_fixtures import publish_terms, save_card, sign_terms
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import runtime_for

DUE = date(2026, 3, 1)
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def staff(make):
    return make.staff()


@pytest.fixture
def admin(http, staff):
    sign_in(http, staff)
    return http


@pytest.fixture
def portal(app, shop):
    client = app.test_client()
    sign_in(client, shop.contact)
    return client


@pytest.fixture
def outsider(app, make):
    client = app.test_client()
    sign_in(client, make.contact(make.client("Other LLC")))
    return client


@pytest.fixture
def signed(session, shop):
    publish_terms(session, remote_disable_days=45, notice_days=10)
    return sign_terms(session, shop.client, shop.contact)


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


# --- notices ---------------------------------------------------------------------------------------------------------


def test_preview_before_the_threshold_explains_and_issue_writes_nothing(admin, session, shop, signed, clock):
    clock.set(DUE + timedelta(days=30))
    url = f"/admin/clients/{shop.client.id}/notices/new"
    preview = admin.get(url)
    assert preview.status_code == 200 and "only from 45 days past due (15 more days)" in text(preview)
    issued = admin.post(url, data={"kind": "remote_disable", "issue": "1"})
    assert issued.status_code == 400 and "only from 45 days past due" in text(issued)
    assert count(session, EnforcementNotice) == 0


def test_issue_then_banner_notice_page_and_withdraw(admin, portal, outsider, session, shop, signed, clock):
    clock.set(DUE + timedelta(days=45))
    url = f"/admin/clients/{shop.client.id}/notices/new"
    preview = admin.post(url, data={"kind": "remote_disable", "preview": "1"})
    assert preview.status_code == 200
    assert "6. Remote disabling of systems" in text(preview) and "Apr 25, 2026" in text(preview)
    assert count(session, EnforcementNotice) == 0  # a preview writes nothing

    issued = admin.post(url, data={"kind": "remote_disable", "issue": "1"})
    assert issued.status_code == 302
    notice = session.scalar(select(EnforcementNotice))
    assert notice.status == "issued"
    page = text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))
    assert "Disable permitted from Apr 25, 2026" in page

    dashboard = text(portal.get("/"))
    assert 'data-disable-permitted-on="2026-04-25"' in dashboard and "Read the notice" in dashboard
    assert outsider.get(f"/notices/{notice.public_id}").status_code == 404
    assert notice.opened_at is None
    opened = portal.get(f"/notices/{notice.public_id}")
    assert opened.status_code == 200 and "$350.00" in text(opened) and "more than 45 days past due" in text(opened)
    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).opened_at is not None
    assert session.scalar(select(func.count(AgreementEvent.id)).where(AgreementEvent.kind == "notice_opened")) == 1

    withdraw = f"/admin/clients/{shop.client.id}/notices/{notice.id}/withdraw"
    refused = admin.post(withdraw, data={"reason": ""}, follow_redirects=True)
    assert "Give a reason" in text(refused)
    assert session.get(EnforcementNotice, notice.id).status == "issued"
    admin.post(withdraw, data={"reason": "Paid by wire, confirmed by phone"})
    session.expire_all()
    assert session.get(EnforcementNotice, notice.id).status == "withdrawn"
    assert "Read the notice" not in text(portal.get("/"))
    assert "withdrawn" in text(portal.get(f"/notices/{notice.public_id}"))


# --- charge authorizations -----------------------------------------------------------------------------------------


def test_send_sign_and_charge_once(admin, portal, outsider, session, shop, clock, sandbox_gateway):
    clock.set(date(2026, 3, 21))
    rt = runtime_for(sandbox_gateway)
    save_card(session, rt, shop.contact, sandbox_token("card", "4242424242424242", exp_month=4, exp_year=2031))
    url = f"/admin/clients/{shop.client.id}/charge-authorizations/new"
    form = text(admin.get(url))
    assert 'value="350.00"' in form and "Card on file: Visa ending 4242" in form
    too_much = admin.post(url, data={"amount": "351.00", "reason": "", "valid_days": "7"})
    assert too_much.status_code == 400 and "more than the client owes" in text(too_much)
    assert count(session, ChargeAuthorization) == 0
    sent = admin.post(url, data={"amount": "100.00", "reason": "Urgent: server down", "valid_days": "7"})
    assert sent.status_code == 302
    row = session.scalar(select(ChargeAuthorization))

    sign_url = f"/authorizations/{row.public_id}"
    assert outsider.get(sign_url).status_code == 404
    page = text(portal.get(sign_url))
    sha = re.search(r'id="document-hash">([0-9a-f]{64})<', page).group(1)
    assert "Sign and charge $100.00" in page and "Urgent: server down" in page
    data = {"document_sha256": sha, "consent": "y", "full_name": "Pat Doe", "title": "Owner", "authority": "y",
            "signature_kind": "typed", "typed_signature": "Pat Doe"}
    assert outsider.post(sign_url, data=data).status_code == 404
    done = portal.post(sign_url, data=data, follow_redirects=True)
    assert "Signed and charged" in text(done) and 'data-status="charged"' in text(done)
    again = portal.post(sign_url, data=data)
    assert again.status_code == 400 and "already signed. Nothing more was charged" in text(again)
    assert count(session, ChargeAttempt) == 1
    assert session.get(ChargeAuthorization, row.id).status == "charged"


def test_without_a_card_signing_leads_to_the_checkout(admin, portal, session, shop, clock, rt, staff):
    clock.set(date(2026, 3, 21))
    row = auths.send(session, rt, shop.client, amount_cents=10_000, reason="", staff=staff)
    url = f"/authorizations/{row.public_id}"
    page = text(portal.get(url))
    assert "Sign and enter a card" in page
    sha = re.search(r'id="document-hash">([0-9a-f]{64})<', page).group(1)
    signed = portal.post(url, data={"document_sha256": sha, "consent": "y", "full_name": "Pat Doe", "title": "Owner",
                                    "authority": "y", "signature_kind": "typed", "typed_signature": "Pat Doe"})
    request = session.scalar(select(ChargeAuthorization)).request
    assert signed.status_code == 303 and signed.headers["Location"].endswith(f"/pay/{request.public_id}")
    assert count(session, ChargeAttempt) == 0
    paid = portal.post(f"/pay/{request.public_id}", data={
        "nonce": request.public_id, "attempt": "1", "method": "card", "card_number": "4242 4242 4242 4242",
        "card_expiry": "12/30", "card_cvc": "123"})
    assert paid.status_code in (302, 303), text(paid)
    assert 'data-status="charged"' in text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))
    assert session.get(ChargeAuthorization, row.id).status == "charged"


def test_the_admin_cancels_one_signed_but_never_paid_and_the_client_is_told(admin, portal, session, shop, clock, rt,
                                                                              staff):
    clock.set(date(2026, 3, 21))
    row = auths.send(session, rt, shop.client, amount_cents=10_000, reason="", staff=staff)
    url = f"/authorizations/{row.public_id}"
    sha = re.search(r'id="document-hash">([0-9a-f]{64})<', text(portal.get(url))).group(1)
    portal.post(url, data={"document_sha256": sha, "consent": "y", "full_name": "Pat Doe", "title": "Owner",
                           "authority": "y", "signature_kind": "typed", "typed_signature": "Pat Doe"})
    request = session.scalar(select(ChargeAuthorization)).request
    cancel_url = f"/admin/clients/{shop.client.id}/charge-authorizations/{row.id}/cancel"
    # signed, never paid: cancelable
    assert cancel_url in text(admin.get(f"/admin/clients/{shop.client.id}?tab=equipment"))

    canceled = admin.post(cancel_url)

    assert canceled.status_code == 302
    assert "it can no longer be signed or paid" in text(admin.get(canceled.headers["Location"]))
    assert 'id="canceled"' in text(portal.get(url))
    assert portal.get(f"/pay/{request.public_id}").status_code == 410
    assert count(session, ChargeAttempt) == 0


def test_an_expired_authorization_says_so(portal, session, shop, clock, rt, staff):
    clock.set(date(2026, 3, 21))
    row = auths.send(session, rt, shop.client, amount_cents=10_000, reason="", staff=staff, valid_days=1)
    clock.advance(days=2)
    page = portal.get(f"/authorizations/{row.public_id}")
    assert page.status_code == 200 and "expired on" in text(page) and "sign-form" not in text(page)
    refused = portal.post(f"/authorizations/{row.public_id}", data={
        "document_sha256": "a" * 64, "consent": "y", "full_name": "Pat Doe", "title": "Owner", "authority": "y",
        "signature_kind": "typed", "typed_signature": "Pat Doe"})
    assert refused.status_code == 400 and "has expired. Nothing was charged" in text(refused)
    assert count(session, ChargeAttempt) == 0


# --- deliverables --------------------------------------------------------------------------------------------------


def upload(admin, invoice, name: str, data: bytes):
    return admin.post(f"/admin/invoices/{invoice.id}/deliverables", data={"file": (io.BytesIO(data), name)},
                      content_type="multipart/form-data", follow_redirects=True)


def test_upload_refusals_and_the_release_gate(admin, portal, outsider, session, shop, rt):
    wrong = upload(admin, shop.first, "report.pdf", b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 64)
    assert "content is not a PDF file" in text(wrong)
    assert count(session, Deliverable) == 0
    ok = upload(admin, shop.first, "Q1 report\u00e9 (final).pdf", PDF)
    assert "Q1 reporte _final.pdf" in text(ok)  # accents folded, brackets replaced
    row = session.scalar(select(Deliverable))

    invoice_page = text(portal.get(f"/invoices/{shop.first.id}"))
    assert row.filename in invoice_page and "Locked" in invoice_page
    url = f"/invoices/{shop.first.id}/files/{row.id}"
    refused = portal.get(url)
    assert refused.status_code == 403 and "released once the invoice is paid" in text(refused)
    assert outsider.get(url).status_code == 404

    payments.record_payment(session, shop.client, amount_cents=10_000, method="check")
    assert outsider.get(url).status_code == 404
    got = portal.get(url)
    assert got.status_code == 200 and got.data == PDF
    assert got.headers["Content-Disposition"] == f'attachment; filename="{row.filename}"'
    assert got.headers["Content-Type"] == "application/pdf"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src" in got.headers["Content-Security-Policy"]
    assert "no-store" in got.headers["Cache-Control"]
    got.close()  # the file is streamed; the server closes it after sending, the test client after reading

    removed = admin.post(f"/admin/invoices/{shop.first.id}/deliverables/{row.id}/remove", follow_redirects=True)
    assert "removed from the invoice" in text(removed)
    assert portal.get(url).status_code == 404


class TestSizeLimit:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["DELIVERABLE_MAX_BYTES"] = 2048  # PORTAL_DELIVERABLE_MAX_BYTES
        return app_config

    def test_oversized_upload_is_refused(self, admin, session, shop):
        big = upload(admin, shop.first, "big.pdf", PDF + b"0" * 4096)
        assert "the limit is 2 KB" in text(big)
        assert count(session, Deliverable) == 0


# --- CSRF ----------------------------------------------------------------------------------------------------------


class TestCsrf:
    @pytest.fixture
    def app_config(self, app_config):
        app_config["WTF_CSRF_ENABLED"] = True
        return app_config

    def test_every_form_needs_the_pages_token(self, admin, portal, session, shop, signed, clock, rt, staff):
        clock.set(DUE + timedelta(days=50))
        notice = notices.issue(session, rt, shop.client, "remote_disable", staff=staff)
        row = auths.send(session, rt, shop.client, amount_cents=10_000, reason="", staff=staff)
        file = deliverables.attach(session, rt, shop.first, filename="r.pdf", data=PDF, staff=None)
        cid = shop.client.id
        for url, data in [
            (f"/admin/clients/{cid}/notices/new", {"kind": "equipment_recovery", "issue": "1"}),
            (f"/admin/clients/{cid}/notices/{notice.id}/withdraw", {"reason": "x"}),
            (f"/admin/clients/{cid}/charge-authorizations/new", {"amount": "100", "valid_days": "7"}),
            (f"/admin/clients/{cid}/charge-authorizations/{row.id}/cancel", {}),
            (f"/admin/invoices/{shop.first.id}/deliverables/{file.id}/remove", {}),
        ]:
            response = admin.post(url, data=data)
            assert response.status_code == 400 and "Your form expired" in text(response), url
        response = admin.post(f"/admin/invoices/{shop.first.id}/deliverables", content_type="multipart/form-data",
                              data={"file": (io.BytesIO(PDF), "x.pdf")})
        assert response.status_code == 400
        response = portal.post(f"/authorizations/{row.public_id}", data={
            "document_sha256": "a" * 64, "consent": "y", "full_name": "Pat Doe", "title": "Owner",
            "authority": "y", "signature_kind": "typed", "typed_signature": "Pat Doe"})
        assert response.status_code == 400 and "Your form expired" in text(response)
        session.expire_all()
        assert count(session, EnforcementNotice) == 1
        assert session.get(EnforcementNotice, notice.id).status == "issued"
        assert session.get(ChargeAuthorization, row.id).status == "sent"
        assert count(session, ChargeAuthorization) == 1 and count(session, Deliverable) == 1
        assert session.get(Deliverable, file.id).removed_at is None
