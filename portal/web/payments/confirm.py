"""The page an autopay decline email links to when the client's bank wants them present (authentication_required):
the payment, an Approve button, and afterwards where the payment stands. The signed link is the credential (like an
invoice link): it opens this one payment and nothing else."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from portal import db
from portal.clock import today
from portal.domain import payments as rules
from portal.domain.errors import DomainError
from portal.extensions import limiter
from portal.services import payments
from portal.services.payments import autopay_confirm
from portal.web.forms import PortalForm
from portal.web.runtime import runtime

from .routes import bp


class ApproveForm(PortalForm):
    """The CSRF token of the Approve button."""


@bp.route("/pay/<public_id>/confirm", methods=["GET", "POST"])
@limiter.limit("30 per hour", methods=["POST"])
def confirm(public_id: str):
    session, rt = db.session(), runtime()
    token = request.args.get("t", "")
    try:
        approval = autopay_confirm.open_link(session, rt, public_id, token, today())
    except DomainError as e:
        return render_template("payments/confirm.html", approval=None, error=str(e), form=None), 404
    form = ApproveForm()
    if request.method == "POST" and form.validate_on_submit():
        try:
            attempt = autopay_confirm.approve(session, rt, public_id, token, today())
        except DomainError as e:
            flash(str(e), "error")
            return redirect(url_for("payments.confirm", public_id=public_id, t=token))
        if attempt.status == rules.REQUIRES_ACTION and attempt.next_action_url:
            return redirect(attempt.next_action_url)  # the bank's page; it sends the client back here
        if attempt.status in (rules.FAILED, rules.CANCELED):
            flash(attempt.failure_message or "The payment could not be completed.", "error")
        return redirect(url_for("payments.confirm", public_id=public_id, t=token))
    if approval.attempt.status in rules.IN_FLIGHT:  # back from the bank's page: learn the outcome
        payments.refresh_attempt(session, rt, approval.attempt)
        approval = autopay_confirm.open_link(session, rt, public_id, token, today())
    return render_template("payments/confirm.html", approval=approval, error=None, form=form,
                           method=payments.describe_method(approval.attempt))
