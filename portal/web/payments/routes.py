"""Paying invoices online: choose what to pay, pay it, see the receipt. Plus the gateway's webhook endpoint.

Reached two ways: a signed-in contact from the client portal (``/pay``), or anyone holding an emailed invoice link
(``/i/<token>/pay``). Both lead to the same checkout, ``/pay/<public id>``, which checks again at every step that
the visitor may pay it (the same signed-in client, or a link that still opens the invoice).
The staff pages of online payments are in the admin area (``portal/web/admin/online_payments.py``).
"""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.clock import today
from portal.domain import links as link_rules
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.domain.ledger import OpenItem
from portal.domain.money import percent_of
from portal.extensions import csrf, limiter
from portal.gateways.payments import InvalidWebhook, PaymentGateway, sandbox_token
from portal.models import PaymentRequest
from portal.services import delivery, payments
from portal.services.errors import NotFound
from portal.web.auth.identity import contact_required
from portal.web.params import id_arg
from portal.web.runtime import runtime

from .forms import ChooseForm, PayForm, amount_field, parse_choice, pick_field

bp = Blueprint("payments", __name__)

TEST_CARDS = (
    ("4242 4242 4242 4242", "credit card, succeeds"),
    ("4000 0566 5566 5556", "debit card, succeeds"),
    ("4000 0000 0000 0002", "declined"),
    ("4000 0000 0000 9995", "declined: insufficient funds"),
)
METHODS = ("card", "us_bank_account")
TEST_BANK_ACCOUNTS = (
    ("000123456789", "succeeds after a short delay (processing first)"),
    ("000222222227", "fails after processing (insufficient funds)"),
)


# --- choose what to pay --------------------------------------------------------------------------------------------

@bp.route("/pay", methods=["GET", "POST"])
@contact_required
def choose():
    """The signed-in contact picks any of its client's open invoices and how much of each to pay."""
    client = current_user.record.client
    rows = payments.payable_invoices(db.session(), client.id)
    preselect = id_arg("invoice")
    return _choose(client=client, contact=current_user.record, rows=rows, link=None,
                   preselect={preselect} if preselect else {r.invoice.id for r in rows},
                   cancel_url=url_for("client.invoice", invoice_id=preselect) if preselect else
                   url_for("client.invoices"))


@bp.route("/i/<token>/pay", methods=["GET", "POST"])
@limiter.limit("60 per hour", methods=["POST"])
def link_choose(token: str):
    """From an emailed invoice link: this one invoice, in full or in part."""
    session = db.session()
    access = delivery.resolve_link(session, runtime(), token)
    if not access.ok:
        raise NotFound()
    invoice = access.invoice
    rows = payments.payable_invoices(session, invoice.client_id, invoice_id=invoice.id)
    return _choose(client=invoice.client, contact=access.link.contact, rows=rows, link=access.link,
                   preselect={invoice.id}, cancel_url=url_for("links.invoice", token=token))


def _choose(*, client, contact, rows: list[payments.PayableInvoice], link, preselect: set[int],
            cancel_url: str):
    session = db.session()
    form = ChooseForm()
    items = [OpenItem(r.invoice.id, r.payable_cents, r.invoice.number) for r in rows if r.payable_cents > 0]
    picked = preselect
    typed: dict[int, str] = {}
    errors: dict[int, str] = {}
    if request.method == "POST":
        picked = {item.invoice_id for item in items if request.form.get(pick_field(item.invoice_id))}
        typed = {item.invoice_id: request.form.get(amount_field(item.invoice_id), "") for item in items}
    if form.validate_on_submit():
        chosen, errors = parse_choice(request.form, items)
        if not errors:
            try:
                payment_request = payments.create_request(session, client=client, contact=contact,
                                                                 amounts=chosen, link=link)
            except DomainError as e:
                session.rollback()
                form.form_errors.append(str(e))
            else:
                return redirect(url_for("payments.checkout", public_id=payment_request.public_id))
    return render_template(
        "payments/choose.html", form=form, rows=rows, picked=picked, typed=typed, errors=errors,
        pick_field=pick_field, amount_field=amount_field, link=link, cancel_url=cancel_url,
        settings=payments.payment_settings(session), today=today(),
    )


# --- the checkout -----------------------------------------------------------------------------------------------

def _payment_request(public_id: str) -> PaymentRequest:
    """The request, if this visitor may see it: its own client's signed-in contact, or the holder of an invoice
    link that still opens the invoice. Anyone else gets the same 404 as for an id that does not exist."""
    found = payments.request_by_public_id(db.session(), public_id)
    if found is None:
        raise NotFound()
    signed_in_here = (current_user.is_authenticated and current_user.is_contact
                      and current_user.client_id == found.client_id)
    if signed_in_here:
        return found
    if found.link is not None and delivery.link_state(found.link) == link_rules.ACTIVE:
        return found
    raise NotFound()


def _back_url(payment_request: PaymentRequest) -> str:
    if payment_request.link is not None and not (current_user.is_authenticated and current_user.is_contact):
        return url_for("links.invoice", token=delivery.link_token(runtime(), payment_request.link))
    return url_for("client.invoices")


