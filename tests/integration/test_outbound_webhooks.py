"""Outbound webhooks against a real receiver on loopback (http.server in a thread).

The receiver checks each request with the scheme the README documents, written here from that text and not with the
portal's code: HMAC-SHA256 with the endpoint's secret over "<t>.<raw body>", hex, in the Portal-Signature header as
t=...,v1=...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain.errors import DomainError
from portal.domain.plans import PlanStatus
from portal.domain.webhooks import MAX_ATTEMPTS, WebhookDeliveryStatus
from portal.models import OutboundEvent, WebhookDelivery, WebhookEndpoint
from portal.services import clients
from portal.services import outbound_webhooks as hooks
from tests.run_due_fixtures import run
from tests.standing_fixtures import publish_terms, put_on_plan, sign_terms


class Receiver:
    """A help desk's webhook endpoint: answers with ``status`` after ``delay`` seconds and keeps what it got."""

    def __init__(self, clock):
        self.clock = clock  # the portal's (test) clock: the timestamp must be fresh against it
        self.status, self.delay, self.secret = 200, 0.0, ""
        self.on_request = None  # called while a request is held, before answering; returns the status to answer
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"body": body, "headers": dict(self.headers),
                                          "verified": receiver.verify(self.headers.get("Portal-Signature", ""),
                                                                      body)})
                time.sleep(receiver.delay)
                status = receiver.on_request() if receiver.on_request else receiver.status
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"ok")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the portal gave up waiting: what a slow receiver sees

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/portal"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def verify(self, header: str, body: bytes) -> bool:
        fields = dict(part.split("=", 1) for part in header.split(","))
        expected = hmac.new(self.secret.encode(), fields["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = abs(self.clock.now().timestamp() - int(fields["t"])) <= 300
        return fresh and hmac.compare_digest(expected, fields["v1"])

    def events(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.received]


@pytest.fixture
def receiver(clock):
    r = Receiver(clock)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def endpoint(session, receiver):
    row = hooks.add_endpoint(session, url=receiver.url, events=["standing.changed", "payment.received"],
                             description="Help desk")
    receiver.secret = row.secret
    return row


@pytest.fixture
def on_hold(session, make, clock):
    """A client more than 10 days past due under terms with a 10-day hold."""
    version = publish_terms(session, hold_days=10)
    client = make.client("Harbor Dental LLC", external_id="PSA-100")
    sign_terms(session, client, version, on=date(2026, 1, 5))
    make.invoice(client, 10_000, issue_date=date(2026, 2, 1), due_date=date(2026, 3, 1))
    clock.set(date(2026, 3, 12))
    return client


def deliveries(session) -> list[WebhookDelivery]:
    session.expire_all()
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_standing_change_is_posted_once_signed_and_verified_by_the_receiver(app, session, rt, endpoint, receiver,
                                                                               on_hold):
    run(app, session, rt)
    run(app, session, rt)  # a second run announces nothing new and sends nothing again

    [got] = receiver.received
    assert got["verified"]
    event = json.loads(got["body"])
    assert event["type"] == "standing.changed" and event["id"].startswith("evt_")
    assert got["headers"]["Portal-Event-Id"] == event["id"]
    assert got["headers"]["Content-Type"] == "application/json"
    data = event["data"]
    assert data["client"] == {"id": on_hold.id, "external_id": "PSA-100", "name": "Harbor Dental LLC"}
    assert (data["standing"], data["previous_standing"], data["to_lift_cents"], data["hold_days"]) == (
        "on_hold", "good", 10_000, 10)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_status) == (WebhookDeliveryStatus.DELIVERED, 1, 200)


def test_a_receiver_with_another_secret_would_refuse_it(app, session, rt, endpoint, receiver, on_hold):
    receiver.secret = "whsec_not_the_one"
    run(app, session, rt)
    assert [r["verified"] for r in receiver.received] == [False]


def test_a_slow_or_failing_endpoint_does_not_block_run_due_and_is_retried_with_backoff(
        app, session, rt, endpoint, receiver, on_hold, clock):
    receiver.delay = 5  # longer than the 2-second timeout: the portal gives up waiting (the error says so)
    report = run(app, session, rt)
    assert not [p for p in report.problems if p.startswith(("standing changes", "webhook deliveries"))]
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_status) == (WebhookDeliveryStatus.PENDING, 1, None)
    assert "timed out" in delivery.last_error.lower()
    assert delivery.next_attempt_at == delivery.last_attempt_at + timedelta(minutes=1)

    receiver.delay, receiver.status = 0, 500
    run(app, session, rt)  # not yet due: no request
    assert len(receiver.received) == 1
    clock.advance(minutes=1)
    run(app, session, rt)
    [delivery] = deliveries(session)
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (2, 500, "HTTP 500")
    assert delivery.next_attempt_at == delivery.last_attempt_at + timedelta(minutes=5)

    receiver.status = 204
    clock.advance(minutes=5)
    run(app, session, rt)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.last_status) == (WebhookDeliveryStatus.DELIVERED, 3, 204)
    assert len(receiver.received) == 3 and all(r["verified"] for r in receiver.received)
    assert len({r["headers"]["Portal-Event-Id"] for r in receiver.received}) == 1  # the same event each time
    clock.advance(hours=1)
    run(app, session, rt)
    assert len(receiver.received) == 3


