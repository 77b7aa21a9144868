"""Equipment orders on a real database: the deposit request for a quote (emailed as a portal link), the credit
limit at its boundary, the client's acceptance (a signed, verifiable deposit agreement, the deposit invoice and its
checkout), "cleared to order" only once the deposit settled (card at once; a bank debit not while processing, yes
when it settles, never when it fails), cancel, isolation, and several OS processes accepting at once."""

from __future__ import annotations

import json
import multiprocessing
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.domain.errors import DomainError
from portal.domain.orders import OrderItem, OrderStatus
from portal.models import Agreement, ChargeAttempt, EquipmentOrder, Invoice, PaymentRequest
from portal.services import agreements, payments
from portal.services.agreements.chain import Meta
from portal.services.due import orders_cleared
from portal.services.enforcement import credit, orders
from portal.services.errors import NotFound
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, invoice_state, read_outbox, runtime_for

META = Meta(ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", session_id="d" * 32)
WORKERS = 4
ITEMS = [OrderItem("Firewall FG-60F", 1, 80_000), OrderItem("Switch 24-port", 2, 35_000)]  # $1,500.00


@pytest.fixture
def staff(make):
    return make.staff()


def new_order(session, rt, shop_, staff, *, items=ITEMS, percent="50", **kw):
    return orders.create_order(session, rt, shop_.client.id, items=items, deposit_percent=Decimal(percent),
                               quote_reference=kw.pop("quote_reference", "Q-1001"), staff=staff, **kw)


def sign(session, rt, contact, order, *, sha=None):
    doc = orders.document(session, rt, order)
    signed = orders.SignedBy(full_name="Pat Doe", title="Office Manager", authority_confirmed=True,
                             consent_confirmed=True, signature=agreements.Signature(kind="typed", typed="Pat Doe"),
                             shown_sha256=sha or doc.sha256)
    return orders.accept(session, rt, contact, order.public_id, signed, meta=META)


def status_of(session, order) -> str:
    session.expire_all()
    return session.get(EquipmentOrder, order.id).status


def pay(session, gateway, request, token):
    return payments.pay(session, runtime_for(gateway), request, token=token, attempt_number=1)


def deliver(session, gateway, fake, event_type, intent_id):
    payload, header = fake.payment_intent_event(event_type, intent_id)
    return payments.handle_event(session, runtime_for(gateway), gateway.parse_webhook(payload, header), payload)


def test_a_deposit_request_is_stored_and_emailed_as_a_portal_link(session, rt, shop, staff, outbox):
    order = new_order(session, rt, shop, staff, percent="33.33")
    assert order.reference == f"ORD-{order.id:06d}" and order.status == OrderStatus.REQUESTED
    assert (order.total_cents, order.deposit_cents) == (150_000, 49_995)  # 33.33% of $1,500.00, rounded once
    assert orders.items_of(order) == ITEMS
    [mail] = read_outbox(outbox)
    assert mail["To"] == "pat@acme-dental.test" and order.reference in mail["Subject"]
    text = mail.get_body(("plain",)).get_content()
    assert f"/orders/{order.public_id}" in text and "$1,500.00" in text and "$499.95" in text


@pytest.mark.parametrize(("items", "percent", "message"), [
    ([], "50", "at least one item"),
    ([OrderItem("", 1, 100)], "50", "describe the item"),
    ([OrderItem("Laptop", 0, 100_000)], "50", "quantity must be between"),
    ([OrderItem("Laptop", 1, -100)], "50", "cannot be negative"),
    (ITEMS, "0", "more than 0%"),
    (ITEMS, "101", "at most 100%"),
    (ITEMS, "12.345", "two decimals"),
    ([OrderItem("Cable", 1, 60)], "50", r"at least \$0\.50"),
])
def test_a_bad_order_is_refused_and_nothing_written(session, rt, shop, staff, outbox, items, percent, message):
    with pytest.raises(DomainError, match=message):
        new_order(session, rt, shop, staff, items=items, percent=percent)
    assert session.scalar(select(func.count()).select_from(EquipmentOrder)) == 0
    assert read_outbox(outbox) == []


# --- credit limit ---------------------------------------------------------------------------------------------------

def test_credit_limit_allows_exactly_the_limit_and_blocks_one_cent_over(session, rt, shop, staff):
    # open A/R: $100.00 + $250.00; the order: $1,500.00
    credit.set_limit(session, shop.client.id, 35_000 + 150_000 - 1, staff=staff)
    with pytest.raises(DomainError) as refused:
        new_order(session, rt, shop, staff)
    assert str(refused.value) == ("Blocked by the credit limit: open A/R $350.00 plus this order $1,500.00 is "
                                  "$1,850.00, over the limit of $1,849.99 by $0.01.")
    assert session.scalar(select(func.count()).select_from(EquipmentOrder)) == 0

    credit.set_limit(session, shop.client.id, 35_000 + 150_000, staff=staff)
    assert new_order(session, rt, shop, staff).status == OrderStatus.REQUESTED


def test_no_limit_means_no_block_and_a_negative_limit_is_refused(session, rt, shop, staff):
    credit.set_limit(session, shop.client.id, 0, staff=staff)
    with pytest.raises(DomainError, match="over the limit of \\$0.00"):
        new_order(session, rt, shop, staff)
    credit.set_limit(session, shop.client.id, None, staff=staff)  # removed
    assert credit.limit_of(session, shop.client.id) is None
    assert new_order(session, rt, shop, staff).status == OrderStatus.REQUESTED
    with pytest.raises(DomainError, match="cannot be negative"):
        credit.set_limit(session, shop.client.id, -1, staff=staff)
    assert credit.limit_of(session, shop.client.id) is None


def test_open_ar_counts_a_previous_orders_deposit_invoice(session, rt, shop, staff):
    order = new_order(session, rt, shop, staff)
    sign(session, rt, shop.contact, order)  # issues the $750.00 deposit invoice
    assert credit.position(session, shop.client.id).open_ar_cents == 35_000 + 75_000
    credit.set_limit(session, shop.client.id, 35_000 + 75_000 + 150_000, staff=staff)
    new_order(session, rt, shop, staff)  # exactly at the limit
    with pytest.raises(DomainError, match="by \\$0.01"):
        new_order(session, rt, shop, staff, items=[*ITEMS, OrderItem("Patch cable", 1, 1)])


# --- accepting ------------------------------------------------------------------------------------------------------

def test_accepting_signs_a_verifiable_agreement_and_issues_the_deposit_invoice(session, rt, shop, staff, outbox):
    order = new_order(session, rt, shop, staff, percent="25")
    done = sign(session, rt, shop.contact, order)

    order, agreement, request = done.order, done.agreement, done.request
    assert order.status == OrderStatus.ACCEPTED and order.agreement_id == agreement.id
    assert agreement.kind == "equipment_deposit" and agreement.status == "signed"
    assert "Firewall FG-60F" in agreement.document_text and "$375.00" in agreement.document_text
    found = agreements.verify_reference(session, rt, agreement.reference)
    assert found.intact and found.signed and found.breaks == ()
    invoice = session.get(Invoice, order.deposit_invoice_id)
    assert (invoice.status, invoice.total_cents, invoice.source) == ("open", 37_500, "deposit")
    assert order.request_id == request.id and request.amount_cents == 37_500
    assert [(i.invoice_id, i.amount_cents) for i in request.items] == [(invoice.id, 37_500)]
    assert any("Your signed copy" in m["Subject"] for m in read_outbox(outbox))
    assert not orders.is_cleared(order)


def test_accepting_twice_or_a_changed_document_is_refused(session, rt, shop, staff):
    order = new_order(session, rt, shop, staff)
    with pytest.raises(DomainError, match="changed since you opened it"):
        sign(session, rt, shop.contact, order, sha="0" * 64)
    assert status_of(session, order) == OrderStatus.REQUESTED
    sign(session, rt, shop.contact, order)
    with pytest.raises(DomainError, match="already accepted"):
        sign(session, rt, shop.contact, order)
    assert session.scalar(select(func.count()).select_from(Agreement)) == 1
    assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.source == "deposit")) == 1


