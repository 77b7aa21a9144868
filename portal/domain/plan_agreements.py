"""The two documents a client signs to accept an installment plan: the plan agreement and, when the MSP issues the
plan with interest as a formal debt instrument, the promissory note.

Like the autopay authorizations they are templates the MSP may edit and publish as versions; the per-plan data
below (the invoices, the schedule, the APR, the saved method) fills them. The schedule is written as list lines
rather than a table because the signed document's HTML is rebuilt from its text by evidence.to_html (a small,
frozen Markdown subset) when the record is verified: what is signed must render the same way for years.

Pure standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .money import format_money

INSTALLMENT_PLAN = "installment_plan"
PROMISSORY_NOTE = "promissory_note"
KINDS = (INSTALLMENT_PLAN, PROMISSORY_NOTE)
TITLES = {INSTALLMENT_PLAN: "Installment plan agreement", PROMISSORY_NOTE: "Promissory note"}

VARIABLES: dict[str, str] = {
    "msp_legal_name": "Your legal name (Settings)",
    "msp_email": "Your billing email (Settings)",
    "client_legal_name": "The client's legal name",
    "covered_invoices": "The invoices the plan covers and what each owed (a list)",
    "balance": "What the covered invoices owe in total",
    "down_payment": "The down payment due at signing",
    "down_payment_clause": "How the down payment is applied (and which invoice it pays first)",
    "principal": "The balance less the down payment: what the installments repay",
    "installment_count": "The number of installments",
    "frequency": "How often installments fall due (monthly, every two weeks ...)",
    "schedule": "The schedule: one line per installment (date, amount and, with interest, its split)",
    "apr": "The annual percentage rate (0% when there is no interest)",
    "total_interest": "The total interest over the schedule",
    "total_cost": "Down payment plus all installments",
    "grace_days": "Days after a due date before a missed installment defaults the plan (policy)",
    "payment_clause": "How installments are paid: charged to the saved method (named) or paid in the portal",
    "portal_url": "The address of the client portal",
    "effective_date": "The date the client signed",
}


def kind_for(as_note: bool) -> str:
    return PROMISSORY_NOTE if as_note else INSTALLMENT_PLAN


@dataclass(frozen=True)
class CoveredLine:
    number: str  # the invoice number
    due_on: date
    balance_cents: int


@dataclass(frozen=True)
class ScheduleLine:
    number: int
    due_on: date
    amount_cents: int
    principal_cents: int
    interest_cents: int
    balance_after_cents: int


def _day(value: date) -> str:
    return value.strftime("%B %-d, %Y")


def percent_wording(value: Decimal) -> str:
    """12.5 -> '12.5%', 0 -> '0%' (one spelling: it is hashed with the document)."""
    text = format(value.normalize(), "f")
    return f"{text}%"


def covered_wording(lines: Sequence[CoveredLine], currency: str) -> str:
    return "\n".join(f"- Invoice {line.number}, due {_day(line.due_on)}: {format_money(line.balance_cents, currency)}"
                     for line in lines)


def schedule_wording(rows: Sequence[ScheduleLine], currency: str, *, with_interest: bool) -> str:
    """One list line per installment. With interest (a note, or any plan with an APR) each line shows the interest
    and principal parts and the principal still owed after it: the amortization table, row by row."""
    out = []
    for row in rows:
        line = f"- Payment {row.number}, due {_day(row.due_on)}: **{format_money(row.amount_cents, currency)}**"
        if with_interest:
            line += (f" (interest {format_money(row.interest_cents, currency)}, principal "
                     f"{format_money(row.principal_cents, currency)}, principal owed after it "
                     f"{format_money(row.balance_after_cents, currency)})")
        out.append(line)
    return "\n".join(out)


def down_payment_wording(down_cents: int, currency: str, pay_now_number: str | None, *,
                         document: str = "this agreement") -> str:
    if down_cents <= 0:
        return "There is no down payment."
    amount = format_money(down_cents, currency)
    if pay_now_number:
        return (f"The down payment of {amount} is due when {document} is signed. It pays invoice "
                f"{pay_now_number} in full first; any rest is applied to the other covered invoices, oldest first.")
    return (f"The down payment of {amount} is due when {document} is signed and is applied to the covered "
            "invoices, oldest first.")


def payment_wording(method: str | None, portal_url: str, *, payer: str = "Client", payee: str = "Provider") -> str:
    """``payer``/``payee``: the parties as the document names them (a note says Borrower and Holder)."""
    if method:
        return (f"The {payer} authorizes the {payee} to charge each installment, on its due date, to **{method}** "
                f"saved in the client portal, and, after a declined charge, to try it again on the {payee}'s retry "
                f"schedule. The {payer} is told by email after every charge and every failed charge, and may pay an "
                f"installment by hand in the portal ({portal_url}) before its due date instead.")
    return (f"The {payer} pays each installment by its due date in the client portal ({portal_url}), by card or bank "
            "transfer, or by check. A reminder with a payment link is emailed a few days before each due date.")


def merge_variables(*, msp_legal_name: str, msp_email: str, client_legal_name: str, currency: str,
                    covered: Sequence[CoveredLine], balance_cents: int, down_payment_cents: int,
                    pay_now_number: str | None, frequency: str, rows: Sequence[ScheduleLine], apr_percent: Decimal,
                    grace_days: int, method: str | None, portal_url: str, effective_date: date,
                    as_note: bool) -> dict[str, str]:
    interest = sum(r.interest_cents for r in rows)
    installments_total = sum(r.amount_cents for r in rows)
    return {
        "msp_legal_name": msp_legal_name,
        "msp_email": msp_email or "our billing email address",
        "client_legal_name": client_legal_name,
        "covered_invoices": covered_wording(covered, currency),
        "balance": format_money(balance_cents, currency),
        "down_payment": format_money(down_payment_cents, currency),
        "down_payment_clause": down_payment_wording(down_payment_cents, currency, pay_now_number,
                                                    document="this note" if as_note else "this agreement"),
        "principal": format_money(balance_cents - down_payment_cents, currency),
        "installment_count": str(len(rows)),
        "frequency": frequency,
        "schedule": schedule_wording(rows, currency, with_interest=as_note or apr_percent > 0),
        "apr": percent_wording(apr_percent),
        "total_interest": format_money(interest, currency),
        "total_cost": format_money(down_payment_cents + installments_total, currency),
        "grace_days": str(grace_days),
        "payment_clause": payment_wording(method, portal_url, payer="Borrower" if as_note else "Client",
                                          payee="Holder" if as_note else "Provider"),
        "portal_url": portal_url,
        "effective_date": _day(effective_date),
    }


DEFAULT_PLAN_TEXT = """\
# Installment plan agreement