def test_a_delivery_is_given_up_after_the_last_try_and_can_be_resent(app, session, rt, endpoint, receiver,
                                                                     on_hold, clock):
    receiver.status = 503
    run(app, session, rt)
    for _ in range(MAX_ATTEMPTS):
        clock.advance(hours=25)
        run(app, session, rt)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.FAILED, MAX_ATTEMPTS)
    assert len(receiver.received) == MAX_ATTEMPTS

    receiver.status = 200
    hooks.resend(session, delivery.id)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.DELIVERED, 1)
    assert receiver.received[-1]["verified"]
    assert receiver.events()[-1] == receiver.events()[0]  # same id, same body


def test_a_resend_while_run_due_is_sending_it_is_refused_and_sends_nothing(app, session, rt, endpoint, receiver,
                                                                          on_hold, clock):
    receiver.status = 503
    run(app, session, rt)  # the first try fails: the delivery waits for its next try
    [delivery] = deliveries(session)
    clock.advance(hours=2)
    with Session(app.extensions["db_engine"]) as node:  # another node's run-due claims it: it is about to send it
        assert hooks._claim(node, 10) == [delivery.id]
    before = (delivery.status, delivery.attempts, delivery.next_attempt_at)

    with pytest.raises(DomainError, match="being sent right now"):
        hooks.resend(session, delivery.id)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == before
    assert len(receiver.received) == 1  # only run-due's first try reached the receiver

    clock.advance(seconds=hooks.CLAIM_SECONDS + 1)  # that node died without sending: its claim runs out
    receiver.status = 200
    hooks.resend(session, delivery.id)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts, delivery.claimed_until) == (WebhookDeliveryStatus.DELIVERED, 1, None)
    assert len(receiver.received) == 2


def test_a_delivery_being_resent_is_left_alone_by_run_due(app, session, rt, endpoint, receiver, on_hold, clock):
    receiver.status = 503
    run(app, session, rt)
    [delivery] = deliveries(session)
    clock.advance(hours=2)
    node = Session(app.extensions["db_engine"])
    sent_by_run_due: list[list[int]] = []

    def receive_then_look():  # while the resend's POST is at the receiver, another node's run-due looks for work
        with app.app_context():  # (this thread's clock is the test's)
            sent_by_run_due.append(hooks._claim(node, 10))
        return 200

    receiver.on_request = receive_then_look
    hooks.resend(session, delivery.id)
    node.close()
    assert sent_by_run_due == [[]]
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.DELIVERED, 1)
    assert len(receiver.received) == 2


def test_a_write_elsewhere_while_the_endpoint_answers_does_not_lose_the_outcome(app, session, rt, endpoint, receiver,
                                                                               on_hold, make):
    """A delivery waits seconds for its endpoint; meanwhile the portal keeps working (a client is added). The
    outcome is still recorded (on SQLite a read begun before the wait could not be turned into that write)."""
    def somebody_writes():
        with app.app_context(), Session(app.extensions["db_engine"]) as other:
            clients.create_client(other, legal_name="Added Meanwhile LLC")
        return 200

    receiver.on_request = somebody_writes
    run(app, session, rt)
    [delivery] = deliveries(session)
    assert (delivery.status, delivery.attempts) == (WebhookDeliveryStatus.DELIVERED, 1)


def test_a_disabled_endpoint_gets_nothing_and_events_go_only_where_subscribed(app, session, rt, receiver, on_hold):
    payments_only = hooks.add_endpoint(session, url=receiver.url, events=["payment.received"])
    disabled = hooks.add_endpoint(session, url=receiver.url, events=["standing.changed"])
    hooks.set_active(session, disabled.id, False)
    run(app, session, rt)
    assert receiver.received == [] and deliveries(session) == []
    assert session.scalar(select(OutboundEvent.type)) == "standing.changed"  # announced, to no one
    assert payments_only.active


