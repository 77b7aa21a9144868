"""Staff views: the plan policy, a new offer (or a counter, or a renegotiation) with its live preview, an offer
thread with its history and the answers (approve, reject, counter, withdraw), the list of proposals waiting, and
canceling a plan."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal import db
from portal.clock import today
from portal.domain.errors import DomainError
from portal.domain.money import to_decimal
from portal.domain.plan_offers import EVENT_LABELS, Proposer
from portal.domain.plans import OfferStatus
from portal.models import Client, PaymentPlan
from portal.services.errors import NotFound
from portal.services.plans import acceptance, negotiation, offers, policy
from portal.web.auth.identity import staff_required
from portal.web.params import id_arg
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

from .forms import ActionForm, OfferForm, PolicyForm, ReasonForm
from .routes import bp, preview_json, try_draft

FIRST_DUE_DAYS = 14  # the offer form's default first due date: two weeks out

# ---------------------------------------------------------------------------------------------------- policy

@bp.route("/admin/plan-policy", methods=["GET", "POST"])
@staff_required
def admin_policy():
    session = db.session()
    row = policy.get_policy(session)
    form = PolicyForm(data={
        "self_service": row.self_service, "max_balance": f"{to_decimal(row.max_balance_cents)}",
        "max_installments": row.max_installments, "min_down_percent": _pct(row.min_down_percent),
        "frequencies": list(policy.frequencies_of(row)), "apr_percent": _pct(row.apr_percent),
        "max_apr_percent": _pct(row.max_apr_percent), "grace_days": row.grace_days,
        "reminder_days": row.reminder_days}) if request.method == "GET" else PolicyForm()
    status = 200
    if form.validate_on_submit():
        with form_refusal(session, form.form_errors):
            policy.update_policy(session, form.values())
            flash("Plan policy saved.", "success")
            return redirect(url_for("plan_offers.admin_policy"))
    if request.method == "POST":
        status = 400
    return render_template("plan_offers/admin/policy.html", form=form), status


def _pct(value: Decimal) -> str:
    return f"{Decimal(value).normalize():f}"


# ---------------------------------------------------------------------------------------------------- offers

def _client(client_id: int) -> Client:
    client = db.session().get(Client, client_id)
    if client is None:
        raise NotFound()
    return client


def _offer_form(client_id: int, *, thread_id: int | None = None, plan_id: int | None = None, **data) -> OfferForm:
    form = OfferForm(**({"data": data} if data and request.method == "GET" else {}))
    rows = offers.plannable(db.session(), client_id, thread_id=thread_id, renegotiates_plan_id=plan_id)
    form.invoice_ids.choices = [SelectChoice(c.invoice.id, c.invoice.number) for c in rows]
    form.pay_now_invoice_id.choices = [SelectChoice("none", "No")] + [SelectChoice(str(c.invoice.id), c.invoice.number)
                                                                for c in rows]
    return form


def _renegotiated(client: Client) -> PaymentPlan | None:
    if not request.args.get("renegotiate"):
        return None
    plan_id = id_arg("renegotiate")  # not a possible id: not found, like an unknown one
    plan = db.session().get(PaymentPlan, plan_id) if plan_id is not None else None
    if plan is None or plan.client_id != client.id:
        raise NotFound()
    return plan


@bp.route("/admin/clients/<int:client_id>/plan-offer", methods=["GET", "POST"])
@staff_required
def admin_new_offer(client_id: int):
    """Offer a payment plan. "Preview" (and the page's script) shows the schedule; "Send" stores and emails it."""
    session = db.session()
    client = _client(client_id)
    plan = _renegotiated(client)
    plan_id = plan.id if plan else None
    defaults: dict = {"first_due_on": today() + timedelta(days=FIRST_DUE_DAYS), "installments": 3}
    if plan is not None:
        defaults["invoice_ids"] = [pi.invoice_id for pi in plan.invoices if pi.current_key is not None]
    form = _offer_form(client.id, plan_id=plan_id, **defaults)
    draft, preview_error, status = None, "", 200
    if form.validate_on_submit():
        if request.form.get("action") == "send":
            try:
                offer = negotiation.make_offer(session, runtime(), client.id, form.choice(), staff=current_user.record,
                                               message=form.message.data or "", renegotiates_plan_id=plan_id)
            except DomainError as e:
                session.rollback()
                form.form_errors.append(str(e))
            else:
                contact = negotiation.billing_contact(client)
                if contact is None:
                    flash(f"Offer saved, but {client.legal_name} has no contact with portal access to email it to. "
                          "Add one, then send them the link to the portal.", "error")
                else:
                    flash(f"Plan offer sent to {contact.name} ({contact.email}).", "success")
                return redirect(url_for("plan_offers.admin_offer", offer_id=offer.id))
        draft, preview_error = try_draft(session, client.id, form.choice, proposer=Proposer.MSP,
                                         renegotiates_plan_id=plan_id)
    if request.method == "POST" and (form.errors or form.form_errors):
        status = 400
    return render_template("plan_offers/admin/new_offer.html", form=form, client=client, plan=plan, draft=draft,
                           preview_error=preview_error, rules=policy.get_policy(session),
                           preview_url=url_for("plan_offers.admin_preview", client_id=client.id,
                                               **({"renegotiate": plan_id} if plan_id else {})),
                           action_url=request.full_path.rstrip("?")), status


@bp.post("/admin/clients/<int:client_id>/plan-offer/preview")
@staff_required
def admin_preview(client_id: int):
    """JSON for the offer page's script: the schedule these choices make, or why they cannot make one."""
    session = db.session()
    client = _client(client_id)
    plan = _renegotiated(client)
    form = _offer_form(client.id, plan_id=plan.id if plan else None)
    if not form.validate_on_submit():
        return preview_json(None, "Check the highlighted fields.")
    draft, error = try_draft(session, client.id, form.choice, proposer=Proposer.MSP,
                             renegotiates_plan_id=plan.id if plan else None)
    return preview_json(draft, error)


@bp.get("/admin/plan-offers/")
@staff_required
def admin_offers():
    """Client proposals and counters waiting for an answer, and every open offer."""
    rows = offers.all_open(db.session())
    waiting = [o for o in rows if o.proposed_by == Proposer.CLIENT]
    sent = [o for o in rows if o.proposed_by != Proposer.CLIENT]
    return render_template("plan_offers/admin/offers.html", waiting=waiting, sent=sent)


@bp.get("/admin/plan-offers/<int:offer_id>")
@staff_required
def admin_offer(offer_id: int):
    session = db.session()
    offer = offers.offer_for_staff(session, offer_id)
    return _render_offer(offer)


def _render_offer(offer, reason_form: ReasonForm | None = None, status: int = 200):
    session = db.session()
    try:
        schedule, schedule_error = offers.schedule_of(offer), ""
    except DomainError as e:
        schedule, schedule_error = None, str(e)
    return render_template("plan_offers/admin/offer.html", offer=offer, schedule=schedule,
                           schedule_error=schedule_error, thread=offers.thread(session, offer.thread_id),
                           history=offers.history(session, offer.thread_id), labels=EVENT_LABELS,
                           plan=offers.plan_of(session, offer),
                           reason_form=reason_form or ReasonForm(formdata=None), action=ActionForm(),
                           Proposer=Proposer, OPEN=OfferStatus.OPEN), status


@bp.post("/admin/plan-offers/<int:offer_id>/withdraw")
@staff_required
def admin_withdraw(offer_id: int):
    return _answer(offer_id, "withdraw")


@bp.post("/admin/plan-offers/<int:offer_id>/reject")
@staff_required
def admin_reject(offer_id: int):
    return _answer(offer_id, "reject")


@bp.post("/admin/plan-offers/<int:offer_id>/approve")
@staff_required
def admin_approve(offer_id: int):
    return _answer(offer_id, "approve")


def _answer(offer_id: int, what: str):
    session = db.session()
    offer = offers.offer_for_staff(session, offer_id)
    form = ReasonForm()
    if not form.validate_on_submit():
        return _render_offer(offer, form, 400)
    rt, staff, reason = runtime(), current_user.record, form.reason.data or ""
    with flash_refusal(session):
        if what == "withdraw":
            negotiation.withdraw(session, offer_id, staff=staff, reason=reason)
            flash("Offer withdrawn.", "success")
        elif what == "reject":
            negotiation.reject(session, rt, offer_id, staff=staff, reason=reason)
            flash("Proposal rejected; the client was told why.", "success")
        else:
            new = negotiation.approve(session, rt, offer_id, staff=staff, message=reason)
            flash("Proposal approved and sent to the client to sign.", "success")
            return redirect(url_for("plan_offers.admin_offer", offer_id=new.id))
    return redirect(url_for("plan_offers.admin_offer", offer_id=offer_id))


@bp.route("/admin/plan-offers/<int:offer_id>/counter", methods=["GET", "POST"])
@staff_required
def admin_counter(offer_id: int):
    session = db.session()
    previous = offers.offer_for_staff(session, offer_id)
    choice = offers.choice_of(previous)
    form = _offer_form(previous.client_id, thread_id=previous.thread_id, plan_id=previous.renegotiates_plan_id,
                       invoice_ids=list(choice.invoice_ids), down_payment=f"{to_decimal(previous.down_payment_cents)}",
                       installments=previous.installments, frequency=previous.frequency,
                       first_due_on=previous.first_due_on, apr_percent=_pct(previous.apr_percent),
                       custom_dates=previous.custom_dates, as_note=previous.as_note,
                       pay_now_invoice_id=str(previous.pay_now_invoice_id or "none"))
    draft, preview_error, status = None, "", 200
    if form.validate_on_submit():
        if request.form.get("action") == "send":
            try:
                offer = negotiation.counter(session, runtime(), offer_id, form.choice(), staff=current_user.record,
                                            message=form.message.data or "")
            except DomainError as e:
                session.rollback()
                form.form_errors.append(str(e))
            else:
                flash("Counter-offer sent to the client.", "success")
                return redirect(url_for("plan_offers.admin_offer", offer_id=offer.id))
        draft, preview_error = try_draft(session, previous.client_id, form.choice, proposer=Proposer.MSP,
                                         thread_id=previous.thread_id,
                                         renegotiates_plan_id=previous.renegotiates_plan_id)
    if request.method == "POST" and (form.errors or form.form_errors):
        status = 400
    return render_template("plan_offers/admin/new_offer.html", form=form, client=previous.client, plan=None,
                           draft=draft, preview_error=preview_error, rules=policy.get_policy(session),
                           countering=previous, action_url=request.path,
                           preview_url=url_for("plan_offers.admin_counter_preview", offer_id=offer_id)), status


@bp.post("/admin/plan-offers/<int:offer_id>/counter/preview")
@staff_required
def admin_counter_preview(offer_id: int):
    session = db.session()
    previous = offers.offer_for_staff(session, offer_id)
    form = _offer_form(previous.client_id, thread_id=previous.thread_id, plan_id=previous.renegotiates_plan_id)
    if not form.validate_on_submit():
        return preview_json(None, "Check the highlighted fields.")
    draft, error = try_draft(session, previous.client_id, form.choice, proposer=Proposer.MSP,
                             thread_id=previous.thread_id, renegotiates_plan_id=previous.renegotiates_plan_id)
    return preview_json(draft, error)


@bp.post("/admin/plans/<int:plan_id>/cancel")
@staff_required
def admin_cancel_plan(plan_id: int):
    session = db.session()
    plan = session.get(PaymentPlan, plan_id)
    if plan is None:
        raise NotFound()
    form = ReasonForm()
    if form.validate_on_submit():
        with flash_refusal(session):
            acceptance.cancel_plan(session, plan_id, staff=current_user.record, reason=form.reason.data or "")
            flash(f"Plan {plan.reference} canceled. Its invoices follow the normal collection rules again.", "success")
    else:
        flash("Your form expired. Please try again.", "error")
    target = "plans.admin_detail"
    if target in current_app.view_functions:
        return redirect(url_for(target, plan_id=plan_id))
    return redirect(url_for("admin.client_detail", client_id=plan.client_id, tab="plans"))
