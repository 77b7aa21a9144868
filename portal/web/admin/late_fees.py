"""Late fees (the list; waive one with a reason from its invoice's page) and likely duplicate bills (the held list;
confirm distinct or void as a duplicate), plus what the invoice page shows about either. The actions hang off the
invoice they act on, so every one is reached (and authorized) through an invoice."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from portal import db
from portal.models import Invoice
from portal.services.collections import duplicates, late_fees
from portal.services.errors import NotFound
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.refusals import flash_refusal, form_refusal

from .common import current_staff, get_or_404, money_text
from .forms import ConfirmForm
from .routes import bp


class WaiveForm(PortalForm):
    reason = TextAreaField("Why is this fee waived?", filters=(lambda v: v.strip() if isinstance(v, str) else v,),
                           validators=[DataRequired("Say why the late fee is waived; the reason is kept on record."),
                                       Length(max=late_fees.MAX_REASON)])


def invoice_panel(session, invoice: Invoice) -> dict:
    """What the admin invoice page shows: the late fee this invoice charges (and the waive form), the fees charged
    on it, and its duplicate flags."""
    return {
        "fee": late_fees.fee_for_invoice(session, invoice.id),
        "fees_on": late_fees.fees_on(session, invoice.id),
        "flags": duplicates.flags_for(session, invoice.id),
        "waive_form": WaiveForm(formdata=None),
        "confirm": ConfirmForm(),
    }


# --- late fees ---------------------------------------------------------------------------------------------------

@bp.get("/late-fees")
@staff_required
def late_fee_list():
    return render_template("admin/late_fees/list.html", fees=late_fees.recent_fees(db.session()))


@bp.post("/invoices/<int:invoice_id>/late-fee/waive")
@staff_required
def late_fee_waive(invoice_id: int):
    """Waive the fee a late-fee invoice charges (the button is on that invoice's page)."""
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    fee = late_fees.fee_for_invoice(session, invoice.id)
    if fee is None:
        raise NotFound()
    form = WaiveForm()
    if form.validate_on_submit():
        with form_refusal(session, form.reason.errors):
            waived = late_fees.waive_fee(session, fee.id, staff=current_staff(), reason=form.reason.data)
            credited = (f" {money_text(waived.credited_cents, invoice.currency)} already paid on it is now the "
                        "client's credit." if waived.credited_cents else "")
            flash(f"Late fee waived; invoice {invoice.number} is void.{credited}", "success")
            return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))
    return render_template("admin/late_fees/detail.html", fee=fee, waive_form=form), 400


# --- likely duplicates -------------------------------------------------------------------------------------------

@bp.get("/duplicates")
@staff_required
def duplicate_list():
    session = db.session()
    return render_template("admin/duplicates/list.html", flags=duplicates.open_flags(session),
                           decided=duplicates.recent_decisions(session), confirm=ConfirmForm())


@bp.post("/invoices/<int:invoice_id>/duplicate/distinct")
@staff_required
def duplicate_distinct(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            duplicates.confirm_distinct(session, invoice.id, staff=current_staff())
            flash(f"Invoice {invoice.number} is confirmed as separate work: it can be sent.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/duplicate/void")
@staff_required
def duplicate_void(invoice_id: int):
    session = db.session()
    invoice = get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        with flash_refusal(session):
            duplicates.confirm_duplicate(session, invoice.id, staff=current_staff())
            flash(f"Invoice {invoice.number} was voided as a {invoice.void_reason}.", "success")
    return redirect(url_for("admin.invoice_detail", invoice_id=invoice.id))