def test_payments_signatures_and_defaulted_plans_are_announced_once(app, session, rt, make, receiver, clock):
    endpoint = hooks.add_endpoint(session, url=receiver.url,
                                  events=["payment.received", "agreement.signed", "plan.defaulted"])
    receiver.secret = endpoint.secret
    clock.advance(minutes=1)  # after the endpoint was added
    client = make.client("Harbor Dental LLC", external_id="PSA-100")
    invoice = make.invoice(client, 10_000)
    payment = make.payment(client, 10_000, reference="CHK 1001")
    version = publish_terms(session)
    agreement = sign_terms(session, client, version, on=clock.at.date())
    put_on_plan(session, client, [invoice], status=PlanStatus.DEFAULTED)
    run(app, session, rt)
    run(app, session, rt)

    by_type = {e["type"]: e["data"] for e in receiver.events()}
    assert sorted(by_type) == ["agreement.signed", "payment.received", "plan.defaulted"]
    assert len(receiver.received) == 3 and all(r["verified"] for r in receiver.received)
    assert by_type["payment.received"]["payment"]["id"] == payment.id
    assert by_type["payment.received"]["payment"]["amount_cents"] == 10_000
    assert by_type["agreement.signed"]["agreement"]["reference"] == agreement.reference
    assert by_type["plan.defaulted"]["client"]["external_id"] == "PSA-100"


def test_facts_from_before_any_endpoint_wanted_them_are_not_announced(app, session, rt, make, receiver, clock):
    client = make.client()
    make.payment(client, 5_000)
    clock.advance(minutes=1)
    hooks.add_endpoint(session, url=receiver.url, events=["payment.received"])
    run(app, session, rt)
    assert receiver.received == []


def test_emit_with_a_source_key_announces_a_fact_once(session, make, endpoint):
    client = make.client()
    first = hooks.emit(session, "payment.received", {"payment": {"id": 1}}, client=client, source_key="payment:1")
    again = hooks.emit(session, "payment.received", {"payment": {"id": 1}}, client=client, source_key="payment:1")
    session.commit()
    assert first is not None and again is None
    assert len(deliveries(session)) == 1
    with pytest.raises(ValueError):
        hooks.emit(session, "invoice.eaten", {})


@pytest.mark.parametrize(("url", "events", "message"), [
    ("ftp://psa.test/hook", ["standing.changed"], "http:// or https://"),
    ("https://psa.test/hook", [], "at least one event"),
    ("https://psa.test/hook", ["standing.changed", "invoice.eaten"], "from the list"),
])
def test_a_bad_endpoint_is_refused_and_nothing_is_stored(session, url, events, message):
    with pytest.raises(DomainError, match=message):
        hooks.add_endpoint(session, url=url, events=events)
    session.rollback()
    assert session.scalars(select(WebhookEndpoint)).all() == []


def test_an_endpoint_that_does_not_answer_costs_one_timeout_per_run(app, session, rt, endpoint, receiver, clock):
    receiver.delay = 5
    for n in range(3):
        hooks.emit(session, "payment.received", {"payment": {"id": n}}, source_key=f"test:{n}")
    session.commit()
    report = hooks.deliver_due(session)
    assert (report.delivered, report.failed, report.left) == (0, 1, 2)  # gave up after the first timeout
    assert len(receiver.received) == 1
    [tried] = [d for d in deliveries(session) if d.attempts]
    assert "timed out" in tried.last_error.lower()
    receiver.delay = 0
    clock.advance(minutes=2)
    report = hooks.deliver_due(session)
    assert (report.delivered, report.failed, report.left) == (3, 0, 0)


@pytest.mark.parametrize("url", ["https://[fe80::1/hooks", "https://[not-an-ip]/hooks", "http://psa.test:80a/hooks",
                                 "http://psa.test:99999/hooks"])
def test_a_malformed_endpoint_url_is_refused_with_a_message_and_nothing_is_stored(session, url):
    with pytest.raises(DomainError, match="http:// or https://"):
        hooks.add_endpoint(session, url=url, events=["standing.changed"])
    session.rollback()
    assert session.scalars(select(WebhookEndpoint)).all() == []


def test_a_receiver_answering_something_that_is_not_http_is_a_failed_try_not_a_crash(session, receiver, clock):
    """A receiver behind a broken proxy answers garbage: the try is recorded and tried again later; the other
    endpoints' deliveries still go out in the same run."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_garbage():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"this is not http\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        broken = hooks.add_endpoint(session, url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook",
                                    events=["payment.received"])
        good = hooks.add_endpoint(session, url=receiver.url, events=["payment.received"])
        receiver.secret = good.secret
        hooks.emit(session, "payment.received", {"payment": {"id": 1}}, source_key="test:garbage")
        session.commit()
        report = hooks.deliver_due(session)
    finally:
        listener.close()
    assert (report.delivered, report.failed) == (1, 1)
    by_endpoint = {d.endpoint_id: d for d in deliveries(session)}
    failed = by_endpoint[broken.id]
    assert (failed.status, failed.attempts, failed.last_status) == (WebhookDeliveryStatus.PENDING, 1, None)
    assert failed.last_error and failed.claimed_until is None
    assert failed.next_attempt_at == failed.last_attempt_at + timedelta(minutes=1)
    assert by_endpoint[good.id].status == WebhookDeliveryStatus.DELIVERED