def test_another_clients_contact_cannot_see_or_accept(session, rt, shop, staff, make):
    order = new_order(session, rt, shop, staff)
    other = make.client("Other LLC")
    stranger = make.contact(other, email="eve@other.test")
    with pytest.raises(NotFound):
        orders.order_for_client(session, other.id, order.public_id)
    with pytest.raises(NotFound):
        sign(session, rt, stranger, order)
    assert status_of(session, order) == OrderStatus.REQUESTED
    assert orders.orders_of(session, other.id) == []


# --- deposit gating -------------------------------------------------------------------------------------------------

def test_a_card_deposit_clears_the_order_at_once(session, shop, staff, stripe_gateway, fake_stripe):
    rt = runtime_for(stripe_gateway)
    order = new_order(session, rt, shop, staff)
    done = sign(session, rt, shop.contact, order)
    attempt = pay(session, stripe_gateway, done.request, fake_stripe.confirmation_token("pm_card_visa"))
    assert attempt.status == "succeeded"
    assert status_of(session, order) == OrderStatus.CLEARED
    assert session.get(EquipmentOrder, order.id).cleared_at is not None


def test_a_bank_debit_clears_the_order_only_when_it_settles(session, shop, staff, stripe_gateway, fake_stripe):
    rt = runtime_for(stripe_gateway)
    order = new_order(session, rt, shop, staff)
    done = sign(session, rt, shop.contact, order)
    attempt = pay(session, stripe_gateway, done.request, fake_stripe.confirmation_token("pm_usBankAccount_success"))
    assert attempt.status == "processing"
    assert status_of(session, order) == OrderStatus.ACCEPTED  # pending is not settled
    assert orders.clear_all_settled(session) == 0  # run-due's step agrees
    assert status_of(session, order) == OrderStatus.ACCEPTED

    fake_stripe.settle(attempt.gateway_id)
    deliver(session, stripe_gateway, fake_stripe, "payment_intent.succeeded", attempt.gateway_id)
    assert status_of(session, order) == OrderStatus.CLEARED


