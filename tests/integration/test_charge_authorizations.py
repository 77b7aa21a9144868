"""One-off charge authorizations: sent by staff, signed by the client (the rendered-agreement machinery) and
charged at once, exactly once, off-session on the card on file (sandbox and the real stripe SDK against the fake)
or through the normal checkout with a new card; every refusal (expired, canceled, another client's, already
signed, a stale document, a balance that changed) signs and charges nothing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.domain.errors import DomainError
from portal.gateways.payments import sandbox_token
from portal.models import Agreement, ChargeAttempt, ChargeAuthorization, PaymentRequest
from portal.services import agreements, payments, standing
from portal.services.autopay.enrollment import SignedBy
from portal.services.enforcement import charge_authorizations as auths
from portal.services.errors import NotFound
from tests.enforcement_fixtures import META, save_card
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, read_outbox, runtime_for

ON_HOLD_DAY = date(2026, 3, 21)  # the shop's first invoice ($100.00, due March 1) is 20 days past due


def signed_by(sha: str, **overrides) -> SignedBy:
    return SignedBy(**{"full_name": "Pat Doe", "title": "Office Manager", "authority_confirmed": True,
                       "consent_confirmed": True, "signature": agreements.Signature(kind="typed", typed="Pat Doe"),
                       "shown_sha256": sha, **overrides})


def sign(session, rt, contact, row, **overrides):
    card = auths.card_on_file(session, rt, contact.client_id)
    sha = auths.document(session, rt, row, card).sha256
    return auths.sign(session, rt, contact, row.public_id, signed_by(sha, **overrides), meta=META)


def attempts(session) -> int:
    return session.scalar(select(func.count(ChargeAttempt.id)))


def nothing_signed(session, row) -> None:
    session.expire_all()
    assert session.scalar(select(func.count(Agreement.id)).where(Agreement.kind == "charge_authorization")) == 0
    assert session.scalar(select(func.count(PaymentRequest.id))) == 0
    assert attempts(session) == 0


@pytest.fixture
def on_hold(session, shop, clock):
    clock.set(ON_HOLD_DAY)
    assert standing.for_client(session, shop.client, clock.at.date()).standing == "on_hold"
    return shop


def test_signed_and_charged_once_on_the_saved_card_in_the_sandbox(session, on_hold, sandbox_gateway, outbox, make,
                                                                  clock):
    rt = runtime_for(sandbox_gateway)
    save_card(session, rt, on_hold.contact, sandbox_token("card", "4242424242424242", exp_month=4, exp_year=2031))
    row = auths.send(session, rt, on_hold.client, amount_cents=10_000, reason="Server down: urgent visit",
                     staff=make.staff())
    assert row.status == "sent" and row.expires_at == row.created_at + timedelta(days=7)
    request_mail = [m for m in read_outbox(outbox) if "authorize a payment of $100.00" in m["Subject"]]
    assert len(request_mail) == 1
    assert f"/authorizations/{row.public_id}" in request_mail[0].get_body(("plain",)).get_content()

    outcome = sign(session, rt, on_hold.contact, row)

    assert outcome.charged and outcome.attempt.origin == "autopay" and outcome.attempt.charged_cents == 10_000
    session.expire_all()
    row = session.get(ChargeAuthorization, row.id)
    assert row.status == "charged" and row.agreement.kind == "charge_authorization"
    assert "$100.00" in row.agreement.document_text and "Visa ending 4242" in row.agreement.document_text
    assert "Server down: urgent visit" in row.agreement.document_text
    found = agreements.verify_reference(session, rt, row.agreement.reference)
    assert found.chain.intact and found.signed and not found.breaks
    assert invoice_state(session, on_hold.first) == ("paid", 0)
    assert standing.for_client(session, on_hold.client, clock.at.date()).standing == "good"
    assert attempts(session) == 1

    # the same form submitted again: refused, nothing more charged
    with pytest.raises(DomainError, match="already signed. Nothing more was charged"):
        sign(session, rt, on_hold.contact, row)
    assert attempts(session) == 1


def test_charged_once_with_the_stripe_sdk(session, on_hold, stripe_gateway, fake_stripe, make):
    rt = runtime_for(stripe_gateway)
    save_card(session, rt, on_hold.contact, fake_stripe.confirmation_token("pm_card_visa"))
    row = auths.send(session, rt, on_hold.client, amount_cents=10_000, reason="", staff=make.staff())

    outcome = sign(session, rt, on_hold.contact, row)
    with pytest.raises(DomainError, match="already signed"):
        sign(session, rt, on_hold.contact, row)

    assert outcome.charged
    assert fake_stripe.payment_intent_count == 1
    intent = fake_stripe.payment_intent(outcome.attempt.gateway_id)
    assert intent["amount"] == 10_000 and intent["status"] == "succeeded"
    assert invoice_state(session, on_hold.first) == ("paid", 0)


def test_a_declined_card_leaves_it_signed_and_unpaid(session, on_hold, sandbox_gateway, make):
    rt = runtime_for(sandbox_gateway)
    save_card(session, rt, on_hold.contact, sandbox_token("card", "4000000000009995", exp_month=4, exp_year=2031))
    row = auths.send(session, rt, on_hold.client, amount_cents=10_000, reason="", staff=make.staff())

    outcome = sign(session, rt, on_hold.contact, row)

    assert not outcome.charged and outcome.attempt.status == "failed"
    session.expire_all()
    assert session.get(ChargeAuthorization, row.id).status == "failed"
    assert invoice_state(session, on_hold.first) == ("open", 10_000)


def test_without_a_card_the_client_pays_at_the_checkout(session, on_hold, sandbox_gateway, make):
    rt = runtime_for(sandbox_gateway)
    row = auths.send(session, rt, on_hold.client, amount_cents=10_000, reason="", staff=make.staff())

    outcome = sign(session, rt, on_hold.contact, row)

    assert outcome.attempt is None and outcome.request.amount_cents == 10_000
    assert "a new card entered at checkout" in outcome.authorization.agreement.document_text
    assert attempts(session) == 0
    payments.pay(session, rt, session.get(PaymentRequest, outcome.request.id),
                 token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    assert auths.sync(session, rt, row.id).status == "charged"
    assert invoice_state(session, on_hold.first) == ("paid", 0)


def test_signed_but_never_paid_the_admin_cancels_it_and_its_checkout_is_withdrawn(session, on_hold, sandbox_gateway,
                                                                                  make):
    rt = runtime_for(sandbox_gateway)
    staff = make.staff()
    unpaid = sign(session, rt, on_hold.contact, auths.send(session, rt, on_hold.client, amount_cents=10_000,
                                                           reason="", staff=staff))  # no card on file: the checkout
    charged = auths.send(session, rt, on_hold.client, amount_cents=5_000, reason="", staff=staff)
    charged_request = sign(session, rt, on_hold.contact, charged).request
    payments.pay(session, rt, session.get(PaymentRequest, charged_request.id),
                 token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    assert auths.sync(session, rt, charged.id).status == "charged"

    auths.cancel(session, on_hold.client, unpaid.authorization.id, staff=staff)

    session.expire_all()
    row = session.get(ChargeAuthorization, unpaid.authorization.id)
    assert (row.status, row.request.status, row.agreement.status) == ("canceled", "withdrawn", "signed")
    with pytest.raises(DomainError, match="no longer asked for"):
        payments.pay(session, rt, row.request, token=sandbox_token("card", "4242424242424242"), attempt_number=1)
    assert attempts(session) == 1  # the other authorization's charge only
    with pytest.raises(DomainError, match="is charged; it cannot be canceled"):
        auths.cancel(session, on_hold.client, charged.id, staff=staff)
    assert session.get(ChargeAuthorization, charged.id).status == "charged"


def test_a_charge_on_its_way_keeps_a_signed_authorization_from_being_canceled(session, on_hold, sandbox_gateway,
                                                                               make):
    rt = runtime_for(sandbox_gateway)
    staff = make.staff()
    outcome = sign(session, rt, on_hold.contact, auths.send(session, rt, on_hold.client, amount_cents=10_000,
                                                            reason="", staff=staff))
    # a bank debit at the checkout: processing for days
    payments.pay(session, rt, session.get(PaymentRequest, outcome.request.id),
                 token=sandbox_token("us_bank_account", "000123456789"), attempt_number=1)

    with pytest.raises(DomainError, match="on its way; it cannot be canceled"):
        auths.cancel(session, on_hold.client, outcome.authorization.id, staff=staff)
    session.expire_all()
    row = session.get(ChargeAuthorization, outcome.authorization.id)
    assert (row.status, row.request.status) == ("signed", "open")


def test_expired_canceled_and_another_clients_are_refused(session, on_hold, sandbox_gateway, make, clock):
    rt = runtime_for(sandbox_gateway)
    staff = make.staff()
    save_card(session, rt, on_hold.contact, sandbox_token("card", "4242424242424242", exp_month=4, exp_year=2031))
    row = auths.send(session, rt, on_hold.client, amount_cents=10_000, reason="", staff=staff, valid_days=2)
    sha = auths.document(session, rt, row, auths.card_on_file(session, rt, on_hold.client.id)).sha256

    other = make.contact(make.client("Other LLC"))
    with pytest.raises(NotFound):
        auths.sign(session, rt, other, row.public_id, signed_by(sha), meta=META)

    with pytest.raises(DomainError, match="changed since you opened it"):
        auths.sign(session, rt, on_hold.contact, row.public_id, signed_by("0" * 64), meta=META)
    assert session.get(ChargeAuthorization, row.id).status == "sent"
    nothing_signed(session, row)

    clock.advance(days=2)
    assert auths.shown_status(session.get(ChargeAuthorization, row.id)) == "expired"
    with pytest.raises(DomainError, match="has expired. Nothing was charged"):
        auths.sign(session, rt, on_hold.contact, row.public_id, signed_by(sha), meta=META)
    nothing_signed(session, row)

    fresh = auths.send(session, rt, on_hold.client, amount_cents=10_000, reason="", staff=staff)
    auths.cancel(session, on_hold.client, fresh.id, staff=staff)
    with pytest.raises(DomainError, match="canceled by your provider. Nothing was charged"):
        sign(session, rt, on_hold.contact, fresh)
    nothing_signed(session, fresh)
    with pytest.raises(DomainError, match="is canceled; it cannot be canceled"):
        auths.cancel(session, on_hold.client, fresh.id, staff=staff)


def test_a_balance_paid_meanwhile_refuses_the_signature(session, on_hold, sandbox_gateway, make):
    rt = runtime_for(sandbox_gateway)
    row = auths.send(session, rt, on_hold.client, amount_cents=35_000, reason="", staff=make.staff())
    sha = auths.document(session, rt, row, None).sha256
    payments.record_payment(session, on_hold.client, amount_cents=10_000, method="check")

    with pytest.raises(DomainError, match="balance changed since this authorization was sent"):
        auths.sign(session, rt, on_hold.contact, row.public_id, signed_by(sha), meta=META)
    nothing_signed(session, row)
    assert session.get(ChargeAuthorization, row.id).status == "sent"


@pytest.mark.parametrize(("amount", "message"), [
    (None, "Enter the amount"), (0, "Enter the amount"), (49, "smallest charge"),
    (35_001, "more than the client owes")])
def test_bad_amounts_are_refused_and_nothing_is_sent(session, on_hold, make, rt, amount, message):
    with pytest.raises(DomainError, match=message):
        auths.send(session, rt, on_hold.client, amount_cents=amount, reason="", staff=make.staff())
    assert session.scalar(select(func.count(ChargeAuthorization.id))) == 0


# --- several processes signing the same authorization at once ------------------------------------------------------

_worker_app = None


def _start_worker(config: dict) -> None:
    global _worker_app
    from portal import create_app

    _worker_app = create_app(config)


def _sign_in_worker(public_id: str, contact_id: int, sha: str, at, start) -> str:
    """One browser tab's signature, in its own interpreter (nothing shared but the database, the instance folder,
    the fake Stripe and the test's frozen time)."""
    from portal import db
    from portal.models import Contact
    from portal.web.runtime import runtime
    from tests.conftest import FrozenClock

    _worker_app.extensions["clock"] = FrozenClock(at)
    try:
        with _worker_app.app_context():
            session = db.session()
            contact = session.get(Contact, contact_id)
            session.commit()
            start.wait(timeout=120)
            try:
                outcome = auths.sign(session, runtime(), contact, public_id, signed_by(sha), meta=META)
            except DomainError as e:
                return f"refused: {e}"
            return f"signed {outcome.attempt.status if outcome.attempt else 'no attempt'}"
    except Exception as e:  # noqa: BLE001 - reported to the parent, which asserts on it
        return f"{type(e).__name__}: {e}"


