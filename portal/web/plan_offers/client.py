"""Client views: the self-service plan options (live schedule; pick and sign, or propose something else), an offer
with its history and the answers (sign, reject, counter, withdraw one's own), and signing. Every offer is looked
up within the signed-in contact's client: another client's offer is 404, whatever the action."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal import db
from portal.clock import today
from portal.domain.errors import DomainError
from portal.domain.money import to_decimal
from portal.domain.plan_offers import EVENT_LABELS, Proposer, check_client_may_accept
from portal.domain.plans import OfferStatus
from portal.domain.schedules import down_payment_for_percent
from portal.services import agreements
from portal.services.plans import acceptance, negotiation, offers, policy
from portal.web.agreements.common import request_meta
from portal.web.auth.identity import contact_required
from portal.web.refusals import flash_refusal
from portal.web.runtime import runtime

from .forms import AcceptForm, PlanChoiceForm, ReasonForm
from .routes import bp, preview_json, try_draft

FIRST_DUE_DAYS = 14


def _client_id() -> int:
    return current_user.client_id


def _choice_form(**data) -> tuple[PlanChoiceForm, list[offers.Covered]]:
    form = PlanChoiceForm(**({"data": data} if data and request.method == "GET" else {}))
    rows = offers.plannable(db.session(), _client_id())
    form.invoice_ids.choices = [SelectChoice(c.invoice.id, c.invoice.number) for c in rows]
    return form, rows


@bp.route("/plan-options", methods=["GET", "POST"])
@contact_required
def client_options():
    """The plan options the MSP allows: the client adjusts them with the schedule updating, then signs ("Accept")
    or sends them as a proposal with a message ("Propose")."""
    session = db.session()
    rules = policy.get_policy(session)
    on = today()
    rows = offers.plannable(session, _client_id())
    overdue_ids = [c.invoice.id for c in rows if c.invoice.due_date < on]
    minimum = policy.current_rules(session)
    chosen = overdue_ids or [c.invoice.id for c in rows]
    balance = sum(c.balance_cents for c in rows if c.invoice.id in chosen)
    down = down_payment_for_percent(balance, minimum.min_down_percent) if rules.self_service else 0
    form, rows = _choice_form(invoice_ids=chosen, down_payment=f"{to_decimal(down)}",
                              installments=min(3, rules.max_installments),
                              first_due_on=on + timedelta(days=FIRST_DUE_DAYS),
                              frequency=next(iter(policy.frequencies_of(rules)), "monthly"))
    draft, preview_error, status = None, "", 200
    if form.validate_on_submit():
        action = request.form.get("action")
        try:
            if action == "accept":
                offer = negotiation.choose(session, current_user.record, form.choice())
                return redirect(url_for("plan_offers.client_sign", public_id=offer.public_id))
            if action == "propose":
                offer = negotiation.propose(session, runtime(), current_user.record, form.choice(),
                                            message=form.message.data or "")
                flash("Your proposal was sent. We will answer by email; you can follow it here.", "success")
                return redirect(url_for("plan_offers.client_offer", public_id=offer.public_id))
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        draft, preview_error = try_draft(session, _client_id(), form.choice,
                                         proposer=_proposer(rules.self_service, action))
    elif request.method == "GET" and rows:
        draft, preview_error = try_draft(session, _client_id(), form.choice, proposer=_proposer(rules.self_service))
    if request.method == "POST" and (form.errors or form.form_errors):
        status = 400
    return render_template("plan_offers/client/options.html", form=form, rows=rows, rules=rules, minimum=minimum,
                           frequencies=policy.frequencies_of(rules), draft=draft, preview_error=preview_error,
                           threads=offers.latest_in_threads(session, _client_id()), today=on,
                           preview_url=url_for("plan_offers.client_preview")), status


def _proposer(self_service: bool, action: str | None = None) -> Proposer:
    """What the preview checks against: the policy for a self-service pick, nothing but sanity for a proposal."""
    return Proposer.POLICY if self_service and action != "propose" else Proposer.CLIENT


@bp.post("/plan-options/preview")
@contact_required
def client_preview():
    """JSON for the options page's script; only the contact's own invoices (another client's id is 404)."""
    session = db.session()
    form, _ = _choice_form()
    if not form.validate_on_submit():
        return preview_json(None, "Check the highlighted fields.")
    proposer = _proposer(policy.get_policy(session).self_service, request.form.get("action"))
    draft, error = try_draft(session, _client_id(), form.choice, proposer=proposer)
    return preview_json(draft, error)


def _offer(public_id: str):
    return offers.offer_for_client(db.session(), _client_id(), public_id)


@bp.get("/plan-offers/<public_id>")
@contact_required
def client_offer(public_id: str):
    return _render_offer(_offer(public_id))


def _render_offer(offer, reason_form: ReasonForm | None = None, status: int = 200):
    session = db.session()
    try:
        schedule, schedule_error = offers.schedule_of(offer), ""
    except DomainError as e:
        schedule, schedule_error = None, str(e)
    return render_template("plan_offers/client/offer.html", offer=offer, schedule=schedule,
                           schedule_error=schedule_error, history=offers.history(session, offer.thread_id),
                           labels=EVENT_LABELS,
                           plan=offers.plan_of(session, offer), reason_form=reason_form or ReasonForm(formdata=None),
                           Proposer=Proposer, OPEN=OfferStatus.OPEN), status


@bp.post("/plan-offers/<public_id>/reject")
@contact_required
def client_reject(public_id: str):
    return _answer(public_id, "reject")


@bp.post("/plan-offers/<public_id>/withdraw")
@contact_required
def client_withdraw(public_id: str):
    return _answer(public_id, "withdraw")


def _answer(public_id: str, what: str):
    session = db.session()
    offer = _offer(public_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _render_offer(offer, form, 400)
    with flash_refusal(session):
        if what == "reject":
            negotiation.reject(session, runtime(), offer.id, contact=current_user.record,
                               reason=form.reason.data or "")
            flash("You turned down this offer. You can still propose a plan of your own.", "success")
        else:
            negotiation.withdraw(session, offer.id, contact=current_user.record, reason=form.reason.data or "")
            flash("Withdrawn.", "success")
    return redirect(url_for("plan_offers.client_offer", public_id=public_id))


@bp.route("/plan-offers/<public_id>/counter", methods=["GET", "POST"])
@contact_required
def client_counter(public_id: str):
    """Answer the MSP's offer with different figures and a message (a proposal in the same thread)."""
    session = db.session()
    previous = _offer(public_id)
    form = PlanChoiceForm(**({"data": {
        "invoice_ids": [i.invoice_id for i in previous.invoices],
        "down_payment": f"{to_decimal(previous.down_payment_cents)}", "installments": previous.installments,
        "frequency": previous.frequency if previous.frequency != "custom" else "monthly",
        "first_due_on": previous.first_due_on}} if request.method == "GET" else {}))
    form.invoice_ids.choices = [SelectChoice(c.invoice.id, c.invoice.number)
                                for c in offers.plannable(session, _client_id(), thread_id=previous.thread_id,
                                                          renegotiates_plan_id=previous.renegotiates_plan_id)]
    status = 200
    if form.validate_on_submit():
        try:
            offer = negotiation.counter(session, runtime(), previous.id, form.choice(), contact=current_user.record,
                                        message=form.message.data or "")
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            flash("Your counter-proposal was sent. We will answer by email.", "success")
            return redirect(url_for("plan_offers.client_offer", public_id=offer.public_id))
    if request.method == "POST":
        status = 400
    return render_template("plan_offers/client/counter.html", form=form, offer=previous), status


@bp.route("/plan-offers/<public_id>/sign", methods=["GET", "POST"])
@contact_required
def client_sign(public_id: str):
    """The plan agreement (or note) exactly as signed: its SHA-256 travels with the form and is checked again."""
    session = db.session()
    offer = _offer(public_id)
    rt = runtime()
    form = AcceptForm()
    status = 200
    if form.validate_on_submit():
        signed = form.signed_by()
        try:
            done = acceptance.accept(session, rt, current_user.record, public_id, signed, meta=request_meta())
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            flash(f"Your plan {done.plan.reference} is set up. The signed agreement {done.agreement.reference} is on "
                  "its way to your inbox.", "success")
            if done.down_payment is not None:
                return redirect(url_for("payments.checkout", public_id=done.down_payment.public_id))
            return redirect(_plan_page(done.plan.id))
        status = 400
    elif request.method == "POST":
        status = 400
    try:
        check_client_may_accept(offer.status, offer.proposed_by)
        document = acceptance.document(session, rt, offer)
    except DomainError as e:
        session.rollback()
        flash(str(e), "error")
        return redirect(url_for("plan_offers.client_offer", public_id=public_id))
    form.document_sha256.data = document.sha256
    method = acceptance.saved_method(session, _client_id())
    return render_template("plan_offers/client/sign.html", form=form, offer=offer, document=document, method=method,
                           consent_statement=agreements.consent_statement(session),
                           disclosure=agreements.disclosure_document(session)[1]), status


def _plan_page(plan_id: int) -> str:
    if "plans.mine" in current_app.view_functions:
        return url_for("plans.mine", plan_id=plan_id)
    return url_for("client.dashboard")
