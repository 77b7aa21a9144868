"""Payments in the ledger: record money received offline and apply it, list payments, and refund one: the admin
area's one refund action, for offline and online payments alike (an online payment's refund goes back through the
gateway: ``online_payments.refund_online``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from portal import db
from portal.domain.errors import DomainError
from portal.domain.ledger import OpenItem, allocate_oldest_first
from portal.domain.money import parse_amount, to_decimal
from portal.models import Client, Payment
from portal.services import ledger, reports
from portal.services import payments as payment_service
from portal.web.auth.identity import staff_required
from portal.web.params import id_arg

from .common import PAGE_SIZE, client_arg, current_staff, get_or_404, money_text, page_arg, render_pick_client
from .forms import PaymentForm, RefundForm, allocation_field, parse_allocations
from .online_payments import refund_online
from .routes import bp


@bp.get("/payments")
@staff_required
def payments():
    session = db.session()
    q = request.args.get("q", "").strip()
    client = client_arg()
    page = reports.payment_page(session, client_id=client.id if client else None, q=q, page=page_arg(),
                                per_page=PAGE_SIZE)
    return render_template("admin/payments/list.html", page=page, q=q, client=client)


@bp.get("/payments/new")
@staff_required
def payment_pick_client():
    return render_pick_client("Record a payment", "admin.payment_new")


@bp.route("/clients/<int:client_id>/payments/new", methods=["GET", "POST"])
@staff_required
def payment_new(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    rows = reports.open_invoices(session, client.id)
    items = [OpenItem(r.invoice.id, r.balance_cents, r.invoice.number) for r in rows]
    form = PaymentForm()
    alloc_errors: dict[int, str] = {}
    if request.method == "GET":
        shown = _prefill(form, items)
    else:
        shown = {item.invoice_id: request.form.get(allocation_field(item.invoice_id), "") for item in items}
    if form.validate_on_submit():
        cents = form.amount_cents()
        plan, alloc_errors = parse_allocations(request.form, items)
        if cents is not None and form.suggest.data:  # only fills the boxes; nothing is saved
            shown = _as_text(allocate_oldest_first(cents, items))
        elif cents is not None and not alloc_errors:
            try:
                payment = payment_service.record_payment(
                    session, client, amount_cents=cents, method=form.method.data,
                    received_on=form.received_on.data, reference=form.reference.data or "",
                    memo=form.memo.data or "", allocations=plan, recorded_by=current_staff(),
                )
            except DomainError as e:  # over-allocation, more than owed, a future date: nothing was saved
                session.rollback()
                form.form_errors.append(str(e))
            else:
                flash(_confirmation(reports.payment_row(session, payment)), "success")
                return redirect(url_for("admin.client_detail", client_id=client.id))
    return render_template("admin/payments/form.html", form=form, client=client, rows=rows, shown=shown,
                           alloc_errors=alloc_errors, field_name=allocation_field,
                           credit_cents=ledger.credit_cents(session, client.id))


def _prefill(form: PaymentForm, items: list[OpenItem]) -> dict[int, str]:
    """``?invoice=<id>``: pay that invoice in full. ``?amount=``: spread it oldest first. Otherwise blank boxes,
    which also means oldest first when submitted."""
    invoice_id = id_arg("invoice")
    chosen = next((item for item in items if item.invoice_id == invoice_id), None)
    if chosen is not None:
        form.amount.data = str(to_decimal(chosen.balance_cents))
        return _as_text({chosen.invoice_id: chosen.balance_cents})
    try:
        cents = parse_amount(request.args.get("amount", ""))
    except DomainError:
        return {}
    form.amount.data = str(to_decimal(cents))
    return _as_text(allocate_oldest_first(cents, items))


def _as_text(plan: dict[int, int]) -> dict[int, str]:
    return {invoice_id: str(to_decimal(cents)) for invoice_id, cents in plan.items()}


def _confirmation(row: reports.PaymentRow) -> str:
    currency = row.payment.currency
    text = f"Payment of {money_text(row.payment.amount_cents, currency)} recorded"
    text += f"; {money_text(row.applied_cents, currency)} applied to invoices" if row.applied_cents else \
        "; nothing was applied to invoices"
    if row.unapplied_cents:
        text += f"; {money_text(row.unapplied_cents, currency)} left as credit on the client's account"
    return text + "."


@bp.get("/payments/<int:payment_id>")
@staff_required
def payment_detail(payment_id: int):
    return _render_detail(get_or_404(Payment, payment_id))


def _render_detail(payment: Payment, refund_form: RefundForm | None = None):
    row = reports.payment_row(db.session(), payment)
    if refund_form is None:
        refund_form = RefundForm(formdata=None)
        refund_form.amount.data = str(to_decimal(payment.amount_cents - row.refunded_cents))
    return render_template("admin/payments/detail.html", payment=payment, row=row, refund_form=refund_form,
                           refundable_cents=payment.amount_cents - row.refunded_cents)


@bp.post("/payments/<int:payment_id>/refund")
@staff_required
def payment_refund(payment_id: int):
    session = db.session()
    payment = get_or_404(Payment, payment_id)
    online = payment_service.attempt_for_payment(session, payment.id)
    if online is not None:
        return refund_online(online)
    form = RefundForm()
    if form.validate_on_submit():
        try:
            cents = parse_amount(form.amount.data or "")
            before = reports.payment_row(session, payment).applied_cents
            payment_service.refund_offline(session, payment, amount_cents=cents, reason=form.reason.data,
                                           refunded_on=form.refunded_on.data)
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            taken_back = before - reports.payment_row(session, payment).applied_cents
            message = f"Refund of {money_text(cents, payment.currency)} recorded."
            if taken_back:
                message += (f" {money_text(taken_back, payment.currency)} was taken back off invoices, "
                            "which are open again.")
            flash(message, "success")
            return redirect(url_for("admin.payment_detail", payment_id=payment.id))
    return _render_detail(payment, refund_form=form)
