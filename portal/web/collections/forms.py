"""Forms of the collections pages (staff and client): schedule steps, promises, calls and notes, pausing."""

from __future__ import annotations

from wtforms import BooleanField, DateField, IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from portal.domain import dunning
from portal.domain.money import check_amount, parse_amount
from portal.web.forms import PortalForm


def cents(text: str | None, what: str) -> int:
    """Raises a DomainError (shown beside the form) for text that is not an amount."""
    return check_amount(parse_amount(text or ""), what)


class StepForm(PortalForm):
    offset_days = IntegerField("Day (relative to the due date: -3 is three days before, 1 the day after)",
                               validators=[InputRequired("Enter the day as a whole number, e.g. -3 or 7.")])
    name = StringField("Name", validators=[Length(max=dunning.MAX_NAME)])
    subject = StringField("Subject", validators=[Length(max=dunning.MAX_SUBJECT)])
    body = TextAreaField("Email text", validators=[Length(max=dunning.MAX_BODY)])
    pay_within_days = IntegerField("Pay-by date: days after the reminder", default=7,
                                   validators=[InputRequired("Enter a number of days."),
                                               NumberRange(0, dunning.PAY_WITHIN_MAX)])
    attach_invoice = BooleanField("Attach the original invoice PDF")
    pause_new_work = BooleanField("Says new work is paused until cleared")
    active = BooleanField("Active", default=True)

    def spec(self) -> dunning.StepSpec:
        return dunning.StepSpec(offset_days=self.offset_days.data, name=self.name.data or "",
                                subject=self.subject.data or "", body=self.body.data or "",
                                attach_invoice=bool(self.attach_invoice.data),
                                pause_new_work=bool(self.pause_new_work.data),
                                pay_within_days=self.pay_within_days.data, active=bool(self.active.data))

    def fill(self, step) -> None:
        for name in ("offset_days", "name", "subject", "body", "pay_within_days", "attach_invoice", "pause_new_work",
                     "active"):
            getattr(self, name).data = getattr(step, name)


class PromiseForm(PortalForm):
    invoice = SelectField("For", coerce=str, validate_choice=True)
    amount = StringField("Amount", validators=[InputRequired("Enter the amount."), Length(max=20)])
    promised_on = DateField("Pay by", validators=[InputRequired("Enter the date.")])
    note = TextAreaField("Note", validators=[Optional(), Length(max=2_000)])

    def amount_cents(self) -> int:
        return cents(self.amount.data, "The promised amount")

    def invoice_id(self) -> int | None:
        return int(self.invoice.data) if self.invoice.data and self.invoice.data.isascii() \
            and self.invoice.data.isdigit() else None


#: The "note only" choice: an option with an empty value reads as "nothing chosen" to browsers and tools.
NOTE_ONLY = "note"


class CallForm(PortalForm):
    reason = SelectField("Reason", choices=[SelectChoice(r.value, text) for r, text in dunning.REASON_LABELS.items()],
                         validate_choice=True)
    outcome = SelectField("What happened", validate_choice=True,
                          choices=[SelectChoice(o.value or NOTE_ONLY, text)
                                   for o, text in dunning.OUTCOME_LABELS.items()])
    note = TextAreaField("Note", validators=[Optional(), Length(max=5_000)])
    next_call_on = DateField("Call again on", validators=[Optional()])
    promise_amount = StringField("Promised amount (optional)", validators=[Optional(), Length(max=20)])
    promise_on = DateField("Promised date", validators=[Optional()])

    def outcome_value(self) -> str:
        return "" if self.outcome.data == NOTE_ONLY else self.outcome.data


class PauseForm(PortalForm):
    reason = StringField("Why", validators=[Length(max=500)])
    until = DateField("Until (optional: open-ended if blank)", validators=[Optional()])


class ActionForm(PortalForm):
    """A button with nothing but the CSRF token (resume, cancel a promise, delete a step)."""
