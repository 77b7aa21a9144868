"""Staff pages of collections: the call list, the reminder schedule editor (each step's subject and text, with a
preview), and one client's collection page (notes log and calls, promises, pausing reminders). The client page of
the admin area shows a panel of the same through ``collections_panel``."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal import db
from portal.clock import today
from portal.domain import dunning
from portal.domain.errors import DomainError
from portal.models import Client
from portal.services.collections import calls, promises, schedule
from portal.services.errors import NotFound
from portal.services.settings import get_settings
from portal.web.auth.identity import staff_required
from portal.web.collections.forms import ActionForm, CallForm, PauseForm, PromiseForm, StepForm, cents
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

bp = Blueprint("collections_admin", __name__, url_prefix="/admin/collections")

PAST_DUE = "past_due"


@bp.get("/")
@staff_required
def call_list():
    return render_template("admin/collections/call_list.html", rows=calls.call_list(db.session(), today()),
                           reasons=dunning.REASON_LABELS, outcomes=dunning.OUTCOME_LABELS)


# --- the schedule -----------------------------------------------------------------------------------------------------

def _preview(spec: dunning.StepSpec) -> tuple[str, str] | None:
    settings = get_settings(db.session())
    try:
        return schedule.preview(spec, msp=settings.name, currency=settings.currency, today=today(),
                                base_url=runtime().base_url)
    except DomainError:
        return None


@bp.get("/schedule")
@staff_required
def steps():
    rows = schedule.steps(db.session())
    rows_with_previews = [(s, _preview(dunning.StepSpec(s.offset_days, s.name, s.subject, s.body,
                                                        pay_within_days=s.pay_within_days))) for s in rows]
    return render_template("admin/collections/schedule.html", steps=rows_with_previews,
                           describe=dunning.describe_offset, action_form=ActionForm())


@bp.route("/schedule/new", methods=["GET", "POST"])
@staff_required
def step_new():
    return _edit_step(None)


@bp.route("/schedule/<int:step_id>", methods=["GET", "POST"])
@staff_required
def step_edit(step_id: int):
    return _edit_step(step_id)


def _edit_step(step_id: int | None):
    session = db.session()
    if step_id is not None:
        schedule.ensure_saved(session)
    current = schedule.step(session, step_id) if step_id is not None else None
    form = StepForm()
    if request.method == "GET" and current is not None:
        form.fill(current)
    preview = None
    if form.validate_on_submit():
        spec = form.spec()
        if request.form.get("action") == "preview":
            with form_refusal(session, form.form_errors):
                dunning.check_step(spec, [])
                preview = _preview(spec)
        else:
            with form_refusal(session, form.form_errors):
                saved = schedule.save_step(session, spec, step_id)
                flash(f"Step “{saved.name}” saved.", "success")
                return redirect(url_for("collections_admin.steps"))
    elif current is not None:
        preview = _preview(dunning.StepSpec(current.offset_days, current.name, current.subject, current.body,
                                            pay_within_days=current.pay_within_days))
    return render_template("admin/collections/step_form.html", form=form, step=current, preview=preview,
                           placeholders=dunning.PLACEHOLDERS)


@bp.post("/schedule/<int:step_id>/delete")
@staff_required
def step_delete(step_id: int):
    if ActionForm().validate_on_submit():
        session = db.session()
        with flash_refusal(session):
            schedule.delete_step(session, step_id)
            flash("Step removed.", "success")
    return redirect(url_for("collections_admin.steps"))


# --- one client -------------------------------------------------------------------------------------------------------

def _client(client_id: int) -> Client:
    client = db.session().get(Client, client_id)
    if client is None:
        raise NotFound()
    return client


def _promise_form(client_id: int) -> PromiseForm:
    form = PromiseForm()
    session = db.session()
    owing = promises.promisable_invoices(session, client_id)
    form.invoice.choices = [SelectChoice(PAST_DUE, "The past-due balance")] + [
        SelectChoice(str(i.id), f"{i.number} (owes {cents / 100:,.2f})") for i, cents in owing]
    return form


def _render_client(client: Client, **forms):
    session = db.session()
    return render_template(
        "admin/collections/client.html", client=client, panel=calls.client_panel(session, client.id, today()),
        call_form=forms.get("call_form") or CallForm(), promise_form=forms.get("promise_form")
        or _promise_form(client.id), pause_form=forms.get("pause_form") or PauseForm(), action_form=ActionForm(),
        reasons=dunning.REASON_LABELS, outcomes=dunning.OUTCOME_LABELS,
        past_due_cents=promises.owed(session, client.id, None, today()))


@bp.get("/clients/<int:client_id>")
@staff_required
def client(client_id: int):
    return _render_client(_client(client_id))


@bp.post("/clients/<int:client_id>/call")
@staff_required
def log_call(client_id: int):
    client = _client(client_id)
    form = CallForm()
    if form.validate_on_submit():
        session = db.session()
        with form_refusal(session, form.form_errors):
            amount = (form.promise_amount.data or "").strip()
            promised = cents(amount, "The promised amount") if amount else None
            calls.log_call(session, client.id, calls.CallInput(
                reason=form.reason.data, outcome=form.outcome_value(), note=form.note.data or "",
                next_call_on=form.next_call_on.data, promise_cents=promised, promise_on=form.promise_on.data),
                staff=current_user.record, today=today())
            flash("Logged.", "success")
            return redirect(url_for("collections_admin.client", client_id=client.id))
    return _render_client(client, call_form=form), 422


@bp.post("/clients/<int:client_id>/promise")
@staff_required
def promise(client_id: int):
    client = _client(client_id)
    form = _promise_form(client.id)
    if form.validate_on_submit():
        session = db.session()
        with form_refusal(session, form.form_errors):
            promises.record(session, client_id=client.id, invoice_id=form.invoice_id(),
                            amount_cents=form.amount_cents(), promised_on=form.promised_on.data, today=today(),
                            note=form.note.data or "", staff=current_user.record)
            flash("Promise recorded: reminders wait until its date.", "success")
            return redirect(url_for("collections_admin.client", client_id=client.id))
    return _render_client(client, promise_form=form), 422


@bp.post("/clients/<int:client_id>/promises/<int:promise_id>/cancel")
@staff_required
def promise_cancel(client_id: int, promise_id: int):
    client = _client(client_id)
    if ActionForm().validate_on_submit():
        session = db.session()
        with flash_refusal(session):
            promises.cancel(session, promise_id, client_id=client.id)
            flash("Promise canceled.", "success")
    return redirect(url_for("collections_admin.client", client_id=client.id))


@bp.post("/clients/<int:client_id>/pause")
@staff_required
def pause(client_id: int):
    client = _client(client_id)
    form = PauseForm()
    if form.validate_on_submit():
        session = db.session()
        with form_refusal(session, form.form_errors):
            calls.pause(session, client.id, reason=form.reason.data or "", until=form.until.data, today=today())
            flash("Reminders paused.", "success")
            return redirect(url_for("collections_admin.client", client_id=client.id))
    return _render_client(client, pause_form=form), 422


@bp.post("/clients/<int:client_id>/resume")
@staff_required
def resume(client_id: int):
    client = _client(client_id)
    if ActionForm().validate_on_submit():
        calls.resume(db.session(), client.id)
        flash("Reminders resumed.", "success")
    return redirect(url_for("collections_admin.client", client_id=client.id))


@bp.app_template_global("collections_panel")
def collections_panel(client_id: int) -> calls.ClientPanel:
    """For the staff client page: last reminders, promises, notes and whether reminders are paused."""
    return calls.client_panel(db.session(), client_id, today())

