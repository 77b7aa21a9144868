"""Staff pages of online payments: the list with each payment's state and gateway reference, the detail page with
its refunds and disputes, and the MSP's surcharge and part-payment settings. A refund is posted to the one refund
action of the admin area (``payments.payment_refund``), which sends it through the gateway; ``refund_online`` is
its online half."""

from __future__ import annotations

import secrets
from decimal import Decimal

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.domain.errors import DomainError
from portal.domain.money import format_money, to_decimal
from portal.models import ChargeAttempt
from portal.services import payments
from portal.services.errors import NotFound
from portal.web.auth.identity import staff_required
from portal.web.params import choice_arg, page_arg
from portal.web.payments.forms import OnlineRefundForm, PaymentSettingsForm
from portal.web.refusals import form_refusal
from portal.web.runtime import runtime

from .routes import bp

PAGE_SIZE = 25


def _attempt_or_404(attempt_id: int) -> ChargeAttempt:
    attempt = db.session().get(ChargeAttempt, attempt_id)
    if attempt is None:
        raise NotFound()
    return attempt


@bp.get("/online-payments")
@staff_required
def online_payments():
    state = choice_arg("state", payments.STATE_FILTERS, "all")
    page = payments.attempt_page(db.session(), state=state, page=page_arg(), per_page=PAGE_SIZE)
    return render_template("payments/admin/list.html", page=page, state=state, states=payments.STATE_FILTERS,
                           gateway=runtime().gateway)


@bp.get("/online-payments/<int:attempt_id>")
@staff_required
def online_payment(attempt_id: int):
    return _render_detail(_attempt_or_404(attempt_id))


def _render_detail(attempt: ChargeAttempt, form: OnlineRefundForm | None = None, status: int = 200):
    session = db.session()
    room = payments.refundable(session, attempt)
    if form is None:
        form = OnlineRefundForm(formdata=None)
        form.amount.data = str(to_decimal(max(0, room.left_cents)))
    form.nonce.data = form.nonce.data or secrets.token_urlsafe(24)  # one refund per rendered form
    return render_template(
        "payments/admin/detail.html", attempt=attempt, row=payments.attempt_row(session, attempt), form=form,
        room=room, open_dispute=payments.has_open_dispute(session, attempt),
        refunds=payments.refunds_of(session, attempt),
        method=payments.describe_method(attempt),
    ), status


def refund_online(attempt: ChargeAttempt):
    """A refund of an online payment, posted to the admin area's one refund action: through the gateway, once per
    rendered form (its nonce)."""
    session = db.session()
    form = OnlineRefundForm()
    if form.validate_on_submit():
        cents = form.amount_cents()
        if cents is not None:
            try:
                refund = payments.refund(session, runtime(), attempt, amount_cents=cents, reason=form.reason.data,
                                         staff=current_user.record, form_nonce=form.nonce.data)
            except payments.RefundOutcomeUnknown as e:
                flash(str(e), "warning")
                return redirect(url_for("admin.online_payment", attempt_id=attempt.id))
            except DomainError as e:
                session.rollback()
                form.form_errors.append(str(e))
            else:
                message = f"Refund of {format_money(refund.amount_cents, attempt.currency)} sent"
                if refund.surcharge_cents:
                    message += f" (plus {format_money(refund.surcharge_cents, attempt.currency)} of the surcharge)"
                flash(message + f": {refund.status}.", "success")
                return redirect(url_for("admin.online_payment", attempt_id=attempt.id))
    form.form_errors.extend(form.nonce.errors)  # a hidden field: its error is shown with the form's own
    return _render_detail(attempt, form, status=400)


@bp.route("/payment-settings", methods=["GET", "POST"])
@staff_required
def payment_settings():
    session = db.session()
    settings = payments.payment_settings(session)
    form = PaymentSettingsForm()
    if request.method == "GET":
        form.surcharge_percent.data = str(settings.surcharge_percent.normalize() if settings.surcharge_percent
                                          else Decimal("0"))
        form.blocked_regions.data = settings.surcharge_blocked_regions
        form.partial_minimum.data = str(to_decimal(settings.partial_minimum_cents))
    if form.validate_on_submit():
        rate, minimum = form.surcharge(), form.minimum_cents()
        if rate is not None and minimum is not None:
            with form_refusal(session, form.form_errors):
                payments.update_payment_settings(session, surcharge_percent=rate,
                                                 blocked_regions=form.blocked_regions.data or "",
                                                 partial_minimum_cents=minimum)
                flash("Online payment settings saved.", "success")
                return redirect(url_for("admin.payment_settings"))
    return render_template("payments/admin/settings.html", form=form, gateway=runtime().gateway)


@bp.app_template_global("online_payments_panel")
def online_payments_panel(*, client_id: int | None = None, invoice_id: int | None = None) -> dict:
    """For the staff client and invoice pages: recent online payments and any disputes on them."""
    session = db.session()
    page = payments.attempt_page(session, client_id=client_id, invoice_id=invoice_id, per_page=10)
    # a dispute is on one of these online payments (the same requests): none of them, no dispute to look for
    disputes = payments.disputes_for(session, client_id=client_id, invoice_id=invoice_id) if page.total else []
    return {"rows": page.items, "total": page.total, "disputes": disputes}


@bp.app_template_global("online_attempt_for")
def online_attempt_for(payment_id: int) -> ChargeAttempt | None:
    """The online charge behind a ledger payment, if it was paid online (its refunds go through the gateway)."""
    return payments.attempt_for_payment(db.session(), payment_id)
