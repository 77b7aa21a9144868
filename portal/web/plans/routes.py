"""Installment plans: the client's plan page (schedule, what is paid, pay the next installment, pay ahead, pay off),
and the admin's plans list and plan detail (progress, payments, timeline, record a check, write off a few cents).

Client reads go through ``overview.plan_for_client`` with the signed-in contact's client: another client's plan is
404. Paying creates an ordinary payment request and hands over to the existing checkout (``payments.checkout``).
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from portal import db
from portal.clock import today
from portal.domain.errors import DomainError
from portal.domain.money import format_money
from portal.domain.plans import PlanStatus
from portal.models import PaymentPlan
from portal.services.errors import NotFound
from portal.services.plans import collection, lifecycle, overview
from portal.web.auth.identity import contact_required, staff_required
from portal.web.params import choice_arg
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

from .forms import PlanCheckForm, PlanPayForm

bp = Blueprint("plans", __name__)


def _offer_endpoint(name: str) -> str | None:
    """An endpoint of the offers blueprint (portal/web/plan_offers), when it is installed."""
    from flask import current_app

    return name if name in current_app.view_functions else None


def _client_payment_plans(client_id: int) -> list[PaymentPlan]:
    return overview.client_plans(db.session(), client_id)


def _my_current_plan() -> PaymentPlan | None:
    """The signed-in contact's client's current plan, for the portal's navigation."""
    if not (current_user.is_authenticated and current_user.is_contact):
        return None
    return overview.current_plan(db.session(), current_user.client_id)


@bp.app_context_processor
def _plan_links():
    return {"plan_offer_endpoint": _offer_endpoint, "client_payment_plans": _client_payment_plans,
            "my_current_plan": _my_current_plan}


# --- the client ----------------------------------------------------------------------------------------------------

@bp.get("/plans")
@contact_required
def index():
    plans = overview.client_plans(db.session(), current_user.client_id)
    current = [p for p in plans if p.status == PlanStatus.CURRENT]
    if len(current) == 1:
        return redirect(url_for("plans.mine", plan_id=current[0].id))
    return render_template("plans/index.html", plans=plans)


@bp.get("/plans/<int:plan_id>")
@contact_required
def mine(plan_id: int):
    session = db.session()
    plan = overview.plan_for_client(session, current_user.client_id, plan_id)
    return _render_mine(plan, PlanPayForm())


def _render_mine(plan: PaymentPlan, form: PlanPayForm, status: int = 200):
    page = overview.plan_page(db.session(), plan, today())
    return render_template("plans/mine.html", page=page, plan=plan, form=form), status


@bp.post("/plans/<int:plan_id>/pay")
@contact_required
def pay(plan_id: int):
    session = db.session()
    plan = overview.plan_for_client(session, current_user.client_id, plan_id)
    form = PlanPayForm()
    if not form.validate_on_submit():
        return _render_mine(plan, form, 400)
    contact = current_user.record
    if form.kind.data == "next":
        down = overview.plan_page(session, plan, today()).down_payment_request
        if down is not None:  # the next payment is the down payment, whose checkout acceptance already opened
            return redirect(url_for("payments.checkout", public_id=down.public_id))
    request = None
    errors: list[str] = []
    with form_refusal(session, errors):
        if form.kind.data == "payoff":
            request = collection.payoff_request(session, runtime(), plan, today(), contact=contact)
        else:
            cents = (collection.next_installment_cents(session, plan) if form.kind.data == "next"
                     else form.amount_cents())
            if cents is None:
                return _render_mine(plan, form, 400)
            if cents <= 0:
                raise DomainError("Nothing is due on this plan now.")
            request = collection.payment_for_plan(session, runtime(), plan, cents, today(), contact=contact)
    if request is None:
        form.form_errors.extend(errors)
        return _render_mine(session.get(PaymentPlan, plan_id), form, 400)
    return redirect(url_for("payments.checkout", public_id=request.public_id))


# --- the admin -----------------------------------------------------------------------------------------------------

@bp.get("/admin/plans")
@staff_required
def admin_list():
    status = choice_arg("status", overview.FILTERS, "current")
    listing = overview.plan_list(db.session(), status, today())
    return render_template("plans/admin_list.html", listing=listing, filters=overview.FILTERS)


@bp.get("/admin/plans/<int:plan_id>")
@staff_required
def admin_detail(plan_id: int):
    return _render_detail(_plan_or_404(plan_id), PlanCheckForm())


def _plan_or_404(plan_id: int) -> PaymentPlan:
    plan = db.session().get(PaymentPlan, plan_id)
    if plan is None:
        raise NotFound()
    return plan


def _render_detail(plan: PaymentPlan, form: PlanCheckForm, status: int = 200):
    session = db.session()
    return render_template("plans/admin_detail.html", plan=plan, page=overview.plan_page(session, plan, today()),
                           payments=overview.plan_payments(session, plan), events=overview.timeline(session, plan),
                           form=form), status


@bp.post("/admin/plans/<int:plan_id>/payments")
@staff_required
def admin_record_check(plan_id: int):
    session = db.session()
    plan = _plan_or_404(plan_id)
    form = PlanCheckForm()
    if not form.validate_on_submit():
        return _render_detail(plan, form, 400)
    cents = form.amount_cents()
    if cents is None:
        return _render_detail(plan, form, 400)
    errors: list[str] = []
    with form_refusal(session, errors):
        collection.record_check(session, plan, amount_cents=cents, method=form.method.data,
                                received_on=form.received_on.data or today(), reference=form.reference.data or "",
                                memo=form.memo.data or "", staff=current_user.record)
    if errors:
        form.form_errors.extend(errors)
        return _render_detail(session.get(PaymentPlan, plan_id), form, 400)
    with flash_refusal(session):
        lifecycle.complete_if_done(session, runtime(), plan_id, today())
    flash(f"{format_money(cents, plan.currency)} recorded toward plan {plan.reference}.", "success")
    return redirect(url_for("plans.admin_detail", plan_id=plan_id))


@bp.post("/admin/plans/<int:plan_id>/write-off")
@staff_required
def admin_write_off(plan_id: int):
    session = db.session()
    plan = _plan_or_404(plan_id)
    with flash_refusal(session):
        cents = collection.write_off_remainder(session, plan, staff=current_user.record)
        completed = lifecycle.complete_if_done(session, runtime(), plan_id, today())
        flash(f"{format_money(cents, plan.currency)} written off" + (f"; plan {plan.reference} is complete."
                                                                    if completed else "."), "success")
    return redirect(url_for("plans.admin_detail", plan_id=plan_id))
