"""Invoices: list, create (draft or issued), edit a draft, issue, void, unapply payments, PDF."""

from __future__ import annotations

from decimal import Decimal

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from portal import db
from portal.clock import today
from portal.domain.invoices import DRAFT, check_editable
from portal.domain.money import format_money, to_decimal
from portal.models import Client, Invoice
from portal.services import adjustments, billing, ledger, payments, reports
from portal.services.autopay import cap_approvals, outlook
from portal.web.auth.identity import staff_required
from portal.web.params import choice_arg
from portal.web.refusals import flash_refusal, form_refusal
from portal.web.runtime import runtime

from . import late_fees as late_fee_views
from .common import (
    PAGE_SIZE,
    client_arg,
    get_or_404,
    money_text,
    page_arg,
    pdf_available,
    pdf_documents,
    render_pick_client,
    send_pdf,
)
from .forms import BLANK_LINE_ROWS, ConfirmForm, InvoiceForm, VoidForm
from .routes import bp

FILTER_LABELS = {"draft": "Draft", "open": "Open", "overdue": "Overdue", "paid": "Paid", "void": "Void"}


@bp.get("/invoices")
@staff_required
def invoices():
    session = db.session()
    status = choice_arg("status", reports.INVOICE_FILTERS, "")
    q = request.args.get("q", "").strip()
    client = client_arg()
    page = reports.invoice_page(session, today(), status=status, q=q, client_id=client.id if client else None,
                                page=page_arg(), per_page=PAGE_SIZE)
    return render_template("admin/invoices/list.html", page=page, status=status, q=q, client=client,
                           filters=FILTER_LABELS, today=today())


@bp.get("/invoices/new")
@staff_required
def invoice_pick_client():
    return render_pick_client("New invoice", "admin.invoice_new")


@bp.route("/clients/<int:client_id>/invoices/new", methods=["GET", "POST"])
@staff_required
def invoice_new(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    form = InvoiceForm()
    if form.validate_on_submit() and (parsed := form.parsed()):
        lines, tax_rate = parsed
        issue = bool(form.save_issue.data)
        with form_refusal(session, form.form_errors):
            invoice = billing.create_invoice(
                session, client, lines=lines, tax_rate=tax_rate, issue_date=form.issue_date.data,
                due_date=form.due_date.data, memo=(form.memo.data or "").strip(), issue=issue,
            )
            flash(f"Invoice {invoice.number} {'issued' if issue else 'saved as a draft'}.", "success")
            return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))
    return render_template("admin/invoices/form.html", form=form, client=client, invoice=None,
                           net_days=billing.net_days_for(session, client))


@bp.route("/invoices/<int:invoice_id>/edit", methods=["GET", "POST"])
@staff_required
def invoice_edit(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if invoice.status != DRAFT:  # say why on the invoice's page instead of showing a form that cannot be saved
        with flash_refusal(session):
            check_editable(invoice.status)
        return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))
    form = InvoiceForm() if request.method == "POST" else InvoiceForm(data=_form_data(invoice))
    if request.method == "GET":
        form.add_blank_rows(len(invoice.lines) + BLANK_LINE_ROWS - len(form.lines.entries))
    if form.validate_on_submit() and (parsed := form.parsed()):
        lines, tax_rate = parsed
        issue = bool(form.save_issue.data)
        with form_refusal(session, form.form_errors):
            # cleared dates mean "today" and "the client's usual terms", as when creating
            billing.update_draft(session, invoice, lines=lines, issue_date=form.issue_date.data,
                                 due_date=form.due_date.data, tax_rate=tax_rate, memo=(form.memo.data or "").strip(),
                                 issue=issue)
            flash(f"Invoice {invoice.number} {'issued' if issue else 'saved'}.", "success")
            return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))
    return render_template("admin/invoices/form.html", form=form, client=invoice.client, invoice=invoice,
                           net_days=billing.net_days_for(session, invoice.client))


