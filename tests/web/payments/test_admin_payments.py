"""The staff's online-payment pages: the list (state, gateway reference), refunds through the gateway, settings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from portal.gateways.payments import sandbox_token
from portal.models import ChargeAttempt, GatewayRefund, PaymentSettings, Refund
from portal.services import payments
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.payments_fixtures import count, invoice_state, new_request, runtime_for

from .conftest import location, row, text, value_of, words


@pytest.fixture
def staff_http(http, make, sandbox_gateway):
    sign_in(http, make.staff())
    return http


def paid(session, shop, gateway, *, number="4242424242424242", kind="card", amounts=None, accepted=None):
    return payments.pay(session, runtime_for(gateway), new_request(session, shop, amounts), attempt_number=1,
                               token=sandbox_token(kind, number), accepted_surcharge_cents=accepted)


def test_the_list_shows_state_and_gateway_reference(staff_http, session, shop, sandbox_gateway):
    card = paid(session, shop, sandbox_gateway)
    declined = payments.pay(session, runtime_for(sandbox_gateway), new_request(session, shop, {shop.second.id: 25_000}),
                                   attempt_number=1, token=sandbox_token("card", "4000000000000002"))
    bank = payments.pay(session, runtime_for(sandbox_gateway), declined.request, attempt_number=2,
                               token=sandbox_token("us_bank_account", "000123456789"))

    page = text(staff_http.get("/admin/online-payments"))

    assert "SANDBOX" in page
    assert row(page, "attempt", card.id) == (
        f"Mar 16, 2026 Acme Dental LLC {shop.first.number} Visa credit ••4242 $100.00 Succeeded {card.gateway_id}")
    assert "Failed" in row(page, "attempt", declined.id)
    assert "Processing" in row(page, "attempt", bank.id) and "Bank ••6789" in row(page, "attempt", bank.id)
    processing_only = text(staff_http.get("/admin/online-payments?state=processing"))
    assert f'data-attempt="{bank.id}"' in processing_only and f'data-attempt="{card.id}"' not in processing_only
    assert f'data-attempt="{declined.id}"' in text(staff_http.get("/admin/online-payments?state=failed"))
    assert staff_http.get("/admin/online-payments?state=nonsense").status_code == 200


def test_the_list_reads_each_attempts_checkout_with_the_page_not_one_by_one(app, staff_http, session, make,
                                                                            sandbox_gateway):
    """Each row names its checkout's invoices and links to its client: the page's checkouts, their items and
    invoices are read in one statement each, not three a row (25 rows a page)."""
    def grow(n: int) -> None:
        for _ in range(n):
            client = make.client()
            contact = make.contact(client)
            invoices = [make.invoice(client, 5_000), make.invoice(client, 7_000)]
            request = payments.create_request(session, client=client, contact=contact,
                                              amounts={i.id: i.total_cents for i in invoices})
            payments.pay(session, runtime_for(sandbox_gateway), request, attempt_number=1,
                         token=sandbox_token("card", "4242424242424242"))

    grow(1)
    [shown] = statements_unchanged_as_rows_grow(app, [lambda: staff_http.get("/admin/online-payments")],
                                                lambda: grow(4))
    page = text(shown)
    for attempt in session.scalars(select(ChargeAttempt)):
        numbers = [item.invoice.number for item in attempt.request.items]
        assert len(numbers) == 2 and all(n in row(page, "attempt", attempt.id) for n in numbers)
        assert f'/admin/clients/{attempt.request.client_id}"' in row_html(page, attempt.id)


def row_html(page: str, attempt_id: int) -> str:
    start = page.index(f'data-attempt="{attempt_id}"')
    return page[start:page.index("</tr>", start)]


def test_the_detail_page_and_a_full_refund(staff_http, session, shop, sandbox_gateway):
    attempt = paid(session, shop, sandbox_gateway)
    page = text(staff_http.get(f"/admin/online-payments/{attempt.id}"))
    assert attempt.gateway_id in page and "Visa credit card ending 4242" in page
    assert value_of(page, "amount") == "100.00"  # a full refund unless the staff types less

    nonce = _nonce(page)
    response = staff_http.post(f"/admin/payments/{attempt.payment_id}/refund",
                               data={"nonce": nonce, "amount": "100.00", "reason": "Client cancelled"})

    assert location(response) == f"/admin/online-payments/{attempt.id}"
    after = words(staff_http.get(f"/admin/online-payments/{attempt.id}"))
    assert "Refund of $100.00 sent: succeeded." in after and "Refunded" in after
    refund = session.scalar(select(GatewayRefund))
    assert refund.gateway_refund_id.startswith("sbx_re_") and refund.status == "succeeded"
    assert session.get(Refund, refund.refund_id).gateway_ref == refund.gateway_refund_id
    assert invoice_state(session, shop.first) == ("open", 10_000)
    assert 'id="refund"' not in text(staff_http.get(f"/admin/online-payments/{attempt.id}"))  # nothing left


def test_a_partial_refund_with_its_share_of_the_surcharge(staff_http, session, shop, sandbox_gateway):
    payments.update_payment_settings(session, surcharge_percent=Decimal("3"), blocked_regions="",
                                            partial_minimum_cents=1_000)
    attempt = paid(session, shop, sandbox_gateway, accepted=300)
    nonce = _nonce(text(staff_http.get(f"/admin/online-payments/{attempt.id}")))

    staff_http.post(f"/admin/payments/{attempt.payment_id}/refund",
                    data={"nonce": nonce, "amount": "50", "reason": "Half the work"})

    refund = session.scalar(select(GatewayRefund))
    assert (refund.amount_cents, refund.surcharge_cents) == (5_000, 150)
    assert invoice_state(session, shop.first) == ("open", 5_000)
    assert "Partially refunded" in text(staff_http.get("/admin/online-payments"))


@pytest.mark.parametrize(("amount", "message"), [
    ("100.01", "more than is left to refund"),
    ("abc", "is not an amount"),
    ("0", "A refund must be more than zero."),
])
def test_bad_refunds_are_refused_and_change_nothing(staff_http, session, shop, sandbox_gateway, amount, message):
    attempt = paid(session, shop, sandbox_gateway)
    nonce = _nonce(text(staff_http.get(f"/admin/online-payments/{attempt.id}")))

    response = staff_http.post(f"/admin/payments/{attempt.payment_id}/refund",
                               data={"nonce": nonce, "amount": amount, "reason": "r"})

    assert response.status_code == 400
    assert message in text(response)
    assert count(session, GatewayRefund) == 0 and count(session, Refund) == 0
    assert invoice_state(session, shop.first) == ("paid", 0)


def test_a_refund_needs_a_reason(staff_http, session, shop, sandbox_gateway):
    attempt = paid(session, shop, sandbox_gateway)
    response = staff_http.post(f"/admin/payments/{attempt.payment_id}/refund",
                               data={"nonce": "n1", "amount": "10", "reason": ""})
    assert response.status_code == 400 and "Say why the money is refunded." in text(response)
    assert count(session, GatewayRefund) == 0


def test_the_same_refund_form_posted_twice_refunds_once(staff_http, session, shop, sandbox_gateway):
    attempt = paid(session, shop, sandbox_gateway)
    form = {"nonce": _nonce(text(staff_http.get(f"/admin/online-payments/{attempt.id}"))), "amount": "40",
            "reason": "Overbilled"}

    staff_http.post(f"/admin/payments/{attempt.payment_id}/refund", data=form)
    staff_http.post(f"/admin/payments/{attempt.payment_id}/refund", data=form)

    assert count(session, GatewayRefund) == 1 and count(session, Refund) == 1
    assert invoice_state(session, shop.first) == ("open", 4_000)


def test_a_processing_bank_payment_cannot_be_refunded_yet(staff_http, session, shop, sandbox_gateway):
    attempt = paid(session, shop, sandbox_gateway, kind="us_bank_account", number="000123456789")
    assert 'id="refund"' not in text(staff_http.get(f"/admin/online-payments/{attempt.id}"))
    response = staff_http.post(f"/admin/payments/{attempt.payment_id}/refund",
                               data={"nonce": "n", "amount": "10", "reason": "r"})
    assert "Only a completed online payment can be refunded." in text(response)
    assert count(session, GatewayRefund) == 0


def test_unknown_payment_gives_404(staff_http):
    assert staff_http.get("/admin/online-payments/999").status_code == 404


def test_staff_only(http, shop, sandbox_gateway):
    response = http.get("/admin/online-payments")
    assert response.status_code == 302 and location(response) == "/admin/login"
    sign_in(http, shop.contact)
    assert http.get("/admin/online-payments").status_code == 403
    assert http.get("/admin/payment-settings").status_code == 403


# --- settings ----------------------------------------------------------------------------------------------------


def test_settings_start_with_the_surcharge_off(staff_http):
    page = text(staff_http.get("/admin/payment-settings"))
    assert value_of(page, "surcharge_percent") == "0"
    assert value_of(page, "partial_minimum") == "10.00"


def test_saving_the_settings(staff_http, session):
    response = staff_http.post("/admin/payment-settings", data={"surcharge_percent": "2.5",
                                                                "blocked_regions": "ma; ct", "partial_minimum": "25"})
    assert location(response) == "/admin/payment-settings"
    settings = payments.payment_settings(session)
    session.refresh(settings)
    assert (settings.surcharge_percent, settings.surcharge_blocked_regions, settings.partial_minimum_cents) == (
        Decimal("2.5"), "CT, MA", 2_500)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("surcharge_percent", "3.5", "capped at 3%"),
    ("surcharge_percent", "-1", "cannot be negative"),
    ("surcharge_percent", "lots", "is not a number"),
    ("partial_minimum", "0.10", "at least $0.50"),
    ("partial_minimum", "x", "is not an amount"),
    ("blocked_regions", "<script>", "Use state codes separated by commas."),
])
def test_bad_settings_are_refused(staff_http, session, field, value, message):
    data = {"surcharge_percent": "2", "blocked_regions": "", "partial_minimum": "10"} | {field: value}
    response = staff_http.post("/admin/payment-settings", data=data)

    assert response.status_code == 200
    assert message in text(response)
    assert session.get(PaymentSettings, 1) is None  # nothing was saved
    settings = payments.payment_settings(session)
    assert settings.surcharge_percent == 0 and settings.partial_minimum_cents == 1_000


def _nonce(page: str) -> str:
    return value_of(page, "nonce")


def test_every_attempt_row_links_its_client(staff_http, session, shop, sandbox_gateway):
    attempt = paid(session, shop, sandbox_gateway)
    page = text(staff_http.get("/admin/online-payments"))
    assert f'/admin/clients/{shop.client.id}"' in page
    assert f'/admin/online-payments/{attempt.id}"' in page
    assert session.get(ChargeAttempt, attempt.id).payment_id is not None
