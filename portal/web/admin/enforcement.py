"""Staff pages of enforcement: formal notices (preview, issue, withdraw), one-off charge authorizations (send,
cancel), and deliverable files on an invoice (attach, remove). The client page's panel is the template global
``enforcement_panel``; the invoice page's is ``deliverables_panel``."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from portal import db
from portal.clock import today
from portal.domain import deliverables as D
from portal.domain import notices as N
from portal.domain.charge_authorizations import CANCELABLE
from portal.domain.charge_authorizations import ChargeAuthorizationStatus as C
from portal.domain.money import parse_amount
from portal.models import ChargeAuthorization, Client, EnforcementNotice, Invoice
from portal.services.enforcement import charge_authorizations, deliverables, notices
from portal.services.errors import NotFound
from portal.services.settings import get_settings
from portal.web.agreements.common import request_meta
from portal.web.auth.identity import staff_required
from portal.web.enforcement.forms import ChargeAuthorizationForm, DeliverableForm, NoticeForm, WithdrawForm
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

from .common import current_staff, get_or_404
from .forms import ConfirmForm

bp = Blueprint("enforcement_admin", __name__, url_prefix="/admin")


def _back_to_panel(client: Client):
    """The client page's tab with the notices and charge authorizations, scrolled to them."""
    return redirect(url_for("admin.client_detail", client_id=client.id, tab="equipment", _anchor="enforcement"))


@dataclass(frozen=True)
class EnforcementPanel:
    notices: list[EnforcementNotice]
    authorizations: list[ChargeAuthorization]
    withdraw: WithdrawForm
    confirm: ConfirmForm
    disable_permitted_on: object
    cancelable: frozenset[str] = CANCELABLE  # the authorizations' statuses that show a Cancel button


@bp.app_template_global("enforcement_panel")
def enforcement_panel(client: Client) -> EnforcementPanel:
    session = db.session()
    rows = charge_authorizations.of_client(session, client.id)
    # one paid at the checkout (a new card) is charged once its payment succeeded, whoever looks first
    rows = [charge_authorizations.sync(session, runtime(), r.id) if r.status in (C.SIGNED, C.FAILED) else r
            for r in rows]
    shown = notices.notices_of(session, client.id)
    live = notices.live_notice(shown)
    return EnforcementPanel(shown, rows, WithdrawForm(formdata=None), ConfirmForm(formdata=None),
                            live.disable_permitted_on if live else None)


@bp.app_template_global("deliverables_panel")
def deliverables_panel(invoice: Invoice) -> tuple[list, bool, DeliverableForm, ConfirmForm]:
    session = db.session()
    return (deliverables.of_invoice(session, invoice.id), deliverables.released(session, invoice),
            DeliverableForm(formdata=None), ConfirmForm(formdata=None))


@bp.route("/clients/<int:client_id>/notices/new", methods=["GET", "POST"])
@staff_required
def new_notice(client_id: int):
    """Preview what the notice would say (GET, or POST with ``preview``) and issue it (POST)."""
    session = db.session()
    client = get_or_404(Client, client_id)
    form = NoticeForm(request.form if request.method == "POST" else None)
    if request.method == "GET":
        form.kind.data = request.args.get("kind", N.NoticeKind.REMOTE_DISABLE.value)
    errors: list[str] = []
    draft = None
    status = 200
    if request.method == "POST" and not form.validate_on_submit():
        status = 400
    elif request.method == "POST" and "issue" in request.form:
        with form_refusal(session, errors):
            notice = notices.issue(session, runtime(), client, form.kind.data, staff=current_staff(),
                                   meta=request_meta())
            if notice.delivered_at:
                flash("Notice issued and emailed to the client's billing contacts.", "success")
            else:
                flash("Notice issued and shown in the client's portal, but the email could not be delivered "
                      "(see the agreement's events).", "warning")
            return _back_to_panel(client)
        status = 400
    with form_refusal(session, errors):
        draft = notices.draft(session, client, form.kind.data or "", today())
    return render_template("admin/enforcement/notice_new.html", client=client, form=form, draft=draft,
                           errors=errors), status


@bp.post("/clients/<int:client_id>/notices/<int:notice_id>/withdraw")
@staff_required
def withdraw_notice(client_id: int, notice_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    form = WithdrawForm()
    if not form.validate_on_submit():
        for messages in form.errors.values():
            for message in messages:
                flash(message, "error")
    else:
        with flash_refusal(session):
            try:
                notices.withdraw(session, runtime(), client, notice_id, staff=current_staff(),
                                 reason=form.reason.data, meta=request_meta())
            except NotFound:
                abort(404)
            flash("Notice withdrawn; the client is told.", "success")
    return _back_to_panel(client)


@bp.route("/clients/<int:client_id>/charge-authorizations/new", methods=["GET", "POST"])
@staff_required
def new_charge_authorization(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    open_cents = charge_authorizations.open_cents(session, client.id)
    form = ChargeAuthorizationForm()
    if request.method == "GET":
        form.amount.data = f"{open_cents / 100:.2f}" if open_cents else ""
    status = 200
    if form.validate_on_submit():
        with form_refusal(session, form.amount.errors):
            amount = parse_amount(form.amount.data or "")
            row = charge_authorizations.send(session, runtime(), client, amount_cents=amount,
                                             reason=form.reason.data or "", valid_days=form.valid_days.data,
                                             staff=current_staff())
            flash(f"Charge authorization sent: the client's billing contacts have the link to sign it "
                  f"(open until {row.expires_at:%B %-d, %Y}).", "success")
            return _back_to_panel(client)
        status = 400
    elif request.method == "POST":
        status = 400
    return render_template("admin/enforcement/charge_authorization_new.html", client=client, form=form,
                           open_cents=open_cents, currency=get_settings(session).currency,
                           card=charge_authorizations.card_on_file(session, runtime(), client.id)), status


@bp.post("/clients/<int:client_id>/charge-authorizations/<int:authorization_id>/cancel")
@staff_required
def cancel_charge_authorization(client_id: int, authorization_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            try:
                charge_authorizations.cancel(session, client, authorization_id, staff=current_staff())
            except NotFound:
                abort(404)
            flash("Charge authorization canceled: it can no longer be signed or paid.", "success")
    else:
        flash("The form expired. Please try again.", "error")
    return _back_to_panel(client)


@bp.post("/invoices/<int:invoice_id>/deliverables")
@staff_required
def attach_deliverable(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    form = DeliverableForm()
    if not form.validate_on_submit():
        for messages in form.errors.values():
            for message in messages:
                flash(message, "error")
        return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id, _anchor="deliverables"), 303)
    upload = form.file.data
    data = upload.stream.read(deliverables.max_bytes(runtime()) + 1)
    with flash_refusal(session):
        row = deliverables.attach(session, runtime(), invoice, filename=upload.filename or "", data=data,
                                  staff=current_staff())
        flash(f"{row.filename} ({D.size_label(row.size_bytes)}) attached. The client can download it once the "
              "invoice is paid.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id, _anchor="deliverables"), 303)


@bp.post("/invoices/<int:invoice_id>/deliverables/<int:deliverable_id>/remove")
@staff_required
def remove_deliverable(invoice_id: int, deliverable_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            try:
                row = deliverables.remove(session, runtime(), invoice, deliverable_id)
            except NotFound:
                abort(404)
            flash(f"{row.filename} removed from the invoice.", "success")
    else:
        flash("The form expired. Please try again.", "error")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id, _anchor="deliverables"), 303)

