"""The client portal: what a signed-in contact sees of its own client's account.

Every read goes through ClientScope(session, current_user.client_id): another client's id gives 404, never a hint.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.clock import today
from portal.domain.payments import PaymentStatus
from portal.services import client_portal, documents, ledger, sign_in
from portal.services import payments as online_payments
from portal.services.collections import late_fees
from portal.services.scope import ClientScope
from portal.services.settings import get_settings
from portal.services.statements import client_statement
from portal.web.auth.identity import contact_required
from portal.web.params import choice_arg, page_arg
from portal.web.refusals import form_refusal
from portal.web.runtime import runtime

from .forms import PasswordForm, StatementRangeForm

bp = Blueprint("client", __name__)

STATEMENT_DAYS = 90
# Ids beyond a 32-bit integer column cannot exist; without the bound the database driver errors (500), not 404.
ID = "int(max=2147483647)"


def _scope() -> ClientScope:
    return ClientScope(db.session(), current_user.client_id)


def _page_number() -> int:
    return page_arg()


def _pdf(data: bytes, name: str) -> Response:
    response = Response(data, mimetype="application/pdf")
    # invoice numbers may be imported from other systems: keep the file name to safe characters
    response.headers.set("Content-Disposition", "attachment", filename=re.sub(r"[^A-Za-z0-9._-]+", "_", name))
    return response


@bp.get("/")
@contact_required
def dashboard():
    scope = _scope()
    summary = ledger.client_summary(scope.session, scope.client_id, today())
    in_flight = online_payments.payments_in_flight(scope.session, scope.client_id)
    return render_template("client/dashboard.html", summary=summary, recent=client_portal.recent_open(scope, today()),
                           client=current_user.record.client, in_flight=in_flight,
                           in_flight_cents=sum(p.cents for found in in_flight.values() for p in found))


@bp.get("/invoices")
@contact_required
def invoices():
    status = choice_arg("status", client_portal.INVOICE_FILTERS, "all")
    number = request.args.get("q", "").strip()[:50]
    page = client_portal.invoice_page(_scope(), status=status, page=_page_number(), number=number,
                                page_size=current_app.config["INVOICE_PAGE_SIZE"], today=today())
    in_flight = online_payments.payments_in_flight(db.session(), current_user.client_id,
                                                   [r.invoice.id for r in page.rows if r.paying])
    return render_template("client/invoices.html", page=page, status=status, q=number,
                           filters=list(client_portal.INVOICE_FILTERS), in_flight=in_flight)


@bp.get(f"/invoices/<{ID}:invoice_id>")
@contact_required
def invoice(invoice_id: int):
    scope = _scope()
    found = scope.invoice(invoice_id)
    row = client_portal.invoice_rows(scope, [found], today())[0]
    in_flight = online_payments.payments_in_flight(scope.session, scope.client_id, [found.id]).get(found.id, [])
    return render_template("client/invoice.html", row=row, invoice=found,
                           applied=client_portal.payments_on_invoice(scope, found), num=documents.number_text,
                           in_flight=in_flight, late_fee=late_fees.fee_for_invoice(scope.session, found.id),
                           payable_cents=max(0, row.balance_cents - sum(p.cents for p in in_flight)))


@bp.get(f"/invoices/<{ID}:invoice_id>.pdf")
@contact_required
def invoice_pdf(invoice_id: int):
    found = _scope().invoice(invoice_id)
    return _pdf(documents.invoice_pdf(db.session(), runtime(), found), f"{found.number}.pdf")


@bp.get("/payments")
@contact_required
def payments():
    page = client_portal.payment_page(_scope(), page=_page_number(), page_size=current_app.config["INVOICE_PAGE_SIZE"])
    return render_template("client/payments.html", page=page, awaiting=_awaiting([r.payment for r in page.rows]))


@bp.get(f"/payments/<{ID}:payment_id>")
@contact_required
def payment(payment_id: int):
    row = client_portal.payment_row(_scope(), payment_id)
    return render_template("client/payment.html", row=row, awaiting=_awaiting([row.payment]))


def _awaiting(found: list) -> dict:
    """The invoices each payment still clearing is for (it is applied to them once the money arrives)."""
    clearing = [p.id for p in found if p.status in (PaymentStatus.PENDING, PaymentStatus.PROCESSING)]
    return online_payments.invoices_awaiting(db.session(), current_user.client_id, clearing) if clearing else {}


def _statement_range() -> tuple[StatementRangeForm, date, date]:
    """The requested period, or the last 90 days; a bad date is reported on the form and the default is used."""
    form = StatementRangeForm(formdata=request.args)
    valid = form.validate()
    end = (form.end.data if valid else None) or today()
    start = (form.start.data if valid else None) or end - timedelta(days=STATEMENT_DAYS)
    if start > end:  # only "from" was given, and it is after today
        start, end = end, start
    form.start.data, form.end.data = start, end
    return form, start, end


@bp.get("/statement")
@contact_required
def statement():
    form, start, end = _statement_range()
    scope = _scope()
    return render_template("client/statement.html", form=form, client=current_user.record.client,
                           statement=client_statement(scope.session, scope.client_id, start, end),
                           currency=get_settings(scope.session).currency)


@bp.get("/statement.pdf")
@contact_required
def statement_pdf():
    _form, start, end = _statement_range()
    scope = _scope()
    data = documents.statement_pdf(scope.session, runtime(), current_user.record.client,
                                   client_statement(scope.session, scope.client_id, start, end))
    return _pdf(data, f"statement-{start.isoformat()}-{end.isoformat()}.pdf")


@bp.route("/password", methods=["GET", "POST"])
@contact_required
def password():
    form = PasswordForm()
    if form.validate_on_submit():
        with form_refusal(db.session(), form.password.errors):
            sign_in.set_password(db.session(), current_user.record, form.password.data)
            flash("Your password is saved. You can sign in with it or with an emailed link.", "success")
            return redirect(url_for("client.password"))
    return render_template("client/password.html", form=form, has_password=bool(current_user.record.password_hash))