def test_processes_signing_the_same_authorization_at_once_charge_once(app_config, session, make, stripe_gateway,
                                                                      fake_stripe, clock):
    import multiprocessing

    from tests.payments_fixtures import stripe_config

    clock.set(ON_HOLD_DAY)
    rt = runtime_for(stripe_gateway)
    staff = make.staff()
    config = {**app_config, **stripe_config(fake_stripe)}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ctx.Pool(3, initializer=_start_worker, initargs=(config,)) as pool:
        for n in range(2):
            client = make.client(f"Race {n} Dental LLC")
            contact = make.contact(client, email=f"ap{n}@race.test")
            invoice = make.invoice(client, 12_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
            save_card(session, rt, contact, fake_stripe.confirmation_token("pm_card_visa"),
                      nonce=f"nonce-race-{n:02d}-0123456789")
            row = auths.send(session, rt, client, amount_cents=12_000, reason="", staff=staff)
            sha = auths.document(session, rt, row, auths.card_on_file(session, rt, client.id)).sha256
            charges_before = fake_stripe.payment_intent_count
            session.commit()

            start = manager.Barrier(3)
            args = [(row.public_id, contact.id, sha, clock.at, start)] * 3
            outcomes = pool.starmap(_sign_in_worker, args, chunksize=1)

            assert sorted(outcomes)[-1] == "signed succeeded" and outcomes.count("signed succeeded") == 1, outcomes
            for o in outcomes:
                assert o == "signed succeeded" or "already signed. Nothing more was charged" in o, o
            assert fake_stripe.payment_intent_count - charges_before == 1
            assert invoice_state(session, invoice) == ("paid", 0)
            session.expire_all()
            assert session.scalar(select(func.count(Agreement.id)).where(
                Agreement.kind == "charge_authorization", Agreement.client_id == client.id)) == 1
