"""Staff forms. They parse and check the shape of input; business rules stay in the services."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from portal.clock import today
from portal.domain.clients import CLIENT_STATUSES, ClientStatus
from portal.domain.errors import DomainError
from portal.domain.invoices import LineInput, check_quantity, check_tax_rate
from portal.domain.ledger import OpenItem
from portal.domain.money import SYMBOLS, parse_amount, parse_decimal
from portal.web.forms import PortalForm

STATUS_LABELS = {ClientStatus.ACTIVE: "Active", ClientStatus.ON_HOLD: "On hold", ClientStatus.INACTIVE: "Inactive"}
PAYMENT_METHODS = (("check", "Check"), ("wire", "Wire transfer"), ("ach", "ACH / bank transfer"),
                   ("cash", "Cash"), ("other", "Other"))


def _choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]
BLANK_LINE_ROWS = 5
# A shape check only: email_validator refuses reserved domains (.test, .local) that MSPs use in labs and demos.
EMAIL = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter a valid email address.")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class ClientForm(PortalForm):
    class Meta:
        def bind_field(self, form, unbound_field, options):
            options.setdefault("filters", (_strip,))
            return unbound_field.bind(form=form, **options)

    legal_name = StringField("Legal name", validators=[DataRequired("Enter the client's legal name."),
                                                       Length(max=255)])
    external_id = StringField("External id", validators=[Optional(), Length(max=100)],
                              description="The client's id in your PSA or accounting system (optional).")
    address_line1 = StringField("Address", validators=[Length(max=255)])
    address_line2 = StringField("Address line 2", validators=[Length(max=255)])
    city = StringField("City", validators=[Length(max=100)])
    region = StringField("State / province", validators=[Length(max=100)])
    postal_code = StringField("Postal code", validators=[Length(max=20)])
    country = StringField("Country", default="US", validators=[
        InputRequired(), Regexp(r"^[A-Za-z]{2}$", message="Use a two-letter code, e.g. US.")])
    status = SelectField("Status", choices=_choices((s, STATUS_LABELS[s]) for s in CLIENT_STATUSES),
                         default=ClientStatus.ACTIVE)
    net_days = IntegerField("Payment terms (net days)", validators=[Optional(), NumberRange(0, 365)],
                            description="Leave blank to use your default terms.")
    notes = TextAreaField("Internal notes", validators=[Length(max=5000)])

    def values(self) -> dict:
        return {
            "legal_name": self.legal_name.data, "external_id": self.external_id.data or None,
            "address_line1": self.address_line1.data or "", "address_line2": self.address_line2.data or "",
            "city": self.city.data or "", "region": self.region.data or "",
            "postal_code": self.postal_code.data or "", "country": (self.country.data or "US").upper(),
            "status": self.status.data, "net_days": self.net_days.data, "notes": self.notes.data or "",
        }


class ContactForm(PortalForm):
    name = StringField("Name", filters=(_strip,), validators=[DataRequired("Enter the contact's name."),
                                                              Length(max=255)])
    email = StringField("Email", filters=(_strip,),
                        validators=[DataRequired("Enter an email address."), Length(max=320),
                                    EMAIL])
    phone = StringField("Phone", filters=(_strip,), validators=[Length(max=40)])
    title = StringField("Title", filters=(_strip,), validators=[Length(max=100)])
    is_billing = BooleanField("Billing contact (receives invoices and reminders)", default=True)
    portal_access = BooleanField("Can sign in to the portal", default=True)

    def values(self) -> dict:
        return {"name": self.name.data, "email": self.email.data, "phone": self.phone.data or "",
                "title": self.title.data or "", "is_billing": self.is_billing.data,
                "portal_access": self.portal_access.data}


# --- invoices ------------------------------------------------------------------------------------------------


MAX_LINES = 200


class LineForm(Form):
    """One invoice line. A plain wtforms Form: the CSRF token belongs to the outer form only."""

    description = StringField("Description", validators=[Length(max=1000)])
    quantity = StringField("Qty")
    unit_price = StringField("Unit price")
    taxable = BooleanField("Taxable", default=True)

    def is_blank(self) -> bool:
        return not any((f.data or "").strip() for f in (self.description, self.quantity, self.unit_price))


class InvoiceForm(PortalForm):
    # no max_entries: WTForms would silently drop rows past it; parsed() refuses too many lines instead
    lines = FieldList(FormField(LineForm), min_entries=BLANK_LINE_ROWS)
    tax_rate = StringField("Tax rate (%)", default="0")
    issue_date = DateField("Issue date", validators=[Optional()], description="Blank: today.")
    due_date = DateField("Due date", validators=[Optional()],
                         description="Blank: issue date plus the client's payment terms.")
    memo = TextAreaField("Memo (shown on the invoice)", validators=[Length(max=5000)])
    save_draft = SubmitField("Save draft")
    save_issue = SubmitField("Save and issue")

    def parsed(self) -> tuple[list[LineInput], Decimal] | None:
        """The lines and tax rate as domain values, or None with errors set on the fields."""
        ok = True
        lines: list[LineInput] = []
        for entry in self.lines:
            row: LineForm = entry.form
            if row.is_blank():
                continue
            try:
                quantity = check_quantity(parse_decimal(row.quantity.data or "1", field="Quantity"))
            except DomainError as e:
                row.quantity.errors = [str(e)]
                ok = False
                continue
            try:
                price = parse_amount(row.unit_price.data or "", allow_negative=True)
            except DomainError:
                row.unit_price.errors = ["Enter a price such as 125.00."]
                ok = False
                continue
            lines.append(LineInput((row.description.data or "").strip(), quantity, price, bool(row.taxable.data)))
        try:
            tax_rate = check_tax_rate(parse_decimal(self.tax_rate.data or "0", field="Tax rate"))
        except DomainError as e:
            self.tax_rate.errors = [str(e)]
            return None
        if ok and not lines:
            self.form_errors.append("Add at least one line.")
            return None
        if len(lines) > MAX_LINES:
            self.form_errors.append(f"An invoice can have at most {MAX_LINES} lines.")
            return None
        return (lines, tax_rate) if ok else None

    def add_blank_rows(self, count: int = BLANK_LINE_ROWS) -> None:
        for _ in range(count):
            self.lines.append_entry()


class VoidForm(PortalForm):
    reason = TextAreaField("Reason", filters=(_strip,),
                           validators=[DataRequired("Say why the invoice is voided; the reason is kept on record."),
                                       Length(max=2000)])


class ConfirmForm(PortalForm):
    """A button-only POST (issue, unapply, apply credit): just the CSRF token."""


# --- payments ------------------------------------------------------------------------------------------------


class PaymentForm(PortalForm):
    amount = StringField("Amount received", filters=(_strip,), validators=[DataRequired("Enter the amount.")])
    method = SelectField("Method", choices=_choices(PAYMENT_METHODS), default="check")
    received_on = DateField("Received on", validators=[Optional()], description="Blank: today.")
    reference = StringField("Reference", filters=(_strip,), validators=[Length(max=100)],
                            description="Check number, wire reference ...")
    memo = TextAreaField("Memo", validators=[Length(max=2000)])
    suggest = SubmitField("Fill oldest first")
    record = SubmitField("Record payment")

    def amount_cents(self) -> int | None:
        try:
            cents = parse_amount(self.amount.data or "")
        except DomainError as e:
            self.amount.errors = [*self.amount.errors, str(e)]
            return None
        if cents <= 0:
            self.amount.errors = [*self.amount.errors, "A payment must be more than zero."]
            return None
        return cents


def allocation_field(invoice_id: int) -> str:
    return f"alloc-{invoice_id}"


def parse_allocations(formdata: Mapping[str, str], items: Sequence[OpenItem]) -> tuple[dict[int, int] | None,
                                                                                      dict[int, str]]:
    """Amounts typed against each open invoice. All blank means "oldest first" (None); errors by invoice id."""
    plan: dict[int, int] = {}
    errors: dict[int, str] = {}
    any_filled = False
    for item in items:
        raw = (formdata.get(allocation_field(item.invoice_id)) or "").strip()
        if not raw:
            continue
        any_filled = True
        try:
            cents = parse_amount(raw)
        except DomainError:
            errors[item.invoice_id] = "Enter an amount such as 125.00."
            continue
        if cents:
            plan[item.invoice_id] = cents
    return (plan if any_filled else None), errors


class RefundForm(PortalForm):
    amount = StringField("Amount to refund", filters=(_strip,), validators=[DataRequired("Enter the amount.")])
    reason = TextAreaField("Reason", filters=(_strip,),
                           validators=[DataRequired("Say why the money is refunded."), Length(max=2000)])
    refunded_on = DateField("Refunded on", validators=[Optional()], description="Blank: today.")

    def validate_refunded_on(self, field) -> None:
        if field.data and field.data > today():
            raise ValidationError("A refund cannot be dated in the future.")


class StatementForm(PortalForm):
    class Meta:
        csrf = False  # a GET form that only reads

    start = DateField("From", validators=[Optional()])
    end = DateField("To", validators=[Optional()])


# --- settings ------------------------------------------------------------------------------------------------


class SettingsForm(PortalForm):
    name = StringField("Business name", filters=(_strip,), validators=[DataRequired("Enter your business name."),
                                                                       Length(max=255)])
    legal_name = StringField("Legal name", filters=(_strip,), validators=[Length(max=255)])
    address = TextAreaField("Address", validators=[Length(max=2000)])
    email = StringField("Billing email", filters=(_strip,),
                        validators=[Optional(), EMAIL,
                                    Length(max=255)])
    reply_to = StringField("Reply-to email", filters=(_strip,),
                           validators=[Optional(), EMAIL,
                                       Length(max=255)])
    phone = StringField("Phone", filters=(_strip,), validators=[Length(max=40)])
    website = StringField("Website", filters=(_strip,),
                          validators=[Optional(), URL(message="Enter a full address such as https://example.com."),
                                      Length(max=255)])
    currency = SelectField("Currency", choices=_choices((c, c) for c in SYMBOLS), default="USD")
    default_net_days = IntegerField("Default payment terms (net days)",
                                    validators=[InputRequired("Enter the number of days."), NumberRange(0, 365)])
    payment_instructions = TextAreaField("Payment instructions", validators=[Length(max=5000)],
                                         description="How to pay by check or wire; printed on invoices.")

    def values(self) -> dict:
        text = ("name", "legal_name", "address", "email", "reply_to", "phone", "website", "currency",
                "payment_instructions")
        return {**{name: getattr(self, name).data or "" for name in text},
                "default_net_days": self.default_net_days.data}


class LogoForm(PortalForm):
    logo = FileField("Logo (PNG or JPEG, up to 1 MB)", validators=[FileRequired("Choose an image file.")])
