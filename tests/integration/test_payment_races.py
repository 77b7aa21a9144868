"""Money races the way they happen in production: several OS processes (each its own interpreter, app, engine
and connections, like gunicorn workers or nodes) hit the same checkout or refund at the same moment, round after
round, on SQLite and on PostgreSQL (the suite runs on each). The real ``stripe`` SDK in every process talks to the
one fake Stripe server, whose record counts the charges and refunds that really went out.

Each worker process builds the app once; a Manager barrier releases all of them together for each round.
"""

from __future__ import annotations

import multiprocessing
import threading
from datetime import date
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from portal.models import Allocation, ChargeAttempt, GatewayRefund, Payment, PaymentRequest, Refund
from portal.services import payments
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import count, invoice_state, runtime_for, stripe_config

WORKERS = 4
ROUNDS = 10
FORM_POSTS_PER_WORKER = 5  # 4 processes x 5 threads: the same pay form posted 20 times at once

_app = None  # the worker process's own app, built once by _start_worker


def _start_worker(config: dict) -> None:
    global _app
    from portal import create_app

    _app = create_app(config)


def _run(job: str, args: tuple, start) -> list[str]:
    """One process's part of a round: wait for the others, then do ``job``. Returns outcomes, never raises."""
    jobs = {"pay": _pay, "post_form": _post_form, "refund_online": _refund_online,
            "refund_offline": _refund_offline}
    try:
        start.wait(timeout=120)
        return jobs[job](*args)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which asserts on it
        return [f"{type(e).__name__}: {e}"]


def _pay(request_id: int, token: str) -> list[str]:
    """One browser tab's pay request, straight to the service (a checkout of its own, or the same one)."""
    from portal import db
    from portal.domain.errors import DomainError
    from portal.web.runtime import runtime

    with _app.app_context():
        session = db.session()
        request = session.get(PaymentRequest, request_id)
        try:
            attempt = payments.pay(session, runtime(), request, token=token, attempt_number=1)
        except DomainError as e:
            return [f"refused: {e}"]
        return [f"attempt {attempt.id} {attempt.status}"]


def _post_form(public_id: str, contact_id: int, token: str) -> list[str]:
    """The same pay form posted several times at once from this process (a hammered button, a retrying phone):
    real HTTP requests through the view, each in its own app context, session and connection."""
    from portal import db
    from portal.models import Contact
    from tests.conftest import sign_in

    with _app.app_context():
        contact = db.session().get(Contact, contact_id)
        clients = []
        for _ in range(FORM_POSTS_PER_WORKER):
            http = _app.test_client()  # each request gets its own app context, session and connection
            sign_in(http, contact)
            clients.append(http)
    together = threading.Barrier(len(clients))
    outcomes: list[str] = []

    def post(http) -> None:
        together.wait(timeout=60)
        response = http.post(f"/pay/{public_id}", data={"nonce": public_id, "attempt": "1",
                                                        "confirmation_token": token})
        text = response.get_data(as_text=True)
        note = "out of date" if "out of date" in text else urlsplit(response.headers.get("Location", "")).path
        outcomes.append(f"{response.status_code} {note}")

    threads = [threading.Thread(target=post, args=(http,)) for http in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def _refund_online(attempt_id: int, cents: int, nonce: str) -> list[str]:
    from portal import db
    from portal.domain.errors import DomainError
    from portal.web.runtime import runtime

    with _app.app_context():
        session = db.session()
        try:
            row = payments.refund(session, runtime(), session.get(ChargeAttempt, attempt_id), amount_cents=cents,
                                  reason="race", staff=None, form_nonce=nonce)
        except DomainError as e:
            return [f"refused: {e}"]
        return [f"refund {row.status}"]


def _refund_offline(payment_id: int, cents: int) -> list[str]:
    from portal import db
    from portal.domain.errors import DomainError

    with _app.app_context():
        session = db.session()
        try:
            payments.refund_offline(session, session.get(Payment, payment_id), amount_cents=cents, reason="race")
        except DomainError as e:
            return [f"refused: {e}"]
        return ["refunded"]


@pytest.fixture
def workers(app_config, fake_stripe):
    """WORKERS processes on the same database and the same fake Stripe; ``race(job, args_per_worker)`` runs one
    round and returns every outcome."""
    config = {**app_config, **stripe_config(fake_stripe)}
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: nothing shared but the database and Stripe
    with ctx.Manager() as manager, ctx.Pool(WORKERS, initializer=_start_worker, initargs=(config,)) as pool:
        def race(job: str, args: list[tuple]) -> list[str]:
            start = manager.Barrier(len(args))
            results = pool.starmap(_run, [(job, a, start) for a in args], chunksize=1)
            return [outcome for result in results for outcome in result]

        yield race


def _allocated(session, invoice_id: int) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(Allocation.amount_cents), 0))
                              .where(Allocation.invoice_id == invoice_id)))


