"""Emailing invoices through a real SMTP server on loopback: what arrives, the link in it, failures and retries,
resends, reminders, revocation, fresh links and open tracking, with the database state after each."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from portal.domain import links as rules
from portal.domain.errors import DomainError
from portal.models import Invoice, InvoiceDelivery, InvoiceEvent, InvoiceLink
from portal.services import billing, clients, delivery
from portal.services.autopay import incentives
from portal.services.settings import update_settings
from tests.smtp_fixtures import mail_through_smtp, retry_mail_quickly  # noqa: F401 (fixtures)

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
LINK = re.compile(r"http://localhost(/i/[A-Za-z0-9_.\-]+)")


pytestmark = pytest.mark.usefixtures("quick_retries")


@pytest.fixture
def msp(session):
    return update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC", email="billing@acme-it.test",
                           reply_to="ar@acme-it.test", phone="555-0100",
                           payment_instructions="Wire to First Bank, account 12345678, routing 021000021.")


@pytest.fixture
def northwind(make, msp):
    client = make.client("Northwind Traders")
    make.contact(client, "pat@northwind.test", name="Pat Payable")
    make.contact(client, "kim@northwind.test", name="Kim Ledger")
    make.contact(client, "it@northwind.test", name="Ian Tech", is_billing=False)
    return client


@pytest.fixture
def invoice(make, northwind):
    return make.invoice(northwind, 123_456, due_date=date(2026, 4, 15))


def links_of(session, invoice) -> list[InvoiceLink]:
    return list(session.scalars(select(InvoiceLink).where(InvoiceLink.invoice_id == invoice.id)
                                .order_by(InvoiceLink.id)))


def contact(session, email_address):
    return clients.find_contact_by_email(session, email_address)


def path_in(message) -> str:
    return LINK.search(message.get_body(("plain",)).get_content()).group(1)


# --- what arrives ------------------------------------------------------------------------------------------------

def test_each_billing_contact_receives_the_invoice_with_pdf_and_own_working_link(app, session, smtp_server,
                                                                                  invoice, http, rt):
    sent = delivery.send_invoice(session, rt, invoice, actor=None)

    assert [d.status for d in sent] == ["accepted", "accepted"]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["kim@northwind.test", "pat@northwind.test"]
    assert all(len(m.rcpt_tos) == 1 for m in smtp_server.messages)  # one message each: a link is personal
    by_rcpt = {m.rcpt_tos[0]: m.message for m in smtp_server.messages}
    msg = by_rcpt["pat@northwind.test"]
    assert msg["Subject"] == f"Invoice {invoice.number} from Acme IT: $1,234.56 due Apr 15, 2026"
    assert msg["To"] == "pat@northwind.test"
    assert msg["From"].addresses[0].display_name == "Acme IT"
    assert msg["Reply-To"] == "ar@acme-it.test"
    assert msg["Message-ID"] == next(d.message_id for d in sent if d.to_email == "pat@northwind.test")

    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        assert "Pat Payable" in body
        assert invoice.number in body
        assert "$1,234.56" in body
        assert "Apr 15, 2026" in body
        assert "Wire to First Bank" in body
    path = path_in(msg)
    assert f'href="http://localhost{path}"' in html

    [attachment] = list(msg.iter_attachments())
    assert (attachment.get_filename(), attachment.get_content_type()) == (f"{invoice.number}.pdf", "application/pdf")
    pdf_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(attachment.get_content())).pages)
    assert invoice.number in pdf_text
    assert "Northwind Traders" in pdf_text

    page = http.get(path)
    assert page.status_code == 200
    assert invoice.number in page.text and "$1,234.56" in page.text
    assert path_in(by_rcpt["kim@northwind.test"]) != path  # each contact has their own link

    links = links_of(session, invoice)
    assert [(lk.contact.email, lk.expires_at) for lk in links] == [
        ("pat@northwind.test", datetime(2026, 5, 16, tzinfo=UTC)),
        ("kim@northwind.test", datetime(2026, 5, 16, tzinfo=UTC)),
    ]
    rows = session.scalars(select(InvoiceDelivery).order_by(InvoiceDelivery.id)).all()
    assert [(d.to_email, d.status, d.transport, d.kind, d.error) for d in rows] == [
        ("pat@northwind.test", "accepted", "smtp", "invoice", ""),
        ("kim@northwind.test", "accepted", "smtp", "invoice", ""),
    ]
    assert [e.kind for e in session.scalars(select(InvoiceEvent).order_by(InvoiceEvent.id))] == [
        "sent", "sent", "opened"]


def test_chosen_contacts_only_and_the_non_billing_one_when_asked(app, session, smtp_server, invoice, rt):
    it = contact(session, "it@northwind.test")

    delivery.send_invoice(session, rt, invoice, contacts=[it], actor=None)

    assert [m.rcpt_tos for m in smtp_server.messages] == [["it@northwind.test"]]


def test_the_sending_staff_member_is_recorded(app, session, smtp_server, invoice, make, rt):
    admin = make.staff()

    [first, _] = delivery.send_invoice(session, rt, invoice, actor=admin)

    assert first.sent_by_id == admin.id


def test_a_paid_invoice_can_be_sent_as_a_copy(app, session, smtp_server, make, northwind, rt):
    paid = make.invoice(northwind, 5_000)
    make.payment(northwind, 5_000)
    session.refresh(paid)
    assert paid.status == "paid"

    delivery.send_invoice(session, rt, paid, actor=None)

    assert smtp_server.messages[0].message["Subject"] == f"Invoice {paid.number} from Acme IT (paid)"


def test_the_email_shows_an_autopay_discount_apart_from_the_money_paid(app, session, smtp_server, make, northwind,
                                                                       rt):
    discounted = make.invoice(northwind, 10_000)
    make.payment(northwind, 9_500, method="card")
    incentives.record_discount(session, discounted, 500, attempt_id=5)
    session.commit()

    delivery.send_invoice(session, rt, session.get(Invoice, discounted.id), actor=None)

    message = smtp_server.messages[0].message
    text = message.get_body(("plain",)).get_content()
    assert "Autopay discount: -$5.00" in text and re.search(r"Paid: +\$95\.00", text)
    html = message.get_body(("html",)).get_content()
    assert "Autopay discount" in html and "$95.00" in html and "$100.00</td></tr>" in html


def test_without_smtp_the_message_is_written_to_the_outbox(app_config, request, smtp_server):
    app_config["SMTP_URL"] = None  # before the app is built
    rt = request.getfixturevalue("rt")
    outbox = request.getfixturevalue("outbox")
    session = request.getfixturevalue("session")
    invoice = request.getfixturevalue("invoice")

    sent = delivery.send_invoice(session, rt, invoice, actor=None)

    assert [(d.status, d.transport) for d in sent] == [("accepted", "outbox")] * 2
    assert len(list(outbox.glob("*.eml"))) == 2
    assert smtp_server.messages == []


# --- refusals ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("status_change", "message"), [("draft", "Issue the invoice"), ("void", "void invoice")])
def test_drafts_and_void_invoices_are_not_sent(app, session, smtp_server, make, northwind, status_change, message, rt):
    inv = make.invoice(northwind, 1_000, issue=status_change != "draft")
    if status_change == "void":
        billing.void_invoice(session, inv, "Billed twice")

    with pytest.raises(DomainError, match=message):
        delivery.send_invoice(session, rt, inv, actor=None)
    session.rollback()

    assert smtp_server.attempts == 0
    assert session.scalar(select(func.count(InvoiceLink.id))) == 0
    assert session.scalar(select(func.count(InvoiceDelivery.id))) == 0


def test_a_client_without_billing_contacts_is_told_and_nothing_is_written(app, session, smtp_server, make, msp, rt):
    lonely = make.client("Lonely LLC")
    make.contact(lonely, "tech@lonely.test", is_billing=False)
    inv = make.invoice(lonely, 1_000)

    with pytest.raises(rules.NoRecipients, match="Lonely LLC has no billing contact"):
        delivery.send_invoice(session, rt, inv, actor=None)
    session.rollback()

    assert smtp_server.attempts == 0
    assert session.scalar(select(func.count(InvoiceLink.id))) == 0


def test_a_contact_of_another_client_or_without_access_is_refused(app, session, smtp_server, make, invoice, rt):
    other = make.contact(make.client("Contoso"), "ap@contoso.test")
    kim = contact(session, "kim@northwind.test")
    clients.update_contact(session, kim, portal_access=False)

    with pytest.raises(DomainError, match="ap@contoso.test is not a contact of Northwind Traders"):
        delivery.send_invoice(session, rt, invoice, contacts=[other], actor=None)
    session.rollback()
    with pytest.raises(DomainError, match="kim@northwind.test has no portal access"):
        delivery.send_invoice(session, rt, invoice, contacts=[kim], actor=None)
    session.rollback()
    with pytest.raises(DomainError, match="Choose at least one contact"):
        delivery.send_invoice(session, rt, invoice, contacts=[], actor=None)
    session.rollback()

    assert smtp_server.attempts == 0
    assert session.scalar(select(func.count(InvoiceDelivery.id))) == 0


def test_default_recipients_skip_contacts_without_portal_access(app, session, smtp_server, invoice, rt):
    clients.update_contact(session, contact(session, "kim@northwind.test"), portal_access=False)

    delivery.send_invoice(session, rt, invoice, actor=None)

    assert [m.rcpt_tos for m in smtp_server.messages] == [["pat@northwind.test"]]


# --- failures and retries -------------------------------------------------------------------------------------------

def test_a_refused_message_is_recorded_as_failed_and_keeps_the_invoice_and_link(app, session, smtp_server,
                                                                                  invoice, http, rt):
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("550 5.1.1 Mailbox unavailable")

    [failed] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)

    assert (failed.status, failed.error) == ("failed", "550 5.1.1 Mailbox unavailable")
    assert failed.finished_at is not None
    assert smtp_server.messages == [] and smtp_server.attempts == 1  # permanent: no automatic retry
    session.expire_all()
    assert session.get(Invoice, invoice.id).status == "open"
    [link] = links_of(session, invoice)
    assert delivery.link_state(link) == rules.ACTIVE
    assert http.get(delivery.link_url(rt, link).removeprefix("http://localhost")).status_code == 200
    [event] = session.scalars(select(InvoiceEvent).where(InvoiceEvent.kind != "opened")).all()
    assert (event.kind, event.delivery_id) == ("send_failed", failed.id)
    assert "550 5.1.1 Mailbox unavailable" in event.detail


def test_a_failed_email_can_be_retried_with_the_same_link(app, session, smtp_server, invoice, make, rt):
    admin = make.staff()
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("550 5.7.1 Relaying denied")
    [failed] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=admin)

    retry = delivery.retry_delivery(session, rt, failed, actor=admin)

    assert (retry.status, retry.retry_of_id, retry.link_id) == ("accepted", failed.id, failed.link_id)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["pat@northwind.test"]
    assert path_in(received.message) == delivery.link_url(rt, failed.link).removeprefix("http://localhost")
    with pytest.raises(DomainError, match="already sent again"):
        delivery.retry_delivery(session, rt, failed, actor=admin)
    with pytest.raises(DomainError, match="Only an email that failed"):
        delivery.retry_delivery(session, rt, retry, actor=admin)
    assert session.scalar(select(func.count(InvoiceDelivery.id))) == 2


def test_a_temporary_refusal_is_retried_by_the_gateway_and_delivered(app, session, smtp_server, invoice, rt):
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("451 4.3.0 Try again later")

    [sent] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)

    assert sent.status == "accepted"
    assert smtp_server.attempts == 2 and len(smtp_server.messages) == 1


def test_retrying_after_the_link_was_revoked_sends_a_new_link(app, session, smtp_server, invoice, rt):
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("550 no")
    [failed] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    delivery.revoke_link(session, failed.link, actor=None)

    retry = delivery.retry_delivery(session, rt, failed, actor=None)

    assert retry.link_id != failed.link_id
    assert delivery.link_state(retry.link) == rules.ACTIVE


def test_a_failed_email_superseded_by_a_newer_send_is_not_retried(app, session, smtp_server, invoice, rt):
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("550 no")
    [failed] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    [newer] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)

    with pytest.raises(DomainError, match="newer email"):
        delivery.retry_delivery(session, rt, failed, actor=None)
    assert delivery.link_state(newer.link) == rules.ACTIVE
    assert [r.retryable for r in delivery.overview(session, invoice).deliveries] == [False, False]


def test_a_retry_to_a_contact_who_lost_access_is_refused(app, session, smtp_server, invoice, rt):
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("550 no")
    [failed] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    clients.update_contact(session, pat, portal_access=False)

    with pytest.raises(DomainError, match="no longer has portal access"):
        delivery.retry_delivery(session, rt, failed, actor=None)


def test_a_template_error_still_leaves_the_delivery_failed_not_stuck(app, session, smtp_server, invoice,
                                                                     monkeypatch, rt):
    def broken(template, **_context):
        raise RuntimeError("template exploded")

    monkeypatch.setattr(rt.mailer, "render", broken)

    sent = delivery.send_invoice(session, rt, invoice, actor=None)

    assert [(d.status, d.error) for d in sent] == [("failed", "RuntimeError: template exploded")] * 2
    assert len(links_of(session, invoice)) == 2


# --- resend, reminders, revocation ----------------------------------------------------------------------------------

def test_sending_again_replaces_the_old_link(app, session, smtp_server, invoice, http, rt):
    pat = contact(session, "pat@northwind.test")
    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    old_path = path_in(smtp_server.messages[0].message)

    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    new_path = path_in(smtp_server.messages[1].message)

    assert new_path != old_path
    old, new = links_of(session, invoice)
    assert old.replaced_by_id == new.id
    assert http.get(old_path).status_code == 410
    assert http.get(new_path).status_code == 200


def test_a_reminder_travels_the_same_path_and_keeps_the_live_link(app, session, smtp_server, invoice, clock, rt):
    pat = contact(session, "pat@northwind.test")
    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    clock.set(date(2026, 4, 20))  # now overdue

    [reminder] = delivery.send_reminder(session, rt, invoice, contacts=[pat])

    first, second = (r.message for r in smtp_server.messages)
    assert reminder.kind == "reminder" and reminder.status == "accepted"
    assert second["Subject"] == f"Reminder: invoice {invoice.number} from Acme IT is overdue ($1,234.56)"
    assert "was due on Apr 15, 2026" in second.get_body(("plain",)).get_content()
    assert [a.get_filename() for a in second.iter_attachments()] == [f"{invoice.number}.pdf"]
    assert path_in(second) == path_in(first)
    assert len(links_of(session, invoice)) == 1


def test_revoking_a_link_kills_it_and_is_on_the_timeline(app, session, smtp_server, invoice, make, http, rt):
    admin = make.staff()
    delivery.send_invoice(session, rt, invoice, actor=admin)
    pat_link, kim_link = links_of(session, invoice)

    delivery.revoke_link(session, pat_link, actor=admin)

    assert pat_link.revoked_at is not None and pat_link.revoked_by_id == admin.id
    assert delivery.link_state(pat_link) == rules.REVOKED
    assert delivery.link_state(kim_link) == rules.ACTIVE
    assert http.get(delivery.link_url(rt, pat_link).removeprefix("http://localhost")).status_code == 410
    event = session.scalars(select(InvoiceEvent).where(InvoiceEvent.kind == "link_revoked")).one()
    assert (event.link_id, event.actor_id) == (pat_link.id, admin.id)
    with pytest.raises(DomainError, match="already revoked"):
        delivery.revoke_link(session, pat_link, actor=admin)


def test_sign_out_everywhere_revokes_every_link_of_the_contact_and_ends_sessions(app, session, smtp_server,
                                                                                   make, northwind, invoice, rt):
    second = make.invoice(northwind, 2_000)
    delivery.send_invoice(session, rt, invoice, actor=None)
    delivery.send_invoice(session, rt, second, actor=None)
    pat = contact(session, "pat@northwind.test")
    epoch = pat.session_epoch

    count = delivery.sign_out_everywhere(session, pat, actor=None)

    assert count == 2
    session.expire_all()
    states = {(lk.invoice_id, lk.contact.email): delivery.link_state(lk)
              for lk in session.scalars(select(InvoiceLink))}
    assert states == {
        (invoice.id, "pat@northwind.test"): rules.REVOKED, (second.id, "pat@northwind.test"): rules.REVOKED,
        (invoice.id, "kim@northwind.test"): rules.ACTIVE, (second.id, "kim@northwind.test"): rules.ACTIVE,
    }
    assert contact(session, "pat@northwind.test").session_epoch == epoch + 1


def test_the_link_lifetime_follows_the_configured_days(app_config, request):
    app_config["INVOICE_LINK_DAYS_AFTER_DUE"] = 5
    rt = request.getfixturevalue("rt")
    session = request.getfixturevalue("session")
    inv = request.getfixturevalue("invoice")

    delivery.send_invoice(session, rt, inv, actor=None)

    assert {lk.expires_at for lk in links_of(session, inv)} == {datetime(2026, 4, 21, tzinfo=UTC)}


# --- fresh links ----------------------------------------------------------------------------------------------------

def expired_link(session, smtp_server, invoice, clock, rt):
    pat = contact(session, "pat@northwind.test")
    [sent] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    clock.set(date(2026, 6, 1))
    assert delivery.link_state(sent.link) == rules.EXPIRED
    smtp_server.reset()
    return sent.link


def test_a_fresh_link_goes_to_the_address_on_file_and_works(app, session, smtp_server, invoice, clock, http, rt):
    old = expired_link(session, smtp_server, invoice, clock, rt)

    outcome = delivery.request_fresh_link(session, rt, delivery.link_token(rt, old))

    assert outcome == "sent"
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["pat@northwind.test"]
    assert received.message["Subject"] == f"Your new link to invoice {invoice.number} from Acme IT"
    assert http.get(path_in(received.message)).status_code == 200
    fresh = session.scalars(select(InvoiceDelivery).where(InvoiceDelivery.kind == "fresh_link")).one()
    assert fresh.requested_via_link_id == old.id
    assert fresh.link.expires_at == datetime(2026, 7, 1, 15, tzinfo=UTC)  # 30 days from now: long past due
    assert "fresh_link_requested" in {e.kind for e in session.scalars(select(InvoiceEvent))}


def test_fresh_links_are_capped_per_link(app, session, smtp_server, invoice, clock, rt):
    old = expired_link(session, smtp_server, invoice, clock, rt)
    token = delivery.link_token(rt, old)

    outcomes = [delivery.request_fresh_link(session, rt, token) for _ in range(rules.FRESH_LINKS_PER_LINK + 2)]

    assert outcomes == ["sent"] * rules.FRESH_LINKS_PER_LINK + ["limited", "limited"]
    assert len(smtp_server.messages) == rules.FRESH_LINKS_PER_LINK
    clock.advance(hours=25)
    assert delivery.request_fresh_link(session, rt, token) == "sent"


def test_a_fresh_link_for_a_revoked_link_reuses_the_contacts_live_link_if_any(app, session, smtp_server, invoice, rt):
    pat = contact(session, "pat@northwind.test")
    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    old, live = links_of(session, invoice)
    smtp_server.reset()

    assert delivery.request_fresh_link(session, rt, delivery.link_token(rt, old)) == "sent"

    assert path_in(smtp_server.messages[0].message) == delivery.link_url(rt, live).removeprefix("http://localhost")
    assert len(links_of(session, invoice)) == 2


@pytest.mark.parametrize("spoil", ["tamper", "left_client", "lost_access", "void"])
def test_no_fresh_link_for_bad_tokens_removed_contacts_or_void_invoices(app, session, smtp_server, invoice,
                                                                         clock, make, spoil, rt):
    old = expired_link(session, smtp_server, invoice, clock, rt)
    token = delivery.link_token(rt, old)
    pat = contact(session, "pat@northwind.test")
    if spoil == "tamper":
        token = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    elif spoil == "left_client":
        pat.client_id = make.client("Elsewhere Inc").id
        session.commit()
    elif spoil == "lost_access":
        clients.update_contact(session, pat, portal_access=False)
    else:
        billing.void_invoice(session, invoice, "Sent in error")

    assert delivery.request_fresh_link(session, rt, token) == "ignored"
    assert smtp_server.attempts == 0


# --- tokens and opens -----------------------------------------------------------------------------------------------

def test_a_token_for_another_invoice_or_with_the_wrong_nonce_resolves_to_nothing(app, session, smtp_server,
                                                                                  invoice, make, northwind, rt):
    other = make.invoice(northwind, 999)
    delivery.send_invoice(session, rt, invoice, actor=None)
    link = links_of(session, invoice)[0]
    serializer = delivery.tokens._serializer(rt)

    assert delivery.resolve_link(session, rt, delivery.link_token(rt, link)).ok
    for payload in ([link.id, other.id, link.nonce], [link.id, invoice.id, "x" * 32], [link.id, invoice.id],
                    {"l": link.id}, [str(link.id), invoice.id, link.nonce], [link.id + 99, invoice.id, link.nonce]):
        access = delivery.resolve_link(session, rt, serializer.dumps(payload))
        assert (access.state, access.link, access.invoice) == (delivery.UNKNOWN, None, None), payload
    for junk in ("", "abc", "x" * 1000, delivery.link_token(rt, link) + "x"):
        assert delivery.resolve_link(session, rt, junk).state == delivery.UNKNOWN


def test_a_token_signed_for_another_purpose_does_not_open_an_invoice(app, session, smtp_server, invoice, rt):
    from itsdangerous import URLSafeSerializer

    delivery.send_invoice(session, rt, invoice, actor=None)
    link = links_of(session, invoice)[0]
    other_purpose = URLSafeSerializer(app.config["SECRET_KEY"], salt="sign-in").dumps(
        [link.id, invoice.id, link.nonce])

    assert delivery.resolve_link(session, rt, other_purpose).state == delivery.UNKNOWN


def test_opens_are_counted_but_not_head_scanners_or_staff(app, session, smtp_server, invoice, clock, rt):
    delivery.send_invoice(session, rt, invoice, actor=None)
    link = links_of(session, invoice)[0]

    assert not delivery.record_open(session, link, method="HEAD", user_agent=BROWSER)
    assert not delivery.record_open(session, link, method="GET", user_agent="Barracuda Sentinel (EE)")
    assert not delivery.record_open(session, link, method="GET", user_agent=BROWSER, by_staff=True)
    assert (link.open_count, link.first_opened_at) == (0, None)

    assert delivery.record_open(session, link, method="GET", user_agent=BROWSER)
    first = clock.now()
    clock.advance(hours=3)
    assert delivery.record_open(session, link, method="GET", user_agent=BROWSER)

    session.expire_all()
    link = session.get(InvoiceLink, link.id)
    assert (link.open_count, link.first_opened_at, link.last_opened_at) == (2, first, first + timedelta(hours=3))
    opened = session.scalars(select(InvoiceEvent).where(InvoiceEvent.kind == "opened")).all()
    assert len(opened) == 1 and "Pat Payable" in opened[0].detail


# --- bulk and the admin overview -------------------------------------------------------------------------------------

def test_bulk_send_reports_each_invoice(app, session, smtp_server, make, northwind, msp, invoice, rt):
    second = make.invoice(northwind, 2_000)
    nobody = make.client("Nobody Home")
    orphan = make.invoice(nobody, 3_000)

    result = delivery.send_many(session, rt, [invoice.id, second.id, orphan.id, 987654, invoice.id], actor=None)

    assert result.sent == [invoice.number, second.number]
    assert result.failed == [(orphan.number, "Nobody Home has no billing contact with portal access. Add one, "
                                             "then send."), ("#987654", "No such invoice.")]
    assert len(smtp_server.messages) == 4


def test_unsent_open_invoices_are_offered_for_bulk_send(app, session, smtp_server, make, northwind, invoice, rt):
    second = make.invoice(northwind, 2_000)
    make.invoice(northwind, 3_000, issue=False)
    delivery.send_invoice(session, rt, invoice, actor=None)

    assert [i.id for i in delivery.unsent_open_invoices(session)] == [second.id]
    assert [i.id for i in delivery.unsent_open_invoices(session, include_sent=True)] == [invoice.id, second.id]


def test_overview_lists_links_deliveries_and_timeline(app, session, smtp_server, invoice, rt):
    pat = contact(session, "pat@northwind.test")
    smtp_server.reply_next("550 nope")
    [failed] = delivery.send_invoice(session, rt, invoice, contacts=[pat], actor=None)
    retry = delivery.retry_delivery(session, rt, failed, actor=None)

    view = delivery.overview(session, invoice)

    assert [(r.delivery.id, r.retryable) for r in view.deliveries] == [(retry.id, False), (failed.id, False)]
    assert [(r.link.id, r.state) for r in view.links] == [(failed.link_id, rules.ACTIVE)]
    assert [e.kind for e in view.events] == ["sent", "send_failed"]
    assert view.last_sent_at == retry.finished_at
    assert [c.email for c in view.contacts] == ["pat@northwind.test", "kim@northwind.test", "it@northwind.test"]
