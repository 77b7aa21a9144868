"""Collections rules: the reminder schedule, which step is due for an invoice, when a reminder is skipped, the
pay-by date, promises to pay (valid, kept, broken) and who is due a phone call.

Pure: every rule takes ``today``/``now`` as an argument. The rows live in portal/models/collections.py.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from . import dates
from .errors import DomainError, InvalidAmount, InvalidDate
from .money import format_money


class PromiseStatus(StrEnum):
    OPEN = "open"  # reminders pause until its date
    KEPT = "kept"  # the promised amount arrived by the date
    BROKEN = "broken"  # the date passed unpaid: flagged, reminders resume
    CANCELED = "canceled"


class NoteReason(StrEnum):
    """Why the client has not paid, as the call found out (the notes log's reason code)."""

    DID_NOT_RECEIVE = "did_not_receive"
    DISPUTE = "dispute"
    CASH_FLOW = "cash_flow"
    WAITING_APPROVAL = "waiting_approval"
    OTHER = "other"


REASON_LABELS = {
    NoteReason.DID_NOT_RECEIVE: "Did not receive the invoice",
    NoteReason.DISPUTE: "Dispute",
    NoteReason.CASH_FLOW: "Cash flow",
    NoteReason.WAITING_APPROVAL: "Waiting on approval",
    NoteReason.OTHER: "Other",
}


class CallOutcome(StrEnum):
    NONE = ""  # a note, not a call
    REACHED = "reached"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no_answer"
    WRONG_NUMBER = "wrong_number"


OUTCOME_LABELS = {
    CallOutcome.NONE: "Note only (no call)",
    CallOutcome.REACHED: "Called: reached someone",
    CallOutcome.VOICEMAIL: "Called: left a voicemail",
    CallOutcome.NO_ANSWER: "Called: no answer",
    CallOutcome.WRONG_NUMBER: "Called: wrong number",
}


class ReminderSkip(StrEnum):
    """Why an invoice got no reminder today."""

    NOT_OPEN = "not_open"  # a draft, void or paid invoice is never chased
    NOTHING_OWED = "nothing_owed"
    ON_PLAN = "on_plan"  # the plan collects it
    AUTOPAY = "autopay"  # autopay will charge it: the client already agreed to pay
    PAUSED = "paused"  # the admin paused this client's reminders
    PROMISED = "promised"  # an open promise covers it until its date
    DUPLICATE_HELD = "duplicate_held"  # a likely duplicate bill the admin has not confirmed
    NO_RECIPIENT = "no_recipient"  # the client has no billing contact with portal access to write to


# --- the schedule ---------------------------------------------------------------------------------------------------

#: Steps can sit two months before the due date (a friendly early heads-up) to a year after it.
OFFSET_MIN, OFFSET_MAX = -60, 365
MAX_SUBJECT, MAX_NAME, MAX_BODY = 200, 60, 10_000
PAY_WITHIN_MAX = 90

#: What a step's subject and body may name, e.g. "Invoice {invoice_number} is {days_overdue} days overdue".
PLACEHOLDERS = {
    "contact_name": "the recipient's name",
    "client": "the client's name",
    "invoice_number": "the invoice number",
    "total": "the invoice total",
    "balance": "what is still owed",
    "due_date": "the due date",
    "days_overdue": "days past the due date (0 before it)",
    "pay_by": "the pay-by date this reminder names",
    "pay_link": "the link to view and pay the invoice",
    "msp": "your business name",
}


@dataclass(frozen=True)
class StepSpec:
    """One step as the MSP writes it (before it is stored)."""

    offset_days: int
    name: str
    subject: str
    body: str
    attach_invoice: bool = False
    pause_new_work: bool = False
    pay_within_days: int = 7
    active: bool = True


DEFAULT_SCHEDULE: tuple[StepSpec, ...] = (
    StepSpec(-3, "Friendly reminder", "Invoice {invoice_number} from {msp} is due {due_date}",
             "Hello {contact_name},\n\nA friendly reminder: invoice {invoice_number} for {balance} is due on "
             "{due_date}. Please pay by {pay_by}.\n\nView and pay it online (no password needed):\n{pay_link}\n\n"
             "If you have already paid, thank you.", pay_within_days=3),
    StepSpec(1, "Invoice past due", "Invoice {invoice_number} was due yesterday: a copy is attached",
             "Hello {contact_name},\n\nInvoice {invoice_number} from {msp} was due on {due_date} and {balance} is "
             "still open. A copy of the original invoice is attached in case it went astray.\n\nPlease pay by "
             "{pay_by}. View and pay it online:\n{pay_link}\n\nIf something is holding the payment up, reply and "
             "tell us: we are glad to help.", attach_invoice=True, pay_within_days=7),
    StepSpec(7, "One week past due", "Invoice {invoice_number} is {days_overdue} days past due",
             "Hello {contact_name},\n\nInvoice {invoice_number} ({balance}) is now {days_overdue} days past its due "
             "date of {due_date}. Please pay by {pay_by}:\n{pay_link}", pay_within_days=7),
    StepSpec(14, "Two weeks past due", "Second notice: invoice {invoice_number} is {days_overdue} days past due",
             "Hello {contact_name},\n\nWe have not received payment of invoice {invoice_number} ({balance}), due on "
             "{due_date}. Please pay by {pay_by}, or reply to arrange a payment date:\n{pay_link}",
             pay_within_days=7),
    StepSpec(30, "Final notice", "Final notice: invoice {invoice_number}, new work paused until cleared",
             "Hello {contact_name},\n\nInvoice {invoice_number} ({balance}) is {days_overdue} days past due. This "
             "is our final notice: new work is paused until the balance is cleared. Please pay by {pay_by}:\n"
             "{pay_link}\n\nIf you need a payment plan, reply to this email.", pause_new_work=True,
             pay_within_days=7),
)


def check_template(text: str, what: str) -> None:
    """Refuse a subject or body that names something we cannot fill in, or has a stray brace."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError:
        raise DomainError(f"{what} has an unmatched brace: write {{placeholder}} in pairs.") from None
    for name in fields:
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise DomainError(f"{what} names {{{name}}}, which is not something we can fill in. Use: {known}.")


def check_step(spec: StepSpec, other_offsets: Iterable[int]) -> StepSpec:
    """A step the MSP may save; ``other_offsets``: the days of the schedule's other steps. Returns it cleaned."""
    name, subject, body = spec.name.strip(), spec.subject.strip(), spec.body.strip()
    if not OFFSET_MIN <= spec.offset_days <= OFFSET_MAX:
        raise DomainError(f"A step's day must be between {OFFSET_MIN} (days before the due date) and {OFFSET_MAX} "
                          f"(days after it); {spec.offset_days} is outside that.")
    if spec.offset_days in set(other_offsets):
        raise DomainError(f"Another step already sends on {describe_offset(spec.offset_days)}: two emails the "
                          "same day would arrive together. Choose another day.")
    if not name:
        raise DomainError("Give the step a name.")
    if len(name) > MAX_NAME:
        raise DomainError(f"A step's name can be at most {MAX_NAME} characters.")
    if not subject:
        raise DomainError("The subject is empty: every reminder needs a subject.")
    if len(subject) > MAX_SUBJECT or "\n" in subject or "\r" in subject:
        raise DomainError(f"The subject must be one line of at most {MAX_SUBJECT} characters.")
    if not body:
        raise DomainError("The email text is empty.")
    if len(body) > MAX_BODY:
        raise DomainError(f"The email text can be at most {MAX_BODY:,} characters.")
    if not 0 <= spec.pay_within_days <= PAY_WITHIN_MAX:
        raise DomainError(f"The pay-by date must be 0 to {PAY_WITHIN_MAX} days after the reminder.")
    check_template(subject, "The subject")
    check_template(body, "The email text")
    return StepSpec(spec.offset_days, name, subject, body, spec.attach_invoice, spec.pause_new_work,
                    spec.pay_within_days, spec.active)


def describe_offset(offset_days: int) -> str:
    if offset_days == 0:
        return "the due date"
    n = abs(offset_days)
    return f"{n} day{'s' if n != 1 else ''} {'before' if offset_days < 0 else 'after'} the due date"


@dataclass(frozen=True)
class StepRef:
    step_id: int
    offset_days: int


def step_day(due_date: date, offset_days: int) -> date:
    return dates.add_days(due_date, offset_days, "The reminder date")


def due_step(steps: Sequence[StepRef], *, issue_date: date, due_date: date, today: date,
             sent_offsets: Iterable[int]) -> StepRef | None:
    """The step to send today: the latest active step whose day has come, unless it (or a later one) already went.

    Older steps never go after a newer one (a client paused for three weeks gets the current step, not a burst of
    the ones missed), and a step whose day fell on or before the issue date is not a reminder of anything.

    A step's day (``step_day``) comes when ``issue_date < due_date + offset <= today``: compared as day counts, as
    `run-due` asks this of every open invoice past the earliest step (134,329 at a million invoices: the dates
    themselves, each checked against the supported calendar, took a second a run)."""
    late, lead = (today - due_date).days, (issue_date - due_date).days
    reached = [s for s in steps if lead < s.offset_days <= late]
    if not reached:
        return None
    latest = max(reached, key=lambda s: s.offset_days)
    if any(offset >= latest.offset_days for offset in sent_offsets):
        return None
    return latest


def pay_by(today: date, due_date: date, pay_within_days: int) -> date:
    """The date a reminder asks payment by: ``pay_within_days`` from today, never before the due date."""
    return max(due_date, dates.add_days(today, pay_within_days, "The pay-by date"))


@dataclass(frozen=True)
class InvoiceFacts:
    """What decides whether an invoice is chased today."""

    open: bool
    balance_cents: int
    on_current_plan: bool = False
    autopay_will_charge: bool = False
    duplicate_held: bool = False


@dataclass(frozen=True)
class ClientFacts:
    paused: bool = False
    paused_until: date | None = None
    has_recipient: bool = True


def reminders_paused(client: ClientFacts, today: date) -> bool:
    """Paused by the admin; a pause with an end date lifts by itself the day after it."""
    return client.paused and (client.paused_until is None or today <= client.paused_until)


def skip_reason(invoice: InvoiceFacts, client: ClientFacts, promised_until: date | None,
                today: date) -> ReminderSkip | None:
    """Why no reminder goes for this invoice today, or None. ``promised_until``: the latest date of the open
    promises that cover it."""
    if not invoice.open:
        return ReminderSkip.NOT_OPEN
    if invoice.balance_cents <= 0:
        return ReminderSkip.NOTHING_OWED
    if invoice.duplicate_held:
        return ReminderSkip.DUPLICATE_HELD
    if invoice.on_current_plan:
        return ReminderSkip.ON_PLAN
    if invoice.autopay_will_charge:
        return ReminderSkip.AUTOPAY
    if reminders_paused(client, today):
        return ReminderSkip.PAUSED
    if not client.has_recipient:
        return ReminderSkip.NO_RECIPIENT
    if promised_until is not None and today <= promised_until:
        return ReminderSkip.PROMISED
    return None


def render(text: str, values: Mapping[str, object]) -> str:
    """A step's subject or body with its placeholders filled (checked when the step was saved)."""
    return text.format_map({name: values.get(name, "") for name in PLACEHOLDERS})


def placeholder_values(*, contact_name: str, client: str, invoice_number: str, total_cents: int,
                       balance_cents: int, currency: str, due_date: date, pay_by_date: date, pay_link: str,
                       msp: str, today: date) -> dict[str, str]:
    return {
        "contact_name": contact_name or "there", "client": client, "invoice_number": invoice_number,
        "total": format_money(total_cents, currency), "balance": format_money(balance_cents, currency),
        "due_date": long_date(due_date), "days_overdue": str(max(0, (today - due_date).days)),
        "pay_by": long_date(pay_by_date), "pay_link": pay_link, "msp": msp,
    }


def long_date(day: date) -> str:
    return f"{day:%B} {day.day}, {day.year}"


# --- sending: a claimed reminder that did not go ---------------------------------------------------------------------

#: A claimed reminder with no outcome after this long was abandoned (its process died): another run takes it over.
SEND_LEASE = timedelta(minutes=15)


def may_retry(*, sent_at: datetime | None, last_error: str, claimed_at: datetime, now: datetime) -> bool:
    """A reminder that left is never sent again; one that failed is retried by the next run; one claimed but
    without an outcome is left to the run sending it until its lease runs out."""
    if sent_at is not None:
        return False
    return bool(last_error) or claimed_at <= now - SEND_LEASE


# --- promises ---------------------------------------------------------------------------------------------------------

MAX_PROMISE_DAYS = 180


def check_promise(amount_cents: int, promised_on: date, balance_cents: int, today: date) -> None:
    """A promise the portal accepts: some money, no more than is owed, on a date still to come."""
    if amount_cents <= 0:
        raise InvalidAmount("Enter the amount you will pay (more than zero).")
    if balance_cents <= 0:
        raise InvalidAmount("Nothing is owed here, so there is nothing to promise.")
    if amount_cents > balance_cents:
        raise InvalidAmount(f"The promise is larger than the balance of {format_money(balance_cents)}: promise at "
                            "most what is owed.")
    dates.check_supported(promised_on, "The promised date")
    if promised_on < today:
        raise InvalidDate("The promised date is in the past: choose today or a later date.")
    if promised_on > today + timedelta(days=MAX_PROMISE_DAYS):
        raise InvalidDate(f"Promise a date within {MAX_PROMISE_DAYS} days; for longer, ask about a payment plan.")


def promise_outcome(amount_cents: int, promised_on: date, paid_since_cents: int, today: date) -> PromiseStatus:
    """OPEN until the day after its date; then KEPT when the promised amount arrived since it was made, else
    BROKEN. Paid in full early: kept at once (reminders need not wait)."""
    if paid_since_cents >= amount_cents:
        return PromiseStatus.KEPT
    if today > promised_on:
        return PromiseStatus.BROKEN
    return PromiseStatus.OPEN


# --- the call list ---------------------------------------------------------------------------------------------------

class CallReason(StrEnum):
    AFTER_EMAIL = "after_email"  # the day-after-due email went a few days ago and nothing came of it
    SCHEDULED = "scheduled"  # a previous call set this date
    BROKEN_PROMISE = "broken_promise"


def call_reason(*, first_overdue_email_on: date | None, last_call_on: date | None, next_call_on: date | None,
                open_promise: bool, broken_promise_since: date | None, past_due_cents: int, call_after_days: int,
                today: date) -> CallReason | None:
    """Whether the client is on today's call list, and why.

    The seed practice: email the invoice the day after due, then call ``call_after_days`` later to make sure it
    arrived and find out why payment is late. A call's outcome sets the next call (``next_call_on``); an open
    promise takes the client off the list until it is kept or broken; a broken promise puts it back on."""
    if past_due_cents <= 0 or open_promise:
        return None
    if next_call_on is not None:
        return CallReason.SCHEDULED if next_call_on <= today else None
    if broken_promise_since is not None and (last_call_on is None or last_call_on < broken_promise_since):
        return CallReason.BROKEN_PROMISE
    if first_overdue_email_on is None or last_call_on is not None and last_call_on >= first_overdue_email_on:
        return None
    if today >= first_overdue_email_on + timedelta(days=call_after_days):
        return CallReason.AFTER_EMAIL
    return None


def check_note(reason: str, outcome: str, note: str, next_step_on: date | None, today: date) -> None:
    if reason not in set(NoteReason):
        raise DomainError("Choose a reason code.")
    if outcome not in set(CallOutcome):
        raise DomainError("Choose what happened on the call.")
    if len(note) > 5_000:
        raise DomainError("The note can be at most 5,000 characters.")
    if outcome == CallOutcome.NONE and not note.strip():
        raise DomainError("Write the note, or record a call's outcome.")
    if next_step_on is not None:
        dates.check_supported(next_step_on, "The next call date")
        if next_step_on < today:
            raise InvalidDate("The next call date is in the past.")
