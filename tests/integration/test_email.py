"""Outgoing email through a real SMTP server on loopback: what arrives, and what happens when the relay says no."""

from __future__ import annotations

import io
import socket

import pytest
from jinja2 import ChoiceLoader, DictLoader
from pypdf import PdfReader

from portal import db
from portal.gateways import email
from portal.services import mail
from portal.services.settings import update_settings
from tests.smtp_fixtures import mail_through_smtp, retry_mail_quickly  # noqa: F401 (fixtures)

# The gateway is tested with its own small templates, so these tests do not depend on the product's wording.
TEMPLATES = {
    "email/test_invoice.txt": "Hello {{ name }},\nInvoice {{ number }} is attached.\n",
    "email/test_invoice.html": "<p>Hello {{ name }},</p><p>Invoice <b>{{ number }}</b> is attached.</p>",
    "pdf/test_invoice.html": "<html><body><h1>Invoice {{ number }}</h1></body></html>",
}


@pytest.fixture
def app(app):
    app.jinja_env.loader = ChoiceLoader([DictLoader(TEMPLATES), app.jinja_env.loader])
    return app


def send_invoice(**kw):
    from flask import current_app

    return mail.send(db.session(), current_app.extensions["runtime"], to=["ap@northwind.test"],
                     subject="Invoice INV-0042", template="test_invoice",
                     context={"name": "Pat", "number": "INV-0042"}, **kw)


def test_a_message_with_html_and_a_pdf_arrives_as_sent(app, rt, session, smtp_server):
    update_settings(session, name="Acme IT", email="billing@acme-it.test", reply_to="ar@acme-it.test")
    pdf = rt.pdf.render("test_invoice", number="INV-0042")

    delivery = send_invoice(attachments=[email.Attachment("INV-0042.pdf", pdf)])

    assert (delivery.ok, delivery.transport, delivery.recipients) == (True, "smtp", ("ap@northwind.test",))
    [received] = smtp_server.messages
    assert received.mail_from == "billing@acme-it.test"
    assert received.rcpt_tos == ["ap@northwind.test"]
    msg = received.message
    assert msg["Message-ID"] == delivery.message_id
    assert msg["From"].addresses[0].display_name == "Acme IT"
    assert (msg["To"], msg["Subject"], msg["Reply-To"]) == ("ap@northwind.test", "Invoice INV-0042",
                                                             "ar@acme-it.test")
    assert msg.get_body(("plain",)).get_content() == "Hello Pat,\nInvoice INV-0042 is attached.\n"
    assert "Invoice <b>INV-0042</b>" in msg.get_body(("html",)).get_content()
    [attachment] = list(msg.iter_attachments())
    assert (attachment.get_filename(), attachment.get_content_type()) == ("INV-0042.pdf", "application/pdf")
    assert attachment.get_content() == pdf
    assert "Invoice INV-0042" in PdfReader(io.BytesIO(attachment.get_content())).pages[0].extract_text()


def test_without_a_reply_to_setting_no_reply_to_header_is_sent(app, session, smtp_server):
    update_settings(session, name="Acme IT", email="billing@acme-it.test")

    assert send_invoice().ok
    [received] = smtp_server.messages
    assert received.message["Reply-To"] is None
    assert received.mail_from == "billing@acme-it.test"


def test_portal_mail_from_wins_over_the_msp_address(app_config, request, smtp_server):
    app_config["MAIL_FROM"] = "noreply@pay.acme-it.test"
    request.getfixturevalue("app")
    update_settings(db.session(), name="Acme IT", email="billing@acme-it.test")

    assert send_invoice().ok
    [received] = smtp_server.messages
    assert received.mail_from == "noreply@pay.acme-it.test"
    assert received.message["From"].addresses[0].display_name == "Acme IT"


def test_a_temporary_refusal_is_retried_and_delivered(app, smtp_server, quick_retries):
    smtp_server.reply_next("451 4.3.0 Try again later")

    delivery = send_invoice()

    assert delivery.ok
    assert smtp_server.attempts == 2
    assert len(smtp_server.messages) == 1


def test_a_relay_that_keeps_refusing_temporarily_is_reported_after_the_last_try(app, smtp_server, quick_retries):
    smtp_server.reply_next(*["451 4.3.0 Try again later"] * (len(email.RETRY_DELAYS) + 1))

    delivery = send_invoice()

    assert (delivery.ok, delivery.transport) == (False, "smtp")
    assert delivery.error.startswith("451")
    assert smtp_server.attempts == len(email.RETRY_DELAYS) + 1
    assert smtp_server.messages == []


def test_a_permanent_refusal_is_reported_as_failed_without_retrying(app, smtp_server, quick_retries):
    smtp_server.reply_next("550 5.7.1 Relaying denied")

    delivery = send_invoice()

    assert delivery.ok is False
    assert delivery.error == "550 5.7.1 Relaying denied"
    assert delivery.message_id
    assert smtp_server.attempts == 1
    assert smtp_server.messages == []


def test_an_unreachable_relay_is_reported_not_raised(app_config, request, quick_retries):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    request.getfixturevalue("app")

    delivery = send_invoice()

    assert (delivery.ok, delivery.transport) == (False, "smtp")
    assert "ConnectionRefusedError" in delivery.error
