"""The client's equipment orders: the list, one order (its items, the deposit, whether it is cleared to order),
and accepting the deposit agreement, which leads to the usual checkout for the deposit. Every order is looked up
within the signed-in contact's client: another client's order is 404, whatever the action."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.domain.errors import DomainError
from portal.domain.orders import STATUS_LABELS, OrderStatus
from portal.services import agreements
from portal.services.enforcement import orders
from portal.web.agreements.common import request_meta
from portal.web.auth.identity import contact_required
from portal.web.runtime import runtime

from .forms import AcceptDepositForm

bp = Blueprint("orders", __name__)


def _order(public_id: str):
    return orders.order_for_client(db.session(), current_user.client_id, public_id)  # NotFound → 404


@bp.get("/orders")
@contact_required
def mine():
    return render_template("orders/list.html", orders=orders.orders_of(db.session(), current_user.client_id),
                           labels=STATUS_LABELS)


@bp.get("/orders/<public_id>")
@contact_required
def show(public_id: str):
    order = _order(public_id)
    return render_template("orders/show.html", order=order, items=orders.items_of(order), labels=STATUS_LABELS,
                           Status=OrderStatus, pay=orders.deposit_request(db.session(), order))


@bp.route("/orders/<public_id>/accept", methods=["GET", "POST"])
@contact_required
def accept(public_id: str):
    """The deposit agreement exactly as signed: its SHA-256 travels with the form and is checked again."""
    session = db.session()
    order = _order(public_id)
    rt = runtime()
    form = AcceptDepositForm()
    status = 200
    if form.validate_on_submit():
        signed = form.signed_by()
        try:
            done = orders.accept(session, rt, current_user.record, public_id, signed, meta=request_meta())
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            flash(f"Thank you. The signed deposit agreement {done.agreement.reference} is on its way to your inbox; "
                  "please pay the deposit now.", "success")
            return redirect(url_for("payments.checkout", public_id=done.request.public_id))
        status = 400
    elif request.method == "POST":
        status = 400
    if order.status != OrderStatus.REQUESTED:
        flash("This deposit agreement was already accepted." if order.status != OrderStatus.CANCELED
              else "This order was canceled.", "error")
        return redirect(url_for("orders.show", public_id=public_id))
    document = orders.document(session, rt, order)
    form.document_sha256.data = document.sha256
    return render_template("orders/accept.html", form=form, order=order, document=document,
                           consent_statement=agreements.consent_statement(session),
                           disclosure=agreements.disclosure_document(session)[1]), status