**{{ client_legal_name }}** (the "Client") and **{{ msp_legal_name }}** (the "Provider") agree that the Client pays
the invoices below in installments, as set out in this agreement.

## The invoices this plan covers
{{ covered_invoices }}

Together they owe **{{ balance }}**.

## Down payment
{{ down_payment_clause }}

## Installments
The remaining **{{ principal }}** is paid in {{ installment_count }} installments, {{ frequency }}. The annual
percentage rate is {{ apr }}; total interest {{ total_interest }}; total of all payments, down payment included,
{{ total_cost }}.

{{ schedule }}

## How installments are paid
{{ payment_clause }}

The Client may pay ahead or pay the whole remaining balance at any time; interest, if any, is charged only up to
the day of payment.

## While the plan is current
The covered invoices get no overdue reminders or late fees and do not count toward a service hold.

## A missed payment
If an installment is not paid within {{ grace_days }} days after its due date, the plan is in default: the whole
remaining balance of the covered invoices falls due at once, and the Provider's normal payment terms apply again to
them, including reminders, late fees and service hold. The Provider tells the Client by email when that happens.

## Questions
Write to {{ msp_email }} or use the client portal ({{ portal_url }}).

Effective {{ effective_date }}.
"""

DEFAULT_NOTE_TEXT = """\
# Promissory note

For value received, **{{ client_legal_name }}** (the "Borrower") promises to pay to **{{ msp_legal_name }}** (the
"Holder") the principal sum of **{{ principal }}**, with interest on the unpaid principal at an annual percentage
rate of **{{ apr }}**, as set out below.

## What the principal is
The principal is what the invoices below owe ({{ balance }} in total), less the down payment.

{{ covered_invoices }}

{{ down_payment_clause }}

## Repayment
The Borrower pays {{ installment_count }} installments, {{ frequency }}. Interest accrues on the unpaid principal
and each installment pays the interest due first, then principal. Total interest: **{{ total_interest }}**. Total
of all payments, down payment included: **{{ total_cost }}**.

### Amortization schedule
{{ schedule }}

## How payments are made
{{ payment_clause }}

## Prepayment
The Borrower may prepay all or part of the principal at any time without penalty. Interest is charged only up to
the day of payment.

## Default
If an installment is not paid within {{ grace_days }} days after its due date, the Borrower is in default and the
whole unpaid principal, with interest accrued to that day, falls due at once. The Holder's normal payment terms then
apply again to the covered invoices, including reminders, late fees and service hold. The Holder tells the Borrower
by email when that happens.

## Other terms
The Holder's delay in enforcing any right under this note does not waive it. Notices go to {{ msp_email }} and to
the Borrower's billing contact by email; the client portal ({{ portal_url }}) shows the balance and the schedule.

Signed on {{ effective_date }}.
"""

DEFAULT_TEXTS = {INSTALLMENT_PLAN: DEFAULT_PLAN_TEXT, PROMISSORY_NOTE: DEFAULT_NOTE_TEXT}



def sample_variables(*, msp_legal_name: str, msp_email: str, portal_url: str, effective_date: date,
                     as_note: bool) -> dict[str, str]:
    """A believable plan for the template editor's preview: two invoices ($1,800.00), $400.00 down, three monthly
    payments (at 12% APR for a note), charged to a saved card."""
    from datetime import timedelta

    from .schedules import Frequency, PlanTerms, build_schedule

    apr = Decimal("12") if as_note else Decimal("0")
    terms = PlanTerms(balance_cents=180_000, down_payment_cents=40_000, installments=3, frequency=Frequency.MONTHLY,
                      first_due_on=effective_date + timedelta(days=30), apr_percent=apr)
    rows = [ScheduleLine(r.number, r.due_on, r.amount_cents, r.principal_cents, r.interest_cents,
                         r.balance_after_cents) for r in build_schedule(terms, start_on=effective_date).rows]
    covered = [CoveredLine("INV-001041", effective_date - timedelta(days=45), 120_000),
               CoveredLine("INV-001087", effective_date - timedelta(days=15), 60_000)]
    return merge_variables(
        msp_legal_name=msp_legal_name, msp_email=msp_email, client_legal_name="Example Client LLC", currency="USD",
        covered=covered, balance_cents=180_000, down_payment_cents=40_000, pay_now_number=None,
        frequency=Frequency.MONTHLY.label, rows=rows, apr_percent=apr, grace_days=5, method="Visa ending 4242",
        portal_url=portal_url, effective_date=effective_date, as_note=as_note)
