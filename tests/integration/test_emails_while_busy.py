"""Emails through the loopback SMTP server while the portal keeps working: an SMTP conversation takes a moment, and
other requests write meanwhile. What the email's sending writes afterwards (its outcome, its stamp) must still be
written: on SQLite a transaction that read before the email cannot write after it once another connection wrote."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.links import DeliveryStatus
from portal.gateways.payments import sandbox_token
from portal.models import ChargeAttempt, InvoiceDelivery
from portal.services import clients, delivery, payments
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import new_request, runtime_for
from tests.smtp_fixtures import mail_through_smtp  # noqa: F401 (fixture)


def somebody_writes(app):
    def write():
        with app.app_context(), Session(app.extensions["db_engine"]) as other:
            clients.create_client(other, legal_name="Added Meanwhile LLC")
    return write


def test_a_write_elsewhere_while_the_receipt_goes_out_keeps_its_stamp(app, session, shop, sandbox_gateway,
                                                                        smtp_server):
    """The receipt is noted as sent, so reconciliation does not send it again."""
    smtp_server.while_receiving = somebody_writes(app)
    attempt = payments.pay(session, runtime_for(sandbox_gateway), new_request(session, shop),
                           token=sandbox_token("card", "4242424242424242"), attempt_number=1)

    assert attempt.status == "succeeded"
    session.expire_all()
    assert session.get(ChargeAttempt, attempt.id).receipt_sent_at is not None
    assert [m.message["Subject"].startswith("Payment received") for m in smtp_server.messages] == [True]


def test_a_write_elsewhere_while_an_invoice_goes_out_keeps_its_outcome(app, session, rt, shop, smtp_server):
    smtp_server.while_receiving = somebody_writes(app)
    delivery.send_invoice(session, rt, shop.first, contacts=[shop.contact], actor=None)

    session.expire_all()
    [sent] = session.scalars(select(InvoiceDelivery)).all()
    assert sent.status == DeliveryStatus.ACCEPTED and sent.message_id
    assert len(smtp_server.messages) == 1