@bp.route("/pay/<public_id>", methods=["GET", "POST"])
@limiter.limit("30 per hour", methods=["POST"])  # slows down anyone testing stolen card numbers
def checkout(public_id: str):
    session = db.session()
    payment_request = _payment_request(public_id)
    rt = runtime()
    gateway = rt.gateway
    form = PayForm()
    if payments.blocking_attempt(session, payment_request) is not None and request.method == "GET":
        return redirect(url_for("payments.status", public_id=public_id))
    if payments.is_withdrawn(payment_request):  # a POST too: nothing is charged, the page says why
        return render_template("payments/withdrawn.html", payment_request=payment_request,
                               back_url=_back_url(payment_request), words=payments.WITHDRAWN_WORDS), 410
    if form.validate_on_submit():
        token = _token(form, gateway)
        number = form.attempt_number()
        if form.nonce.data != public_id or number is None:
            form.form_errors.append("This payment form is out of date. Please check your payment's status.")
        elif token:
            try:
                attempt = payments.pay(session, rt, payment_request, token=token, attempt_number=number,
                                       accepted_surcharge_cents=form.accepted_surcharge_cents())
            except payments.SurchargeConsentNeeded as e:
                return _review(payment_request, e.quote, token, number)
            except DomainError as e:
                session.rollback()
                form.form_errors.append(str(e))
            else:
                return _after_attempt(payment_request, attempt)
    return _render_checkout(payment_request, form, gateway)


def _token(form: PayForm, gateway: PaymentGateway) -> str | None:
    """The confirmation token to charge: Stripe's (made in the browser), or one built from SANDBOX test numbers."""
    token = form.confirmation_token.data or ""
    expected = "sbx_ctok_" if gateway.is_sandbox else "ctoken_"
    if token:
        if not token.startswith(expected):
            form.form_errors.append("Those payment details could not be used. Please enter them again.")
            return None
        return token
    if not gateway.is_sandbox:
        form.form_errors.append("Enter your payment details above.")
        return None
    details = form.sandbox_details(today())
    if details is None:
        return None
    try:
        return sandbox_token(*details)
    except ValueError:
        form.card_number.errors = [*form.card_number.errors, "Enter the number using digits only."]
        return None


def _render_checkout(payment_request: PaymentRequest, form: PayForm, gateway: PaymentGateway):
    session = db.session()
    form.nonce.data = payment_request.public_id
    form.attempt.data = str(payments.next_attempt_number(session, payment_request))
    form.confirmation_token.data = ""
    form.accepted_surcharge.data = ""
    form.card_cvc.data = ""  # never echoed back into the page
    if request.method == "GET" and request.args.get("method") in METHODS:
        form.method.data = request.args["method"]
    rate, blocked = payments.surcharge_terms(session, payment_request.client)
    credit_surcharge_cents = percent_of(payment_request.amount_cents, rate) if rate and not blocked else 0
    return render_template(
        "payments/checkout.html", form=form, payment_request=payment_request, gateway=gateway,
        surcharge_rate=rate if not blocked else 0, credit_surcharge_cents=credit_surcharge_cents,
        back_url=_back_url(payment_request), declined=_declined(payment_request),
        test_cards=TEST_CARDS, test_bank_accounts=TEST_BANK_ACCOUNTS,
        return_url=url_for("payments.status", public_id=payment_request.public_id, _external=True),
    )


def _declined(payment_request: PaymentRequest):
    """The last try, if it failed: the checkout then says why and offers the other ways to pay."""
    attempt = payments.latest_attempt(db.session(), payment_request)
    return attempt if attempt is not None and attempt.status in (rules.FAILED, rules.CANCELED) else None


def _review(payment_request: PaymentRequest, quote: payments.Quote, token: str, number: int):
    """The card carries a surcharge: show it as its own line and ask the client to confirm the new total."""
    form = PayForm(formdata=None)
    form.nonce.data = payment_request.public_id
    form.attempt.data = str(number)
    form.confirmation_token.data = token
    form.accepted_surcharge.data = str(quote.surcharge.cents)
    return render_template("payments/review.html", form=form, payment_request=payment_request, quote=quote,
                           back_url=url_for("payments.checkout", public_id=payment_request.public_id))


def _after_attempt(payment_request: PaymentRequest, attempt):
    if attempt.status == rules.REQUIRES_ACTION and attempt.next_action_url:
        return redirect(attempt.next_action_url)  # the bank's authentication page; it sends the client back
    if attempt.status in (rules.FAILED, rules.CANCELED) and payment_request.status == rules.PaymentRequestStatus.OPEN:
        # back to the same checkout (the invoices and amounts chosen are kept) with the method tried still chosen;
        # the page says why and what to do next (_declined)
        return redirect(url_for("payments.checkout", public_id=payment_request.public_id,
                                method=attempt.method_type))
    return redirect(url_for("payments.status", public_id=payment_request.public_id))


@bp.get("/pay/<public_id>/status")
def status(public_id: str):
    """The receipt once paid; otherwise where the payment stands (processing, failed, waiting on the bank)."""
    session = db.session()
    payment_request = _payment_request(public_id)
    attempt = payments.latest_attempt(session, payment_request)
    if attempt is None:
        return redirect(url_for("payments.checkout", public_id=public_id))
    attempt = payments.refresh_attempt(session, runtime(), attempt)
    return render_template("payments/status.html", payment_request=payment_request, attempt=attempt,
                           back_url=_back_url(payment_request),
                           method=payments.describe_method(attempt))


# --- the gateway's webhooks -----------------------------------------------------------------------------------

@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    """Stripe's events. The signature is checked on the raw body; a bad or stale one changes nothing (400)."""
    rt = runtime()
    gateway = rt.gateway
    if gateway.is_sandbox:
        abort(404)
    payload = request.get_data(cache=False)
    try:
        event = gateway.parse_webhook(payload, request.headers.get("Stripe-Signature", ""))
    except InvalidWebhook:
        return jsonify(error="invalid signature"), 400
    outcome = payments.handle_event(db.session(), rt, event, payload)
    return jsonify(received=True, outcome=outcome)
