"""The client's side of collections: its own reminders and promises, and "promise to pay", from the portal or from
the link in a reminder email (no account needed: the emailed link opens its one invoice, as the pay link does).

Isolation: signed-in pages read through the contact's client only (another client's invoice or promise id is
404); the emailed link reaches only its own invoice.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal import db
from portal.clock import today
from portal.services import delivery, ledger
from portal.services.collections import promises, reminders
from portal.services.errors import NotFound
from portal.services.scope import ClientScope
from portal.web.auth.identity import contact_required
from portal.web.params import id_arg
from portal.web.refusals import form_refusal
from portal.web.runtime import runtime

from .forms import ActionForm, PromiseForm

bp = Blueprint("collections", __name__)

PAST_DUE = "past_due"


def _client_id() -> int:
    return current_user.client_id


@bp.get("/reminders")
@contact_required
def mine():
    session = db.session()
    client_id = _client_id()
    return render_template("collections/mine.html", sends=reminders.sends_for(session, client_id=client_id),
                           promises=promises.for_client(session, client_id), action_form=ActionForm())


def _form(client_id: int, invoice_id: int | None = None) -> PromiseForm:
    form = PromiseForm()
    choices = [SelectChoice(str(i.id), f"Invoice {i.number} ({cents / 100:,.2f} owed)")
               for i, cents in promises.promisable_invoices(db.session(), client_id)
               if invoice_id is None or i.id == invoice_id]
    if invoice_id is None and promises.owed(db.session(), client_id, None, today()) > 0:
        choices.insert(0, SelectChoice(PAST_DUE, "Everything past due"))
    form.invoice.choices = choices
    return form


@bp.route("/reminders/promise", methods=["GET", "POST"])
@contact_required
def promise():
    session = db.session()
    client_id = _client_id()
    chosen = id_arg("invoice")
    if chosen is not None:
        ClientScope(session, client_id).invoice(chosen)  # another client's invoice: 404
    form = _form(client_id)
    if request.method == "GET" and chosen is not None:
        form.invoice.data = str(chosen)
    if form.validate_on_submit():
        invoice_id = form.invoice_id()
        if invoice_id is not None:
            ClientScope(session, client_id).invoice(invoice_id)
        with form_refusal(session, form.form_errors):
            promises.record(session, client_id=client_id, invoice_id=invoice_id, amount_cents=form.amount_cents(),
                            promised_on=form.promised_on.data, today=today(), note=form.note.data or "",
                            contact=current_user.record)
            flash("Thank you: your promise is recorded and reminders wait until that date.", "success")
            return redirect(url_for("collections.mine"))
    return render_template("collections/promise.html", form=form, invoice=None, token=None)


@bp.get("/reminders/promises/<int:promise_id>")
@contact_required
def promise_detail(promise_id: int):
    found = promises.of_client(db.session(), _client_id(), promise_id)  # another client's promise: 404
    return render_template("collections/promise_detail.html", promise=found)


@bp.route("/i/<token>/promise", methods=["GET", "POST"])
def link_promise(token: str):
    """From a reminder email: promise a date for this invoice, as the link's contact."""
    session = db.session()
    access = delivery.resolve_link(session, runtime(), token)
    if not access.ok:
        raise NotFound()
    invoice = access.invoice
    form = _form(invoice.client_id, invoice.id)
    form.invoice.data = str(invoice.id)
    if form.validate_on_submit():
        with form_refusal(session, form.form_errors):
            promises.record(session, client_id=invoice.client_id, invoice_id=invoice.id,
                            amount_cents=form.amount_cents(), promised_on=form.promised_on.data, today=today(),
                            note=form.note.data or "", contact=access.link.contact)
            return render_template("collections/promise_thanks.html", invoice=invoice,
                                   promised_on=form.promised_on.data)
    balance = ledger.balance_of(session, invoice)
    return render_template("collections/promise.html", form=form, invoice=invoice, token=token, balance=balance)
