"""Staff side of emailed invoices: send (one, on issue, in bulk), retry a failed email, revoke a link, sign a
contact out everywhere, and the delivery panel shown on the admin invoice page."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.domain.links import DeliveryStatus
from portal.models import Invoice, InvoiceDelivery
from portal.services import delivery
from portal.web.auth.identity import staff_required
from portal.web.auth.routes import safe_next
from portal.web.refusals import flash_refusal
from portal.web.runtime import runtime

from .forms import ActionForm, BulkSendForm, SendInvoiceForm
from .routes import bp


@bp.app_template_global("invoice_delivery")
def invoice_delivery(invoice: Invoice) -> delivery.DeliveryOverview:
    """For templates/links/_admin_delivery.html, so any admin page that has an ``invoice`` can include it."""
    return delivery.overview(db.session(), invoice)


@bp.get("/admin/invoices/<int:invoice_id>/delivery")
@staff_required
def delivery_page(invoice_id: int):
    return render_template("links/admin_delivery.html", invoice=delivery.get_invoice(db.session(), invoice_id))


@bp.post("/admin/invoices/<int:invoice_id>/send")
@staff_required
def send(invoice_id: int):
    session = db.session()
    invoice = delivery.get_invoice(session, invoice_id)
    form = SendInvoiceForm()
    form.contact_ids.choices = [(c.id, c.email) for c in delivery.overview(session, invoice).contacts]
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return _back(form, invoice)
    with flash_refusal(session):
        contacts = delivery.contacts_by_id(session, form.contact_ids.data)
        sent = delivery.send_invoice(session, runtime(), invoice, contacts=contacts, actor=current_user.record)
        _flash_outcome(invoice, sent)
    return _back(form, invoice)


@bp.post("/admin/invoices/<int:invoice_id>/issue-and-send")
@staff_required
def issue_and_send(invoice_id: int):
    """The draft invoice's "Issue and email" button: issue it, then email the billing contacts."""
    session = db.session()
    invoice = delivery.get_invoice(session, invoice_id)
    form = ActionForm()
    if not form.validate_on_submit():
        _flash_form_errors(form)
        return _back(form, invoice)
    with flash_refusal(session):
        done = delivery.issue_and_send(session, runtime(), invoice, actor=current_user.record)
        if done.not_sent:
            flash(f"Invoice {invoice.number} issued, but not emailed: {done.not_sent}", "error")
        else:
            _flash_outcome(invoice, done.deliveries)
    return _back(form, invoice)


@bp.post("/admin/deliveries/<int:delivery_id>/retry")
@staff_required
def retry(delivery_id: int):
    session = db.session()
    failed = delivery.get_delivery(session, delivery_id)
    form = ActionForm()
    if form.validate_on_submit():
        with flash_refusal(session):
            again = delivery.retry_delivery(session, runtime(), failed, actor=current_user.record)
            _flash_outcome(failed.invoice, [again])
    return _back(form, failed.invoice)


@bp.post("/admin/links/<int:link_id>/revoke")
@staff_required
def revoke(link_id: int):
    session = db.session()
    link = delivery.get_link(session, link_id)
    form = ActionForm()
    if form.validate_on_submit():
        with flash_refusal(session):
            delivery.revoke_link(session, link, actor=current_user.record)
            flash(f"The link of {link.contact.email} to invoice {link.invoice.number} no longer opens it.", "success")
    return _back(form, link.invoice)


@bp.post("/admin/contacts/<int:contact_id>/sign-out-everywhere")
@staff_required
def sign_out_everywhere(contact_id: int):
    session = db.session()
    contact = delivery.get_contact(session, contact_id)
    form = ActionForm()
    if form.validate_on_submit():
        count = delivery.sign_out_everywhere(session, contact, actor=current_user.record)
        flash(f"{contact.email} is signed out everywhere: {count} invoice link{'s' if count != 1 else ''} revoked "
              "and every portal session ended.", "success")
    return redirect(safe_next(form.next.data, _contact_page(contact.client_id)))


@bp.route("/admin/invoices/send-bulk", methods=["GET", "POST"])
@staff_required
def send_bulk():
    session = db.session()
    include_sent = request.args.get("all") == "1"
    form = BulkSendForm()
    if form.validate_on_submit():
        result = delivery.send_many(session, runtime(), form.invoice_ids.data, actor=current_user.record)
        if result.sent:
            flash(f"Emailed {len(result.sent)} invoice{'s' if len(result.sent) != 1 else ''}: "
                  f"{', '.join(result.sent)}.", "success")
        for number, why in result.failed:
            flash(f"{number}: {why}", "error")
        return redirect(safe_next(form.next.data, url_for("links.send_bulk")))
    if request.method == "POST":
        _flash_form_errors(form)
    invoices = delivery.unsent_open_invoices(session, include_sent=include_sent)
    return render_template("links/admin_bulk_send.html", form=form, invoices=invoices, include_sent=include_sent)


def _flash_outcome(invoice: Invoice, sent: list[InvoiceDelivery]) -> None:
    ok = [d.to_email for d in sent if d.status == DeliveryStatus.ACCEPTED]
    failed = [d for d in sent if d.status != DeliveryStatus.ACCEPTED]
    if ok:
        flash(f"Invoice {invoice.number} emailed to {', '.join(ok)}.", "success")
    for d in failed:
        flash(f"The email to {d.to_email} failed: {d.error}. The invoice and its link are kept; retry it from "
              "the delivery list.", "error")


def _flash_form_errors(form) -> None:
    messages = [m for errors in form.errors.values() for m in errors] or ["That request could not be understood."]
    for message in messages:
        flash(str(message), "error")


def _back(form: ActionForm, invoice: Invoice):
    return redirect(safe_next(form.next.data, _invoice_page(invoice.id)))


def _invoice_page(invoice_id: int) -> str:
    if "admin.invoice_detail" in current_app.view_functions:
        return url_for("admin.invoice_detail", invoice_id=invoice_id)
    return url_for("links.delivery_page", invoice_id=invoice_id)


def _contact_page(client_id: int) -> str:
    if "admin.client_detail" in current_app.view_functions:
        return url_for("admin.client_detail", client_id=client_id)
    return url_for("admin.dashboard")
