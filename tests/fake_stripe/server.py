"""A fake Stripe API on loopback that the real ``stripe`` SDK talks to.

It imitates the endpoints the portal uses, Stripe's error shapes, Bearer auth, idempotency replay
and the magic test payment methods, so tests exercise the real SDK and our adapter end to end.
Everything runs under one lock: requests are handled one at a time, which also makes concurrent
requests with the same idempotency key replay instead of racing.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import stripe

from .forms import decode_form
from .ledger import ApiError, Ledger, invalid
from .params import sdk_params_class, validate

TEST_SECRET_KEY = "sk_test_fake_portal_0123456789"
TEST_PUBLISHABLE_KEY = "pk_test_fake_portal_0123456789"
TEST_WEBHOOK_SECRET = "whsec_fake_portal_0123456789"

# Only responses from an endpoint that actually ran are kept for replay (Stripe does not store
# validation errors or its own 5xx): successes and card declines.
_REPLAYABLE_STATUSES = {200, 402}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_version: str | None
    status: int | None  # None: the fake dropped the connection
    replayed: bool = False


@dataclass
class _Outage:
    status: int | None  # None: drop the connection without answering
    after_processing: bool


@dataclass
class _Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


_Endpoint = Callable[[Ledger, dict[str, str], dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """One endpoint the fake serves. ``template`` is spelled as in the SDK (``/v1/payment_intents/{intent}``):
    the params TypedDict the SDK declares for it is what every request is checked against."""

    method: str
    template: str
    handler: _Endpoint

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template))

    @property
    def params_class(self) -> type:
        return sdk_params_class(self.method, self.template)


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/customers", lambda led, ids, p: led.create_customer(p)),
    Route("GET", "/v1/customers/{customer}", lambda led, ids, p: led.get_customer(ids["customer"])),
    Route("DELETE", "/v1/customers/{customer}", lambda led, ids, p: led.delete_customer(ids["customer"])),
    Route("POST", "/v1/test_helpers/confirmation_tokens", lambda led, ids, p: led.create_confirmation_token(p)),
    Route(
        "GET",
        "/v1/confirmation_tokens/{confirmation_token}",
        lambda led, ids, p: led.get_confirmation_token(ids["confirmation_token"]),
    ),
    Route("POST", "/v1/payment_intents", lambda led, ids, p: led.create_payment_intent(p)),
    Route("GET", "/v1/payment_intents/{intent}", lambda led, ids, p: led.get_payment_intent(ids["intent"])),
    Route(
        "POST",
        "/v1/payment_intents/{intent}/cancel",
        lambda led, ids, p: led.cancel_payment_intent(ids["intent"], p),
    ),
    Route("POST", "/v1/refunds", lambda led, ids, p: led.create_refund(p)),
    Route("POST", "/v1/setup_intents", lambda led, ids, p: led.create_setup_intent(p)),
    Route("GET", "/v1/setup_intents/{intent}", lambda led, ids, p: led.get_setup_intent(ids["intent"])),
    Route(
        "POST",
        "/v1/setup_intents/{intent}/confirm",
        lambda led, ids, p: led.confirm_setup_intent(ids["intent"], p),
    ),
    Route(
        "POST",
        "/v1/setup_intents/{intent}/verify_microdeposits",
        lambda led, ids, p: led.verify_microdeposits(ids["intent"], p),
    ),
    Route(
        "GET",
        "/v1/payment_methods/{payment_method}",
        lambda led, ids, p: led.get_payment_method(ids["payment_method"]),
    ),
    Route(
        "POST",
        "/v1/payment_methods/{payment_method}/attach",
        lambda led, ids, p: led.attach_payment_method(ids["payment_method"], p),
    ),
    Route(
        "POST",
        "/v1/payment_methods/{payment_method}/detach",
        lambda led, ids, p: led.detach_payment_method(ids["payment_method"]),
    ),
    Route(
        "GET",
        "/v1/customers/{customer}/payment_methods",
        lambda led, ids, p: led.customer_payment_methods(ids["customer"], p),
    ),
    Route(
        "GET",
        "/v1/customers/{customer}/payment_methods/{payment_method}",
        lambda led, ids, p: led.customer_payment_method(ids["customer"], ids["payment_method"]),
    ),
    Route("GET", "/v1/mandates/{mandate}", lambda led, ids, p: led.get_mandate(ids["mandate"])),
)


class _Listener(ThreadingHTTPServer):
    """Stripe accepts every connection; the standard library's backlog of 5 made clients of four run-due processes
    wait for a SYN retry under load (the test machine's problem, not the code's)."""

    request_queue_size = 128


class FakeStripe:
    """``FakeStripe().start()`` serves on ``.url`` (127.0.0.1, a free port) until ``.stop()``.

    Also a context manager. Tests drive the outside world through it: settle or fail bank debits,
    simulate outages, open disputes and build signed webhook events.
    """

    def __init__(
        self,
        *,
        secret_key: str = TEST_SECRET_KEY,
        publishable_key: str = TEST_PUBLISHABLE_KEY,
        webhook_secret: str = TEST_WEBHOOK_SECRET,
    ) -> None:
        self.secret_key = secret_key
        self.publishable_key = publishable_key
        self.webhook_secret = webhook_secret
        self._lock = threading.RLock()
        self._waiting_lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        server = _Listener(("127.0.0.1", 0), _Handler)
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-stripe", daemon=True)
        self._thread.start()
        self.ledger.base_url = self.url
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeStripe is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reset(self) -> None:
        """Forget every object, stored idempotent response, pending outage and logged request."""
        with self._lock:
            self.ledger = Ledger(self.url if self._server else "")
            self._idempotent: dict[str, tuple[str, _Response]] = {}
            self._outages: deque[_Outage] = deque()
            self._log: list[RecordedRequest] = []
            #: Added to every answer, outside the lock, so concurrent clients overlap as they would against Stripe.
            self.latency_seconds = 0.0
            #: The most answers that were waiting out the latency at the same time (since the last reset).
            self.peak_waiting = 0
            self._waiting = 0

    def wait_latency(self) -> None:
        """Sleep the added latency outside the lock, counting how many answers wait side by side."""
        with self._waiting_lock:
            self._waiting += 1
            self.peak_waiting = max(self.peak_waiting, self._waiting)
        try:
            time.sleep(self.latency_seconds)
        finally:
            with self._waiting_lock:
                self._waiting -= 1

    # --- inspection ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def count(self, method: str, path: str, *, include_replays: bool = False) -> int:
        """How many requests hit ``method path`` (replays excluded unless asked for)."""
        return sum(
            1 for r in self.requests if r.method == method and r.path == path and (include_replays or not r.replayed)
        )

    @property
    def payment_intent_count(self) -> int:
        with self._lock:
            return len(self.ledger.payment_intents)

    def charges_by(self, metadata_key: str) -> Counter[str]:
        """How many PaymentIntents were created per value of ``metadata[metadata_key]`` (e.g. per invoice).

        Replays and refused requests create none, so a count above 1 is a real double charge.
        """
        with self._lock:
            return Counter(
                str(pi["metadata"][metadata_key])
                for pi in self.ledger.payment_intents.values()
                if metadata_key in pi["metadata"]
            )

    def setup_intent(self, intent_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.ledger.get_setup_intent(intent_id))

    def payment_method(self, method_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.ledger.get_payment_method(method_id))

    def mandate_for(self, method_id: str) -> dict[str, Any] | None:
        """The PaymentMethod's active mandate, if any."""
        with self._lock:
            return copy.deepcopy(self.ledger.active_mandate(method_id))

    def payment_intent(self, intent_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.ledger.get_payment_intent(intent_id))

    def charge(self, intent_id: str) -> dict[str, Any]:
        """The latest charge of a PaymentIntent (the object ``charge.*`` events carry)."""
        with self._lock:
            charge_id = self.ledger.get_payment_intent(intent_id)["latest_charge"]
            return copy.deepcopy(self.ledger.charges[charge_id])

    def customer(self, customer_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.ledger.get_customer(customer_id))

    # --- scripting the outside world ----------------------------------------------------------

    def settle(self, intent_id: str) -> dict[str, Any]:
        """The bank decides a processing debit (succeeds unless it is scripted to fail)."""
        with self._lock:
            return copy.deepcopy(self.ledger.settle(intent_id))

    def fail(self, intent_id: str, code: str = "insufficient_funds") -> dict[str, Any]:
        """A processing debit comes back returned by the bank."""
        with self._lock:
            return copy.deepcopy(self.ledger.fail(intent_id, code))

    def authenticate(self, intent_id: str) -> dict[str, Any]:
        """The client passes 3-D Secure on a requires_action intent."""
        with self._lock:
            return copy.deepcopy(self.ledger.authenticate(intent_id))

    def authenticate_setup(self, intent_id: str, *, passed: bool = True) -> dict[str, Any]:
        """Fake-only (no Stripe API has it): the client passes, or with ``passed=False`` fails or abandons, 3-D
        Secure while saving a card (a requires_action SetupIntent). Real Stripe decides this between Stripe.js and
        the bank; tests decide it here, then read the outcome through the API as the portal does."""
        with self._lock:
            return copy.deepcopy(self.ledger.authenticate_setup(intent_id, passed=passed))

    def use_microdeposit_type(self, microdeposit_type: str) -> None:
        """How the next microdeposit verifications are done: ``amounts`` (32 and 45) or ``descriptor_code`` (SM11AA)."""
        if microdeposit_type not in ("amounts", "descriptor_code"):
            raise ValueError(microdeposit_type)
        with self._lock:
            self.ledger.microdeposit_type = microdeposit_type

    def delete_customer(self, customer_id: str) -> None:
        with self._lock:
            self.ledger.delete_customer(customer_id)

    def create_dispute(
        self, intent_id: str, *, reason: str = "fraudulent", amount: int | None = None
    ) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.ledger.create_dispute(intent_id, reason=reason, amount=amount))

    def close_dispute(self, dispute_id: str, status: str = "lost") -> dict[str, Any]:
        with self._lock:
            dispute = self.ledger.disputes[dispute_id]
            dispute["status"] = status
            return copy.deepcopy(dispute)

    def confirmation_token(self, payment_method: str, *, setup_future_usage: str | None = None) -> str:
        """Shortcut for the test-helper endpoint, for tests that are not about the SDK call."""
        with self._lock:
            params = {"payment_method": payment_method, "setup_future_usage": setup_future_usage}
            return self.ledger.create_confirmation_token(params)["id"]

    def fail_next(self, status: int | None = 500, *, times: int = 1, after_processing: bool = False) -> None:
        """Make the next ``times`` requests fail with ``status`` (None: drop the connection).

        ``after_processing=True`` runs the request first and then loses the response: the charge
        happened but the client cannot know, which is what idempotency keys exist for.
        """
        with self._lock:
            self._outages.extend(_Outage(status, after_processing) for _ in range(times))

    # --- webhooks -----------------------------------------------------------------------------

    def event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        created: int | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[bytes, str]:
        """A Stripe-shaped event and its ``Stripe-Signature`` header.

        ``timestamp`` backdates the signature (stale-signature tests); ``secret`` signs with another
        secret (forgery tests).
        """
        event = {
            "id": "evt_" + secrets.token_hex(12),
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            payload, secret or self.webhook_secret, timestamp=timestamp
        )
        return payload.encode(), header

    def payment_intent_event(self, event_type: str, intent_id: str, **options: Any) -> tuple[bytes, str]:
        """``payment_intent.*`` event carrying the intent as it is now."""
        return self.event(event_type, self.payment_intent(intent_id), **options)

    def charge_refunded_event(self, intent_id: str, **options: Any) -> tuple[bytes, str]:
        """``charge.refunded`` event for the intent's latest charge, after refunds made via the API."""
        return self.event("charge.refunded", self.charge(intent_id), **options)

    # --- request handling (called from server threads) ----------------------------------------

    def handle(self, method: str, raw_path: str, body: str, headers: dict[str, str]) -> _Response | None:
        """Answer one request; None means hang up without answering (a simulated network failure)."""
        with self._lock:
            url = urlsplit(raw_path)
            key = headers.get("idempotency-key") if method == "POST" else None
            try:
                params = decode_form(body if method == "POST" else url.query)
            except ValueError as exc:
                params, response, replayed = {}, _error_response(invalid(str(exc))), False
            else:
                response, replayed = self._respond(method, url.path, params, key, headers)
            self._log.append(
                RecordedRequest(
                    method=method,
                    path=url.path,
                    params=params,
                    idempotency_key=key,
                    stripe_version=headers.get("stripe-version"),
                    status=response.status if response else None,
                    replayed=replayed,
                )
            )
            if response is not None:
                response.headers.setdefault("Request-Id", "req_" + secrets.token_hex(8))
                if key:
                    response.headers["Idempotency-Key"] = key
            return response

    def _respond(
        self, method: str, path: str, params: dict[str, Any], key: str | None, headers: dict[str, str]
    ) -> tuple[_Response | None, bool]:
        outage = self._outages.popleft() if self._outages else None
        if outage is not None and not outage.after_processing:
            return _outage_response(outage), False
        response, replayed = self._authorized(method, path, params, key, headers)
        if outage is not None:  # the request ran, but its answer is lost on the way back
            return _outage_response(outage), replayed
        return response, replayed

    def _authorized(
        self, method: str, path: str, params: dict[str, Any], key: str | None, headers: dict[str, str]
    ) -> tuple[_Response, bool]:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _auth_error("You did not provide an API key."), False
        if auth.removeprefix("Bearer ") != self.secret_key:
            supplied = auth.removeprefix("Bearer ")
            return _auth_error(f"Invalid API Key provided: {supplied[:8]}****{supplied[-4:]}"), False
        if key is None:
            return self._route(method, path, params), False
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        stored = self._idempotent.get(key)
        if stored is not None:
            if stored[0] != fingerprint:
                return _idempotency_error(key), False
            replay = copy.deepcopy(stored[1])
            replay.headers["Idempotent-Replayed"] = "true"
            return replay, True
        response = self._route(method, path, params)
        if response.status in _REPLAYABLE_STATUSES:
            self._idempotent[key] = (fingerprint, copy.deepcopy(response))
        return response, False

    def _route(self, method: str, path: str, params: dict[str, Any]) -> _Response:
        for route in ROUTES:
            match = route.pattern.fullmatch(path)
            if route.method == method and match:
                try:
                    # Like Stripe: a parameter the API version does not know is refused before anything runs.
                    validate(route.params_class, params)
                    obj = route.handler(self.ledger, match.groupdict(), params)
                    expand = params.get("expand") or []
                    return _Response(200, self.ledger.expand(obj, expand) if expand else copy.deepcopy(obj))
                except ApiError as exc:
                    return _error_response(exc)
        return _Response(
            404,
            {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({method}: {path})."}},
        )


def _error_response(exc: ApiError) -> _Response:
    return _Response(exc.status, {"error": exc.error})


def _idempotency_error(key: str) -> _Response:
    message = (
        "Keys for idempotent requests can only be used with the same parameters they were first used "
        f"with. Try using a key other than '{key}' if you meant to execute a different request."
    )
    return _Response(400, {"error": {"type": "idempotency_error", "message": message}})


def _auth_error(message: str) -> _Response:
    return _Response(401, {"error": {"type": "invalid_request_error", "message": message}})


def _outage_response(outage: _Outage) -> _Response | None:
    if outage.status is None:
        return None
    return _Response(
        outage.status, {"error": {"type": "api_error", "message": "An unknown error occurred on Stripe's servers."}}
    )


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer
    # Keep-alive, as Stripe's API: the SDK's pooled connection carries every request of a thread. (HTTP/1.0 opened a
    # connection, and the server a thread, per request: CPU on both sides of a benchmark's one machine.)
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake: FakeStripe = self.server.fake  # type: ignore[attr-defined]
        if fake.latency_seconds:
            fake.wait_latency()
        response = fake.handle(method, self.path, body, headers)
        if response is None:  # simulated network failure: hang up without a word
            self.close_connection = True
            return
        payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if "stripe-version" in headers:
            self.send_header("Stripe-Version", headers["stripe-version"])
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature is inherited
        """Silence the default stderr access log; the fake keeps its own request log."""