def _round_shop(make, n: int):
    client = make.client(f"Race {n} Dental LLC")
    contact = make.contact(client, email=f"ap{n}@race.test")
    invoice = make.invoice(client, 12_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 31))
    return client, contact, invoice


def test_tabs_paying_the_same_invoice_at_once_charge_it_once(session, make, fake_stripe, workers):
    """Issue 8 §1: one $120.00 invoice, a checkout in each of four tabs, all paid at the same moment."""
    for n in range(ROUNDS):
        client, contact, invoice = _round_shop(make, n)
        requests = [payments.create_request(session, client=client, contact=contact, amounts={invoice.id: 12_000})
                    for _ in range(WORKERS)]
        tokens = [fake_stripe.confirmation_token("pm_card_visa") for _ in range(WORKERS)]
        charges_before = fake_stripe.payment_intent_count

        outcomes = workers("pay", [(r.id, t) for r, t in zip(requests, tokens, strict=True)])

        paid = [o for o in outcomes if o.endswith(" succeeded")]
        assert len(paid) == 1, outcomes
        assert all(o.startswith("refused: ") and "no longer owes that much" in o
                   for o in outcomes if o not in paid), outcomes
        assert fake_stripe.payment_intent_count - charges_before == 1
        assert invoice_state(session, invoice) == ("paid", 0)
        assert _allocated(session, invoice.id) == 12_000
        assert session.scalar(select(func.count()).select_from(Payment).where(Payment.client_id == client.id)) == 1


def test_the_same_pay_form_posted_twenty_times_at_once_charges_once_and_books_at_once(
        session, make, fake_stripe, workers):
    """Issue 8 §3: no deadlock and no error page, one charge, the invoice paid when the requests return, and no
    twin told its form is out of date."""
    for n in range(ROUNDS):
        client, contact, invoice = _round_shop(make, n)
        request = payments.create_request(session, client=client, contact=contact, amounts={invoice.id: 12_000})
        token = fake_stripe.confirmation_token("pm_card_visa")
        charges_before = fake_stripe.payment_intent_count
        session.commit()

        outcomes = workers("post_form", [(request.public_id, contact.id, token)] * WORKERS)

        assert len(outcomes) == WORKERS * FORM_POSTS_PER_WORKER
        assert set(outcomes) == {f"302 /pay/{request.public_id}/status"}, outcomes
        assert fake_stripe.payment_intent_count - charges_before == 1
        assert count(session, ChargeAttempt) == n + 1
        attempt = session.scalar(select(ChargeAttempt).where(ChargeAttempt.request_id == request.id))
        assert attempt.status == "succeeded" and attempt.gateway_id and attempt.payment_id
        assert invoice_state(session, invoice) == ("paid", 0)
        assert _allocated(session, invoice.id) == 12_000


def _paid_online(session, make, fake_stripe, stripe_gateway, n: int) -> ChargeAttempt:
    client, contact, invoice = _round_shop(make, n)
    request = payments.create_request(session, client=client, contact=contact, amounts={invoice.id: 12_000})
    attempt = payments.pay(session, runtime_for(stripe_gateway), request,
                           token=fake_stripe.confirmation_token("pm_card_visa"), attempt_number=1)
    assert attempt.status == "succeeded"
    return attempt


def _refunded_cents(session, payment_id: int) -> int:
    session.expire_all()
    return int(session.scalar(select(func.coalesce(func.sum(Refund.amount_cents), 0))
                              .where(Refund.payment_id == payment_id, Refund.status != "failed")))


def test_two_online_refunds_at_once_never_return_more_than_was_paid(session, make, fake_stripe, stripe_gateway,
                                                                     workers):
    for n in range(ROUNDS):
        attempt = _paid_online(session, make, fake_stripe, stripe_gateway, n)
        refunds_before = fake_stripe.count("POST", "/v1/refunds")
        session.commit()

        outcomes = workers("refund_online", [(attempt.id, 8_000, f"form-{n}-{i}") for i in range(WORKERS)])

        assert sorted(outcomes) == ["refund succeeded"] + [
            "refused: That is more than is left to refund on this payment."] * (WORKERS - 1), outcomes
        assert fake_stripe.count("POST", "/v1/refunds") - refunds_before == 1
        assert _refunded_cents(session, attempt.payment_id) == 8_000
        assert session.scalar(select(func.count()).select_from(GatewayRefund)
                              .where(GatewayRefund.attempt_id == attempt.id)) == 1


def test_two_offline_refunds_at_once_never_return_more_than_was_paid(session, make, workers):
    for n in range(ROUNDS):
        client, _contact, invoice = _round_shop(make, n)
        payment = make.payment(client, 12_000)

        outcomes = workers("refund_offline", [(payment.id, 8_000)] * WORKERS)

        assert sorted(outcomes) == ["refunded"] + [
            "refused: That is more than is left to refund on this payment."] * (WORKERS - 1), outcomes
        assert _refunded_cents(session, payment.id) == 8_000
        assert invoice_state(session, invoice) == ("open", 8_000)  # the refund took money back off the invoice
