"""Forms of the plan offer pages. Shape checks only: what a plan may be is decided by the services and the domain."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    widgets,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from portal.domain.errors import DomainError
from portal.domain.money import check_amount, parse_amount, parse_decimal
from portal.domain.schedules import MAX_INSTALLMENTS, Frequency
from portal.services.plans.offers import Choice
from portal.services.plans.policy import PolicyInput
from portal.web.agreements.forms import ConsentSignForm
from portal.web.forms import PortalForm
from portal.web.params import parse_date

FREQUENCY_CHOICES = [SelectChoice(f.value, f.label.capitalize()) for f in Frequency]


class CheckboxList(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _money(text: str | None, what: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    return check_amount(parse_amount(text), what)


def _percent(text: str | None, what: str) -> Decimal | None:
    text = (text or "").strip().rstrip("%").strip()
    if not text:
        return None
    value = parse_decimal(text, field=what)
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise DomainError(f"{what}: use at most four decimals.")
    return value


def _dates(text: str | None) -> tuple[date, ...]:
    found = []
    for part in (text or "").replace(";", ",").replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        day = parse_date(part)
        if day is None:
            raise DomainError(f"{part!r} is not a date (use YYYY-MM-DD).")
        found.append(day)
    if len(found) > MAX_INSTALLMENTS:
        raise DomainError(f"At most {MAX_INSTALLMENTS} dates.")
    return tuple(found)


class PlanChoiceForm(PortalForm):
    """What the client may change on the self-service page (and the base of the MSP's offer form)."""

    # the service checks every id against the client (another client's invoice: a message for staff, 404 for a
    # contact), so the form does not refuse it first with a vaguer "not a valid choice"
    invoice_ids = CheckboxList("Invoices on the plan", coerce=int, validate_choice=False, validators=[Optional()])
    down_payment = StringField("Down payment ($)", validators=[Optional(), Length(max=20)])
    installments = IntegerField("Number of payments", validators=[Optional(), NumberRange(1, MAX_INSTALLMENTS)])
    frequency = SelectField("How often", choices=FREQUENCY_CHOICES, default=Frequency.MONTHLY,
                            validators=[InputRequired("Choose how often.")])
    first_due_on = DateField("First payment due", validators=[Optional()])
    message = TextAreaField("Message", validators=[Optional(), Length(max=2000)])

    def choice(self) -> Choice:
        """The typed values as the service's Choice; a value that is not a number or date is a DomainError."""
        return Choice(invoice_ids=tuple(self.invoice_ids.data or ()),
                      down_payment_cents=_money(self.down_payment.data, "The down payment") or 0,
                      installments=self.installments.data, frequency=self.frequency.data or Frequency.MONTHLY,
                      first_due_on=self.first_due_on.data)


class OfferForm(PlanChoiceForm):
    """The MSP's offer (and counter-offer) form."""

    all_overdue = BooleanField("All overdue invoices (instead of the ticked ones)")
    down_kind = RadioField("Down payment as", default="amount",
                           choices=[SelectChoice("amount", "An amount"), SelectChoice("percent", "A percentage")],
                           validators=[Optional()])
    down_percent = StringField("Down payment (%)", validators=[Optional(), Length(max=12)])
    pay_now_invoice_id = SelectField("Pay this invoice now (optional)", coerce=str, validators=[Optional()])
    count_kind = RadioField("Installments by", default="count",
                            choices=[SelectChoice("count", "Number of payments"),
                                     SelectChoice("amount", "Amount of each payment")],
                            validators=[Optional()])
    installment_amount = StringField("Amount of each payment ($)", validators=[Optional(), Length(max=20)])
    custom_dates = StringField("Chosen dates (custom only)", description="YYYY-MM-DD, separated by commas.",
                               validators=[Optional(), Length(max=2000)])
    apr_percent = StringField("APR (%)", default="0", validators=[Optional(), Length(max=12)])
    as_note = BooleanField("Issue as a formal promissory note")

    def choice(self) -> Choice:
        by_percent = self.down_kind.data == "percent"
        by_amount = self.count_kind.data == "amount"
        pay_now = (self.pay_now_invoice_id.data or "").strip()
        return Choice(
            invoice_ids=tuple(self.invoice_ids.data or ()), all_overdue=bool(self.all_overdue.data),
            down_payment_cents=None if by_percent else (_money(self.down_payment.data, "The down payment") or 0),
            down_payment_percent=_percent(self.down_percent.data, "The down payment percentage") if by_percent
            else None,
            pay_now_invoice_id=int(pay_now) if pay_now.isascii() and pay_now.isdigit() and len(pay_now) < 10
            else None,
            installments=None if by_amount else self.installments.data,
            installment_cents=_money(self.installment_amount.data, "The installment amount") if by_amount else None,
            frequency=self.frequency.data or Frequency.MONTHLY, custom_dates=_dates(self.custom_dates.data),
            first_due_on=self.first_due_on.data, apr_percent=_percent(self.apr_percent.data, "The APR") or Decimal(0),
            as_note=bool(self.as_note.data))


class PolicyForm(PortalForm):
    self_service = BooleanField("Overdue clients may set up a plan themselves in the portal")
    max_balance = StringField("Largest balance a client may put on a plan ($)",
                              validators=[DataRequired("Enter the largest balance."), Length(max=20)])
    max_installments = IntegerField("Most installments", validators=[InputRequired("Enter a number."),
                                                                      NumberRange(1, MAX_INSTALLMENTS)])
    min_down_percent = StringField("Smallest down payment (%)", validators=[InputRequired(), Length(max=12)])
    frequencies = CheckboxList("Frequencies clients may choose", choices=[
        SelectChoice(f.value, f.label.capitalize()) for f in Frequency if f != Frequency.CUSTOM],
        validators=[Optional()])
    apr_percent = StringField("APR on self-service plans (%)", validators=[InputRequired(), Length(max=12)])
    max_apr_percent = StringField("Maximum APR on any plan (%)", validators=[InputRequired(), Length(max=12)])
    grace_days = IntegerField("Grace days after a missed installment, then default",
                              validators=[InputRequired("Enter a number of days."), NumberRange(0, 60)])
    reminder_days = IntegerField("Reminder with a pay link, days before a due date (no saved method)",
                                 validators=[InputRequired("Enter a number of days."), NumberRange(0, 30)])

    def values(self) -> PolicyInput:
        return PolicyInput(
            self_service=bool(self.self_service.data),
            max_balance_cents=_money(self.max_balance.data, "The largest balance") or 0,
            max_installments=self.max_installments.data, frequencies=tuple(self.frequencies.data or ()),
            min_down_percent=_percent(self.min_down_percent.data, "The smallest down payment") or Decimal(0),
            apr_percent=_percent(self.apr_percent.data, "The APR") or Decimal(0),
            max_apr_percent=_percent(self.max_apr_percent.data, "The maximum APR") or Decimal(0),
            grace_days=self.grace_days.data, reminder_days=self.reminder_days.data)


class AcceptForm(ConsentSignForm):
    """Sign the plan agreement (or note)."""


class ReasonForm(PortalForm):
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=2000)])


class ActionForm(PortalForm):
    """A button that only needs the CSRF token."""