def _form_data(invoice: Invoice) -> dict:
    def plain(value: Decimal) -> str:
        return format(value.normalize(), "f")

    return {
        "lines": [{"description": line.description, "quantity": plain(line.quantity),
                   "unit_price": str(to_decimal(line.unit_price_cents)), "taxable": line.taxable}
                  for line in invoice.lines],
        "tax_rate": plain(invoice.tax_rate), "issue_date": invoice.issue_date, "due_date": invoice.due_date,
        "memo": invoice.memo,
    }


@bp.get("/invoices/<int:invoice_id>")
@staff_required
def invoice_detail(invoice_id: int):
    return _render_detail(get_or_404(Invoice, invoice_id))


def _render_detail(invoice: Invoice, void_form: VoidForm | None = None):
    session = db.session()
    figures = ledger.invoice_figures(session, invoice, today())
    in_flight = payments.payments_in_flight(session, invoice.client_id, [invoice.id]).get(invoice.id, [])
    return render_template(
        "admin/invoices/detail.html",
        invoice=invoice,
        in_flight=in_flight,
        # what may still be recorded: money on its way is not offered again
        recordable_cents=max(0, figures.balance_cents - sum(p.cents for p in in_flight)),
        paid_cents=figures.paid_cents,
        balance_cents=figures.balance_cents,
        status=figures.status,
        allocations=reports.invoice_allocations(session, invoice.id),
        void_form=void_form or VoidForm(formdata=None),
        confirm=ConfirmForm(),
        pdf_available=pdf_available(),
        collections=late_fee_views.invoice_panel(session, invoice),  # duplicate holds, late fees
        write_off_cents=adjustments.writable_off_cents(session, invoice.id, figures.balance_cents),
        over_cap=cap_approvals.over_cap(session, invoice, figures.balance_cents),
        autopay=outlook.invoice_outlook(session, runtime().gateway.name, invoice, today()),
    )


@bp.post("/invoices/<int:invoice_id>/issue")
@staff_required
def invoice_issue(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            billing.issue_invoice(session, invoice)
            flash(f"Invoice {invoice.number} issued.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/write-off")
@staff_required
def invoice_write_off(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            cents = adjustments.write_off_small_balance(session, invoice.id, staff=current_user.record)
            flash(f"{format_money(cents, invoice.currency)} written off invoice {invoice.number}.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/autopay-approval")
@staff_required
def invoice_autopay_approve(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            cap_approvals.approve(session, invoice.id, staff=current_user.record)
            flash(f"Invoice {invoice.number} approved for autopay: it is charged on its charge date, after the "
                  "usual notice.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/autopay-approval/withdraw")
@staff_required
def invoice_autopay_withdraw(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            cap_approvals.withdraw(session, invoice.id, staff=current_user.record)
            flash(f"Autopay approval of invoice {invoice.number} withdrawn.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/void")
@staff_required
def invoice_void(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    form = VoidForm()
    if form.validate_on_submit():
        with form_refusal(session, form.form_errors):  # e.g. money is applied: the service says what to do first
            billing.void_invoice(session, invoice, form.reason.data)
            flash(f"Invoice {invoice.number} voided.", "success")
            return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))
    return _render_detail(invoice, void_form=form)


@bp.post("/invoices/<int:invoice_id>/unapply")
@staff_required
def invoice_unapply(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        moved = payments.unapply_invoice(session, invoice)
        if moved:
            flash(f"Moved {money_text(moved, invoice.currency)} off invoice {invoice.number} to the client's "
                  "credit. The invoice can now be voided.", "success")
        else:
            flash(f"No payments are applied to invoice {invoice.number}.", "warning")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))


@bp.get("/invoices/<int:invoice_id>/pdf")
@staff_required
def invoice_pdf(invoice_id: int):
    invoice = get_or_404(Invoice, invoice_id)
    pdf = pdf_documents().invoice_pdf(db.session(), runtime(), invoice)
    return send_pdf(pdf, f"{invoice.number}.pdf")
