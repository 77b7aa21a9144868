"""Where online payments show up on the other pages: pay buttons for clients, panels and disputes for staff."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.gateways.payments import sandbox_token
from portal.models import InvoiceLink, Refund
from portal.services import delivery, payments
from tests.conftest import sign_in
from tests.payments_fixtures import count, invoice_state, new_request, runtime_for, stripe_config

from .conftest import row, text, words


@pytest.fixture
def app_config(app_config, fake_stripe):
    app_config.update(stripe_config(fake_stripe))
    return app_config


def test_the_client_portal_invoice_and_overview_pages_link_to_paying(http, shop, stripe_gateway):
    sign_in(http, shop.contact)
    assert f'href="/pay?invoice={shop.first.id}">Pay online</a>' in text(http.get(f"/invoices/{shop.first.id}"))
    assert 'href="/pay">Pay online</a>' in text(http.get("/"))


def test_the_invoice_link_page_links_to_paying_its_invoice(http, session, rt, shop, stripe_gateway):
    delivery.send_invoice(session, rt, shop.first, contacts=[shop.contact])
    token = delivery.link_token(rt, session.scalar(select(InvoiceLink)))
    page = text(http.get(f"/i/{token}"))
    assert f'href="/i/{token}/pay">Pay online</a>' in page
    assert "SANDBOX" not in page  # Stripe mode


@pytest.fixture
def disputed(session, shop, stripe_gateway, fake_stripe):
    attempt = payments.pay(session, runtime_for(stripe_gateway), new_request(session, shop), attempt_number=1,
                                  token=fake_stripe.confirmation_token("pm_card_visa"))
    dispute = fake_stripe.create_dispute(attempt.gateway_id, reason="duplicate")
    payload, header = fake_stripe.event("charge.dispute.created", dispute)
    payments.handle_event(session, runtime_for(stripe_gateway), stripe_gateway.parse_webhook(payload, header), payload)
    return attempt, dispute


def test_staff_see_disputes_on_the_client_and_the_invoice(http, make, shop, disputed):
    attempt, dispute = disputed
    sign_in(http, make.staff())

    for url in (f"/admin/invoices/{shop.first.id}", f"/admin/clients/{shop.client.id}?tab=payments"):
        page = text(http.get(url))
        expected = f"Mar 16, 2026 {attempt.gateway_id} duplicate Needs response $100.00"
        assert row(page, "dispute", dispute["id"]) == expected
        assert "Disputed" in row(page, "attempt", attempt.id)
    assert 'id="disputes"' not in text(http.get(f"/admin/invoices/{shop.second.id}"))
    detail = words(http.get(f"/admin/online-payments/{attempt.id}"))
    assert "This payment is disputed by the client's bank." in detail and "Refund through" not in detail


def test_the_ledger_payment_page_sends_refunds_of_online_payments_to_the_gateway(http, make, session, shop,
                                                                                 stripe_gateway, fake_stripe):
    attempt = payments.pay(session, runtime_for(stripe_gateway), new_request(session, shop), attempt_number=1,
                                  token=fake_stripe.confirmation_token("pm_card_visa"))
    sign_in(http, make.staff())

    page = text(http.get(f"/admin/payments/{attempt.payment_id}"))

    assert f'href="/admin/online-payments/{attempt.id}">open the online payment</a>' in page
    assert "Record a refund" not in page
    assert 'href="/admin/online-payments">Online payments</a>' in text(http.get("/admin/payments"))
    assert 'href="/admin/payment-settings"' in text(http.get("/admin/settings"))


def test_the_offline_refund_form_sent_for_an_online_payment_is_refused_and_changes_nothing(http, make, session,
                                                                                          shop, sandbox_gateway):
    """The admin area has one refund action; for an online payment it refunds through the gateway, once per
    rendered online refund form. The ledger page's offline form (no form nonce, a refund date) refunds nothing."""
    attempt = payments.pay(session, runtime_for(sandbox_gateway), new_request(session, shop), attempt_number=1,
                           token=sandbox_token("card", "4242424242424242"))
    sign_in(http, make.staff())

    response = http.post(f"/admin/payments/{attempt.payment_id}/refund",
                         data={"amount": "100.00", "reason": "client asked", "refunded_on": "2026-03-16"})

    assert response.status_code == 400
    assert "This form is incomplete. Please reload the page." in text(response), text(response)
    assert count(session, Refund) == 0
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_an_offline_refund_of_an_online_payment_is_refused_by_the_service(session, shop, sandbox_gateway):
    from portal.domain.errors import DomainError
    from portal.models import Payment

    attempt = payments.pay(session, runtime_for(sandbox_gateway), new_request(session, shop), attempt_number=1,
                           token=sandbox_token("card", "4242424242424242"))

    with pytest.raises(DomainError, match="This payment was made online. Refund it from its online payment page"):
        payments.refund_offline(session, session.get(Payment, attempt.payment_id), amount_cents=10_000, reason="x")
    session.rollback()
    assert count(session, Refund) == 0
    assert invoice_state(session, shop.first) == ("paid", 0)