def test_a_failed_bank_debit_leaves_the_order_waiting(session, shop, staff, stripe_gateway, fake_stripe):
    rt = runtime_for(stripe_gateway)
    order = new_order(session, rt, shop, staff)
    done = sign(session, rt, shop.contact, order)
    attempt = pay(session, stripe_gateway, done.request,
                  fake_stripe.confirmation_token("pm_usBankAccount_insufficientFunds"))
    fake_stripe.settle(attempt.gateway_id)  # the bank returns the debit
    deliver(session, stripe_gateway, fake_stripe, "payment_intent.payment_failed", attempt.gateway_id)
    assert status_of(session, order) == OrderStatus.ACCEPTED
    assert invoice_state(session, session.get(Invoice, order.deposit_invoice_id)) == ("open", 75_000)
    assert orders.clear_all_settled(session) == 0


def test_run_due_clears_an_order_whose_deposit_was_paid_by_check(session, rt, shop, staff, make):
    from datetime import timedelta

    from portal.services.due import DueContext, DueReport

    order = new_order(session, rt, shop, staff)
    sign(session, rt, shop.contact, order)
    make.payment(shop.client, 75_000, allocations={order.deposit_invoice_id: 75_000})
    assert status_of(session, order) == OrderStatus.ACCEPTED  # a check is booked outside the online checkout
    ctx = DueContext(session=session, rt=rt, today=None, open_session=None, node="test",  # type: ignore[arg-type]
                     grace=timedelta(minutes=5), report=DueReport())
    orders_cleared(ctx)
    assert status_of(session, order) == OrderStatus.CLEARED


