"""Staff side: send (chosen contacts, on issue, in bulk), delivery tracking and timeline, retry a failed email,
revoke a link, sign a contact out everywhere. Mail goes through a real SMTP server on loopback."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.models import Invoice, InvoiceDelivery, InvoiceLink
from portal.services import clients, delivery
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.smtp_fixtures import mail_through_smtp, retry_mail_quickly  # noqa: F401 (fixtures)

from .conftest import path_of

pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def kim(session, northwind):
    return clients.find_contact_by_email(session, "kim@northwind.test")


def page_of(invoice) -> str:
    return f"/admin/invoices/{invoice.id}/delivery"


def count(session, model) -> int:
    return session.scalar(select(func.count(model.id)))


def test_staff_send_to_chosen_contacts_and_see_it_tracked(staff_http, session, smtp_server, invoice, pat, kim):
    response = staff_http.post(f"/admin/invoices/{invoice.id}/send",
                               data={"contact_ids": [pat.id, kim.id], "next": page_of(invoice)},
                               follow_redirects=True)

    assert response.status_code == 200
    assert response.request.path == page_of(invoice)
    assert f"Invoice {invoice.number} emailed to pat@northwind.test, kim@northwind.test." in response.text
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["kim@northwind.test", "pat@northwind.test"]
    sent = session.scalars(select(InvoiceDelivery)).all()
    assert {(d.status, d.sent_by.email) for d in sent} == {("accepted", "admin@msp.test")}
    page = staff_http.get(page_of(invoice)).text
    assert page.count("Accepted") == 2
    assert "Invoice emailed to Pat Payable &lt;pat@northwind.test&gt; (accepted by the mail server)." in page
    assert "Send again" in page


def test_the_default_redirect_is_the_admin_invoice_page(staff_http, invoice, pat, smtp_server):
    response = staff_http.post(f"/admin/invoices/{invoice.id}/send", data={"contact_ids": [pat.id]})

    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/invoices/{invoice.id}"


def test_an_offsite_next_is_ignored(staff_http, invoice, pat, smtp_server):
    response = staff_http.post(f"/admin/invoices/{invoice.id}/send",
                               data={"contact_ids": [pat.id], "next": "https://evil.example/"})

    assert response.headers["Location"] == f"/admin/invoices/{invoice.id}"


def test_sending_to_nobody_or_a_foreign_contact_is_refused(staff_http, session, smtp_server, invoice, make):
    stranger = make.contact(make.client("Contoso"), "ap@contoso.test")

    empty = staff_http.post(f"/admin/invoices/{invoice.id}/send", data={"next": page_of(invoice)},
                            follow_redirects=True)
    foreign = staff_http.post(f"/admin/invoices/{invoice.id}/send",
                              data={"contact_ids": [stranger.id], "next": page_of(invoice)}, follow_redirects=True)
    junk = staff_http.post(f"/admin/invoices/{invoice.id}/send",
                           data={"contact_ids": ["abc"], "next": page_of(invoice)}, follow_redirects=True)

    assert "Choose at least one contact" in empty.text
    assert "is not a valid choice" in foreign.text
    assert "flash-error" in junk.text
    assert smtp_server.attempts == 0
    assert count(session, InvoiceDelivery) == 0


def test_a_draft_cannot_be_sent_but_can_be_issued_and_sent(staff_http, session, smtp_server, make, northwind, pat):
    draft = make.invoice(northwind, 1_500, issue=False)

    refused = staff_http.post(f"/admin/invoices/{draft.id}/send", data={"contact_ids": [pat.id],
                                                                        "next": page_of(draft)},
                              follow_redirects=True)
    assert "Issue the invoice before sending it." in refused.text
    assert "Issue and email to billing contacts" in refused.text
    assert smtp_server.attempts == 0

    done = staff_http.post(f"/admin/invoices/{draft.id}/issue-and-send", data={"next": page_of(draft)},
                           follow_redirects=True)

    assert f"Invoice {draft.number} emailed to pat@northwind.test, kim@northwind.test." in done.text
    session.expire_all()
    assert session.get(Invoice, draft.id).status == "open"
    assert len(smtp_server.messages) == 2


def test_issue_and_send_without_billing_contacts_still_issues(staff_http, session, smtp_server, make, msp):
    lonely = make.client("Lonely LLC")
    draft = make.invoice(lonely, 1_500, issue=False)

    response = staff_http.post(f"/admin/invoices/{draft.id}/issue-and-send", data={"next": page_of(draft)},
                               follow_redirects=True)

    assert f"Invoice {draft.number} issued, but not emailed: Lonely LLC has no billing contact" in response.text
    session.expire_all()
    assert session.get(Invoice, draft.id).status == "open"
    assert smtp_server.attempts == 0


def test_a_failed_email_shows_as_failed_and_can_be_retried(staff_http, session, smtp_server, invoice, pat):
    smtp_server.reply_next("550 5.1.1 <pat@northwind.test>: Recipient address rejected")

    response = staff_http.post(f"/admin/invoices/{invoice.id}/send",
                               data={"contact_ids": [pat.id], "next": page_of(invoice)}, follow_redirects=True)

    assert "The email to pat@northwind.test failed: 550 5.1.1" in response.text
    page = staff_http.get(page_of(invoice)).text
    assert "Failed" in page and "Recipient address rejected" in page and "Retry" in page
    [failed] = session.scalars(select(InvoiceDelivery)).all()
    assert failed.status == "failed"

    retried = staff_http.post(f"/admin/deliveries/{failed.id}/retry", data={"next": page_of(invoice)},
                              follow_redirects=True)

    assert f"Invoice {invoice.number} emailed to pat@northwind.test." in retried.text
    assert [m.rcpt_tos for m in smtp_server.messages] == [["pat@northwind.test"]]
    again = staff_http.post(f"/admin/deliveries/{failed.id}/retry", data={"next": page_of(invoice)},
                            follow_redirects=True)
    assert "already sent again" in again.text
    assert len(smtp_server.messages) == 1


def test_the_delivery_page_shows_opens_and_the_timeline(staff_http, http, session, smtp_server, invoice, pat, app, rt):
    [sent] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    visitor = app.test_client()
    for _ in range(3):
        visitor.get(path_of(sent.link), headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Firefox/128.0"})
    visitor.head(path_of(sent.link), headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Firefox/128.0"})

    page = staff_http.get(page_of(invoice)).text

    assert '<td class="num">3</td>' in page
    assert "Opened by Pat Payable &lt;pat@northwind.test&gt; for the first time." in page
    assert "Mar 16, 2026 15:00 UTC" in page


def test_revoking_a_link_from_the_admin(staff_http, session, smtp_server, invoice, pat, http, rt):
    [sent] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)

    response = staff_http.post(f"/admin/links/{sent.link_id}/revoke", data={"next": page_of(invoice)},
                               follow_redirects=True)

    assert "no longer opens it" in response.text
    assert "Revoked" in response.text
    session.expire_all()
    assert session.get(InvoiceLink, sent.link_id).revoked_at is not None
    staff_http.post("/logout")
    assert http.get(path_of(sent.link)).status_code == 410


def test_sign_out_everywhere_from_the_admin(staff_http, session, smtp_server, invoice, pat, northwind, rt):
    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    epoch = pat.session_epoch

    response = staff_http.post(f"/admin/contacts/{pat.id}/sign-out-everywhere")

    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/clients/{northwind.id}"
    session.expire_all()
    assert clients.find_contact_by_email(session, "pat@northwind.test").session_epoch == epoch + 1
    assert session.scalar(select(func.count(InvoiceLink.id)).where(InvoiceLink.revoked_at.is_(None))) == 0


def test_bulk_send_lists_unsent_invoices_and_sends_the_ticked_ones(staff_http, session, smtp_server, make,
                                                                    northwind, invoice, msp):
    second = make.invoice(northwind, 2_500)
    nobody = make.invoice(make.client("Nobody Home"), 3_000)
    page = staff_http.get("/admin/invoices/send-bulk")
    assert invoice.number in page.text and second.number in page.text and nobody.number in page.text

    response = staff_http.post("/admin/invoices/send-bulk", data={"invoice_ids": [invoice.id, nobody.id]},
                               follow_redirects=True)

    assert f"Emailed 1 invoice: {invoice.number}." in response.text
    assert f"{nobody.number}: Nobody Home has no billing contact" in response.text
    assert invoice.number not in response.text.split("<table")[-1]  # no longer offered as unsent
    assert len(smtp_server.messages) == 2


def test_bulk_send_names_each_client_without_a_statement_per_client(app, staff_http, make):
    """The list shows up to 200 invoices, each with its client's name: the clients come with the invoices (one
    statement for all), not one lazy load per client (at a million invoices: 202 statements, ~100 ms)."""
    def grow(n: int) -> None:
        for _ in range(n):
            make.invoice(make.client(), 1_000)

    grow(1)
    [shown] = statements_unchanged_as_rows_grow(app, [lambda: staff_http.get("/admin/invoices/send-bulk")],
                                                lambda: grow(5))
    assert shown.text.count('name="invoice_ids"') == 6


def test_bulk_send_with_nothing_ticked_is_an_error(staff_http, smtp_server, invoice):
    response = staff_http.post("/admin/invoices/send-bulk", data={})

    assert response.status_code == 200
    assert "Tick at least one invoice to send." in response.text
    assert smtp_server.attempts == 0


ADMIN_ROUTES = [
    ("get", "/admin/invoices/{invoice}/delivery"),
    ("post", "/admin/invoices/{invoice}/send"),
    ("post", "/admin/invoices/{invoice}/issue-and-send"),
    ("post", "/admin/deliveries/{delivery}/retry"),
    ("post", "/admin/links/{link}/revoke"),
    ("post", "/admin/contacts/{contact}/sign-out-everywhere"),
    ("get", "/admin/invoices/send-bulk"),
    ("post", "/admin/invoices/send-bulk"),
]


@pytest.mark.parametrize(("method", "url"), ADMIN_ROUTES)
def test_admin_routes_need_a_staff_sign_in(http, session, smtp_server, invoice, pat, method, url, rt):
    [sent] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    target = url.format(invoice=invoice.id, delivery=sent.id, link=sent.link_id, contact=pat.id)

    anonymous = getattr(http, method)(target)
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/admin/login")

    sign_in(http, pat)
    assert getattr(http, method)(target).status_code == 403
    session.expire_all()
    assert session.get(InvoiceLink, sent.link_id).revoked_at is None


@pytest.mark.parametrize(("method", "url"), [(m, u) for m, u in ADMIN_ROUTES if "{" in u])
def test_unknown_ids_are_404(staff_http, method, url, msp):
    target = url.format(invoice=999, delivery=999, link=999, contact=999)

    assert getattr(staff_http, method)(target).status_code == 404


def test_the_admin_pages_carry_the_delivery_panel_and_buttons(staff_http, session, smtp_server, invoice, pat,
                                                              northwind, rt):
    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)

    detail = staff_http.get(f"/admin/invoices/{invoice.id}")
    assert detail.status_code == 200
    assert 'id="delivery"' in detail.text and f'action="/admin/invoices/{invoice.id}/send"' in detail.text
    assert "Invoice emailed to Pat Payable" in detail.text
    client_page = staff_http.get(f"/admin/clients/{northwind.id}")
    assert f'action="/admin/contacts/{pat.id}/sign-out-everywhere"' in client_page.text
    assert 'href="/admin/invoices/send-bulk"' in staff_http.get("/admin/invoices").text
