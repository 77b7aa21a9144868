"""Staff pages for equipment and orders: a client's equipment register (list, add, edit, CSV import with a
line-numbered error report), equipment orders (a deposit request from a quote, the list with statuses, one order,
cancel), the client's credit limit, and the panel on the staff client page (``client_enforcement``)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, DateField, FieldList, Form, FormField, IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from portal import db
from portal.domain.errors import DomainError
from portal.domain.imports import HeaderError
from portal.domain.money import parse_amount
from portal.domain.orders import STATUS_LABELS, EquipmentFacts, OrderItem, OrderStatus, parse_percent
from portal.models import Client, Equipment, EquipmentOrder
from portal.services.enforcement import credit, equipment, orders
from portal.web.auth.identity import staff_required
from portal.web.forms import PortalForm
from portal.web.refusals import flash_refusal
from portal.web.runtime import runtime

from .common import current_staff, get_or_404
from .forms import ConfirmForm

bp = Blueprint("equipment_admin", __name__, url_prefix="/admin")

MAX_UPLOAD_BYTES = 1_000_000
ITEM_ROWS = 6


def _strip(value):
    return value.strip() if isinstance(value, str) else value


# --- forms ----------------------------------------------------------------------------------------------------------

class EquipmentForm(PortalForm):
    item = StringField("Item", filters=(_strip,), validators=[DataRequired("Name the item."), Length(max=200)])
    serial_number = StringField("Serial number", filters=(_strip,),
                                validators=[DataRequired("Enter the serial number."), Length(max=100)])
    value = StringField("Value", filters=(_strip,), description="e.g. 1250.00",
                        validators=[DataRequired("Enter the value (0 if none).")])
    installed_on = DateField("Install date", validators=[Optional()])
    location = StringField("Location", filters=(_strip,), validators=[Optional(), Length(max=200)])
    owned_until_paid = BooleanField("Owned by us until paid", default=True)

    def facts(self) -> EquipmentFacts:
        return EquipmentFacts(self.item.data or "", self.serial_number.data or "", parse_amount(
            self.value.data or "", allow_negative=True), self.installed_on.data, self.location.data or "",
            bool(self.owned_until_paid.data))


class ImportForm(PortalForm):
    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])


class CreditLimitForm(PortalForm):
    limit = StringField("Credit limit", filters=(_strip,), description="Leave empty for no limit.",
                        validators=[Optional()])


class ItemRow(Form):
    description = StringField("Item", filters=(_strip,), validators=[Optional(), Length(max=200)])
    quantity = IntegerField("Quantity", validators=[Optional(), NumberRange(min=1, max=10_000)])
    unit_price = StringField("Unit price", filters=(_strip,), validators=[Optional()])


class OrderForm(PortalForm):
    quote_reference = StringField("Quote reference", filters=(_strip,), validators=[Optional(), Length(max=100)])
    items = FieldList(FormField(ItemRow), min_entries=ITEM_ROWS, max_entries=ITEM_ROWS)
    deposit_percent = StringField("Deposit (%)", filters=(_strip,), default="50",
                                  validators=[DataRequired("Enter the deposit percentage.")])

    def order_items(self) -> list[OrderItem]:
        found = []
        for n, row in enumerate(self.items, 1):
            fields = row.form  # row.description would be the FormField's own description
            description, quantity, price = fields.description.data, fields.quantity.data, fields.unit_price.data
            if not (description or quantity or price):
                continue
            if not price:
                raise DomainError(f"Item {n}: enter the unit price.")
            found.append(OrderItem(description or "", quantity or 1, parse_amount(price, allow_negative=True)))
        return found


class CancelForm(PortalForm):
    reason = TextAreaField("Reason", filters=(_strip,), validators=[Optional(), Length(max=500)])


def _form_messages(form) -> None:
    for errors in form.errors.values():
        for message in errors if isinstance(errors, list) else [errors]:
            flash(str(message), "error")


# --- the panel on the client page -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnforcementPanel:
    equipment: list[Equipment]
    orders: list[EquipmentOrder]
    credit: credit.CreditPosition
    credit_form: CreditLimitForm


@bp.app_template_global("client_enforcement")
def client_enforcement(client: Client) -> EnforcementPanel:
    session = db.session()
    position = credit.position(session, client.id)
    form = CreditLimitForm(formdata=None, data={"limit": f"{position.limit_cents / 100:.2f}"
                                                if position.limit_cents is not None else ""})
    return EnforcementPanel(equipment.rows_for_client(session, client.id), orders.orders_of(session, client.id),
                            position, form)


@bp.app_template_global("order_status_label")
def order_status_label(status: str) -> str:
    return STATUS_LABELS.get(OrderStatus(status), status)


# --- equipment register ---------------------------------------------------------------------------------------------

def _register(client: Client, form: EquipmentForm | None = None, import_form: ImportForm | None = None,
              import_report=None, status: int = 200):
    return render_template("admin/equipment/register.html", client=client,
                           rows=equipment.rows_for_client(db.session(), client.id),
                           form=form or EquipmentForm(formdata=None), import_form=import_form or ImportForm(
                               formdata=None), report=import_report), status


@bp.get("/clients/<int:client_id>/equipment")
@staff_required
def register(client_id: int):
    return _register(get_or_404(Client, client_id))


@bp.post("/clients/<int:client_id>/equipment")
@staff_required
def add(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    form = EquipmentForm()
    if form.validate_on_submit():
        try:
            row = equipment.add(session, client, form.facts())
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            flash(f"{row.item} ({row.serial_number}) added to the register.", "success")
            return redirect(url_for("equipment_admin.register", client_id=client.id))
    return _register(client, form=form, status=400)


@bp.route("/clients/<int:client_id>/equipment/<int:equipment_id>/edit", methods=["GET", "POST"])
@staff_required
def edit(client_id: int, equipment_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    row = equipment.get(session, client.id, equipment_id)
    form = EquipmentForm(data=None if request.method == "POST" else {
        "item": row.item, "serial_number": row.serial_number, "value": f"{row.value_cents / 100:.2f}",
        "installed_on": row.installed_on, "location": row.location, "owned_until_paid": row.owned_until_paid})
    status = 200
    if form.validate_on_submit():
        try:
            equipment.update(session, client.id, row.id, form.facts())
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            flash("Saved.", "success")
            return redirect(url_for("equipment_admin.register", client_id=client.id))
    if request.method == "POST":
        status = 400
    return render_template("admin/equipment/edit.html", client=client, row=row, form=form), status


@bp.post("/clients/<int:client_id>/equipment/import")
@staff_required
def import_csv(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    form = ImportForm()
    if not form.validate_on_submit():
        return _register(client, import_form=form, status=400)
    data = form.file.data.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        form.file.errors = ["The file is larger than 1 MB; split it."]
        return _register(client, import_form=form, status=400)
    try:
        report = equipment.import_csv(session, client, io.StringIO(data.decode("utf-8-sig"), newline=""))
    except UnicodeDecodeError:
        form.file.errors = ["The file is not UTF-8 text (save it as CSV UTF-8). Nothing was imported."]
        return _register(client, import_form=form, status=400)
    except HeaderError as e:
        session.rollback()
        form.file.errors = [f"{e} Nothing was imported."]
        return _register(client, import_form=form, status=400)
    if report.errors or not report.created:
        return _register(client, import_form=form, import_report=report, status=400)
    flash(f"Imported {report.created} item{'s' if report.created != 1 else ''}.", "success")
    return redirect(url_for("equipment_admin.register", client_id=client.id))


# --- credit limit ---------------------------------------------------------------------------------------------------

@bp.post("/clients/<int:client_id>/credit-limit")
@staff_required
def credit_limit(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    form = CreditLimitForm()
    if not form.validate_on_submit():
        _form_messages(form)
    else:
        with flash_refusal(session):
            cents = parse_amount(form.limit.data, allow_negative=True) if form.limit.data else None
            credit.set_limit(session, client.id, cents, staff=current_staff())
            flash("Credit limit removed: no limit." if cents is None else "Credit limit saved.", "success")
    return redirect(url_for("admin.client_detail", client_id=client.id, tab="equipment", _anchor="equipment-orders"))


# --- orders ---------------------------------------------------------------------------------------------------------

@bp.get("/orders")
@staff_required
def order_list():
    wanted = request.args.get("status", "")
    status = wanted if wanted in {s.value for s in OrderStatus} else None
    return render_template("admin/equipment/orders.html", orders=orders.all_orders(db.session(), status=status),
                           status=status, statuses=list(OrderStatus), labels=STATUS_LABELS, Status=OrderStatus)


@bp.route("/clients/<int:client_id>/orders/new", methods=["GET", "POST"])
@staff_required
def new_order(client_id: int):
    session = db.session()
    client = get_or_404(Client, client_id)
    form = OrderForm()
    if request.method == "GET":  # the deposit the client agreed to in its signed terms
        form.deposit_percent.data = format(orders.default_deposit_percent(session, client.id).normalize(), "f")
    status = 200
    if form.validate_on_submit():
        try:
            order = orders.create_order(session, runtime(), client.id, items=form.order_items(),
                                        deposit_percent=parse_percent(form.deposit_percent.data),
                                        quote_reference=form.quote_reference.data or "", staff=current_staff())
        except DomainError as e:
            session.rollback()
            form.form_errors.append(str(e))
        else:
            flash(f"Deposit request {order.reference} sent to the client.", "success")
            return redirect(url_for("equipment_admin.order", order_id=order.id))
    if request.method == "POST":
        status = 400
    position = credit.position(session, client.id)
    return render_template("admin/equipment/new_order.html", client=client, form=form, position=position), status


@bp.get("/orders/<int:order_id>")
@staff_required
def order(order_id: int):
    found = orders.get_order(db.session(), order_id)
    return render_template("admin/equipment/order.html", order=found, items=orders.items_of(found),
                           labels=STATUS_LABELS, Status=OrderStatus, cancel_form=CancelForm(formdata=None),
                           confirm=ConfirmForm(formdata=None))


@bp.post("/orders/<int:order_id>/cancel")
@staff_required
def cancel(order_id: int):
    session = db.session()
    found = orders.get_order(session, order_id)
    form = CancelForm()
    if not form.validate_on_submit():
        _form_messages(form)
    else:
        with flash_refusal(session):
            orders.cancel_order(session, found.id, staff=current_staff(), reason=form.reason.data or "")
            flash(f"Order {found.reference} canceled.", "success")
    return redirect(url_for("equipment_admin.order", order_id=order_id))


@bp.post("/orders/<int:order_id>/resend")
@staff_required
def resend(order_id: int):
    session = db.session()
    found = orders.get_order(session, order_id)
    if ConfirmForm().validate_on_submit() and found.status == OrderStatus.REQUESTED:
        sent = orders.notify_client(session, runtime(), found)
        flash("Sent again." if sent else "Not sent: the client has no contact with portal access, or the email "
              "was refused.", "success" if sent else "error")
    return redirect(url_for("equipment_admin.order", order_id=order_id))