def test_a_cleared_order_is_announced_once_to_the_endpoints_that_want_it(app, session, rt, shop, staff, make):
    from portal.models import OutboundEvent, WebhookDelivery
    from portal.services import outbound_webhooks
    from tests.run_due_fixtures import run

    purchasing = outbound_webhooks.add_endpoint(session, url="http://127.0.0.1:9/psa", events=["order.cleared"])
    outbound_webhooks.add_endpoint(session, url="http://127.0.0.1:9/desk", events=["standing.changed"])
    order = new_order(session, rt, shop, staff)
    sign(session, rt, shop.contact, order)
    run(app, session, rt)
    cleared = select(OutboundEvent).where(OutboundEvent.type == "order.cleared")
    assert session.scalars(cleared).all() == []  # accepted, the deposit unpaid: nothing to buy yet

    make.payment(shop.client, 75_000, allocations={order.deposit_invoice_id: 75_000})
    run(app, session, rt)
    run(app, session, rt)
    events = session.scalars(cleared).all()
    assert len(events) == 1
    data = json.loads(events[0].payload)["data"]
    assert data["client"]["external_id"] == shop.client.external_id
    assert data["order"] == {"reference": order.reference, "quote_reference": "Q-1001", "currency": "USD",
                             "total_cents": 150_000, "deposit_cents": 75_000,
                             "cleared_at": session.get(EquipmentOrder, order.id).cleared_at.isoformat()}
    sent_to = session.scalars(select(WebhookDelivery.endpoint_id).where(WebhookDelivery.event_id == events[0].id))
    assert list(sent_to) == [purchasing.id]  # not to the endpoint that did not ask for it


# --- canceling ------------------------------------------------------------------------------------------------------

def test_canceling_voids_an_unpaid_deposit_invoice_but_not_a_cleared_order(session, rt, shop, staff, sandbox_gateway):
    from portal.gateways.payments import sandbox_token

    order = new_order(session, rt, shop, staff)
    sign(session, rt, shop.contact, order)
    with pytest.raises(DomainError, match="Say why"):
        orders.cancel_order(session, order.id, staff=staff, reason=" ")
    orders.cancel_order(session, order.id, staff=staff, reason="Client changed its mind")
    session.expire_all()
    assert status_of(session, order) == OrderStatus.CANCELED
    assert session.get(Invoice, order.deposit_invoice_id).status == "void"
    deposit = session.get(EquipmentOrder, order.id).request
    assert deposit.status == "withdrawn"  # its link says so and charges nothing
    with pytest.raises(DomainError, match="no longer asked for"):
        payments.pay(session, runtime_for(sandbox_gateway), deposit, token=sandbox_token("card", "4242424242424242"),
                     attempt_number=1)
    assert count(session, ChargeAttempt) == 0

    rt2 = runtime_for(sandbox_gateway)
    second = new_order(session, rt2, shop, staff)
    done = sign(session, rt2, shop.contact, second)
    payments.pay(session, rt2, done.request, token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    assert status_of(session, second) == OrderStatus.CLEARED
    with pytest.raises(DomainError, match="only an order not yet cleared"):
        orders.cancel_order(session, second.id, staff=staff, reason="Too late")
    assert status_of(session, second) == OrderStatus.CLEARED


def test_a_deposit_checkout_withdrawn_while_the_client_pays_it_charges_nothing(app, session, shop, staff,
                                                                             sandbox_gateway):
    """The client's page loaded the checkout; the admin cancels the order before the card is submitted: the charge
    is refused under the invoice locks the withdrawal took, with no attempt written and no call to the gateway."""
    from sqlalchemy.orm import Session

    from portal.gateways.payments import sandbox_token
    from portal.models import StaffUser

    rt = runtime_for(sandbox_gateway)
    order = new_order(session, rt, shop, staff)
    deposit = sign(session, rt, shop.contact, order).request  # as the checkout page read it: open
    with Session(app.extensions["db_engine"]) as admins:
        orders.cancel_order(admins, order.id, staff=admins.get(StaffUser, staff.id), reason="Quote expired")
    assert deposit.status == "open"  # this session has not seen the withdrawal

    with pytest.raises(DomainError, match="no longer asked for"):
        payments.pay(session, rt, deposit, token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    assert count(session, ChargeAttempt) == 0


# --- two tabs, several processes ------------------------------------------------------------------------------------

def _accept_in_own_process(config: dict, public_id: str, contact_id: int, start) -> str:
    from portal import create_app, db
    from portal.domain.errors import DomainError
    from portal.models import Contact
    from portal.services import agreements
    from portal.services.enforcement import orders
    from portal.web.runtime import runtime

    app = create_app(config)
    try:
        with app.app_context():
            session = db.session()
            contact = session.get(Contact, contact_id)
            order = orders.order_for_client(session, contact.client_id, public_id)
            sha = orders.document(session, runtime(), order).sha256
            session.commit()
            start.wait(timeout=60)
            signed = orders.SignedBy(full_name="Pat Doe", title="Owner", authority_confirmed=True,
                                     consent_confirmed=True,
                                     signature=agreements.Signature(kind="typed", typed="Pat Doe"), shown_sha256=sha)
            try:
                orders.accept(session, runtime(), contact, public_id, signed,
                              meta=Meta(ip="203.0.113.9", user_agent="race", session_id="e" * 32))
            except DomainError as e:
                return f"refused: {e}"
            return "accepted"
    except Exception as e:  # reported to the parent, which asserts on it
        return f"{type(e).__name__}: {e}"
    finally:
        app.extensions["db_engine"].dispose()


def test_processes_accepting_the_same_order_at_once_make_one_agreement(app, app_config, session, rt, shop, staff):
    order = new_order(session, rt, shop, staff)
    agreements.disclosure_document(session)
    orders.document(session, rt, order)  # publishes the default template version before the race
    session.commit()
    ctx = multiprocessing.get_context("spawn")
    config = {**app_config, "EVIDENCE_KEY": None}
    with ctx.Manager() as manager:
        start = manager.Barrier(WORKERS)
        with ctx.Pool(WORKERS) as pool:
            outcomes = pool.starmap(_accept_in_own_process,
                                    [(config, order.public_id, shop.contact.id, start)] * WORKERS)
    assert sorted(outcomes) == ["accepted"] + [f"refused: {orders.ALREADY_ACCEPTED}"] * (WORKERS - 1), outcomes
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Agreement).where(Agreement.kind == "equipment_deposit")) == 1
    assert session.scalar(select(func.count()).select_from(Invoice).where(Invoice.source == "deposit")) == 1
    assert session.scalar(select(func.count()).select_from(PaymentRequest)) == 1
    order = session.get(EquipmentOrder, order.id)
    assert order.status == OrderStatus.ACCEPTED
    result = agreements.verify_reference(session, rt, order.agreement.reference)
    assert result.intact and result.signed


def test_the_demo_has_equipment_and_a_deposit_awaiting_payment(session, rt, shop, staff, make):
    from portal.clock import today
    from portal.services import demo_orders

    other = make.client("Second LLC")
    order = demo_orders.seed(session, rt, [shop.client, other], staff, today())
    assert order.status == OrderStatus.ACCEPTED and orders.deposit_request(session, order) is not None
    assert len(equipment_of(shop.client.id)) == 2 and len(equipment_of(other.id)) == 3
    assert credit.limit_of(session, shop.client.id).limit_cents == 2_500_000


def equipment_of(client_id):
    from portal import db
    from portal.services.enforcement import equipment

    return equipment.for_client(db.session(), client_id)
