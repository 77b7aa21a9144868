"""The cash forecast: what should come in over the next 30/60/90 days, from scheduled autopay charges, plan
installments, open promises and each client's own habit of days-to-pay; and a daily snapshot of it, so the
dashboard can show how last month's forecast compared with what actually came in.

Queries are grouped in the database; the arithmetic (which source counts which cent, late and doubtful invoices,
horizons) is portal.domain.receivables.forecast_receipts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Date, bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from portal.clock import now
from portal.domain import autopay as A
from portal.domain import receivables as R
from portal.domain.dunning import PromiseStatus
from portal.domain.invoices import InvoiceStatus
from portal.domain.payments import PaymentStatus
from portal.domain.plans import PlanStatus
from portal.models import (
    Allocation,
    AutopayEnrollment,
    ForecastSnapshot,
    Installment,
    Invoice,
    Payment,
    PaymentPlan,
    PaymentPromise,
    PlanInvoice,
)

from ..autopay import cap_approvals
from ..autopay.rules import autopay_settings, msp_rules, override_of
from ..keysets import one_of
from ..ledger import OWING, OWING_INVOICE, stored_balance
from ..locking import begin_write

#: A promise still waiting for its date (portal.domain.dunning decides when it is kept or broken).
PROMISE_OPEN = PromiseStatus.OPEN


def _on_current_plan():
    return select(PlanInvoice.current_key).where(PlanInvoice.current_key.is_not(None))


def open_invoices(session: Session) -> list[R.OpenInvoice]:
    """Open invoices with money owing that no current plan collects (one grouped query)."""
    owed = stored_balance()
    rows = session.execute(
        select(Invoice.id, Invoice.client_id, Invoice.issue_date, Invoice.due_date, owed)
        .where(OWING_INVOICE, owed > 0, Invoice.id.not_in(_on_current_plan())))
    return [R.OpenInvoice(i, c, issued, due, int(cents)) for i, c, issued, due, cents in rows]


def plan_installments(session: Session) -> list[tuple[date, int]]:
    """What current plans still have to collect, by installment due date.

    Derived conservatively from the ledger, not from the plans' own progress figures: what each plan's invoices
    still owe, laid over the tail of its schedule (domain.receivables.unpaid_installments)."""
    owed = stored_balance()
    still_owed = dict(session.execute(
        select(PlanInvoice.plan_id, func.sum(owed))
        .join(Invoice, Invoice.id == PlanInvoice.invoice_id)
        .where(PlanInvoice.current_key.is_not(None), OWING_INVOICE, owed > 0)
        .group_by(PlanInvoice.plan_id)).all())
    if not still_owed:
        return []
    schedules: dict[int, list[tuple[date, int]]] = {}
    for plan_id, due_on, amount in session.execute(
            select(Installment.plan_id, Installment.due_on, Installment.amount_cents)
            .join(PaymentPlan, PaymentPlan.id == Installment.plan_id)
            .where(PaymentPlan.status == PlanStatus.CURRENT, Installment.plan_id.in_(list(still_owed)))):
        schedules.setdefault(plan_id, []).append((due_on, int(amount)))
    unpaid = []
    for plan_id, schedule in schedules.items():
        unpaid += R.unpaid_installments(schedule, int(still_owed[plan_id] or 0))
    return unpaid


def open_promises(session: Session) -> list[R.Promise]:
    rows = session.execute(select(PaymentPromise.client_id, PaymentPromise.invoice_id, PaymentPromise.amount_cents,
                                  PaymentPromise.promised_on).where(PaymentPromise.status == PROMISE_OPEN))
    return [R.Promise(c, i, int(cents), on) for c, i, cents, on in rows]


def autopay_dates(session: Session, invoices: list[R.OpenInvoice], today: date) -> dict[int, date]:
    """The day autopay would charge each invoice of an enrolled client, by the same rules the charging engine
    asks (domain.autopay.charge_decision): absent when autopay will not charge it (over the cap, below the
    gateway minimum) or when its charge day already passed (an earlier charge did not collect it)."""
    enrolled = {row.client_id: row for row in session.scalars(
        select(AutopayEnrollment).where(AutopayEnrollment.enrolled.is_(True)))}
    if not enrolled:
        return {}
    defaults = msp_rules(autopay_settings(session))
    rules = {client_id: A.rules_for_client(defaults, override_of(row)) for client_id, row in enrolled.items()}
    approved = cap_approvals.approved_ids(session, None)  # few: an admin approves them one by one
    dates = {}
    for invoice in invoices:
        client_rules = rules.get(invoice.client_id)
        if client_rules is None:
            continue
        if client_rules.schedule.charge_date(invoice.due_date) < today:
            continue
        decision = A.charge_decision(A.DueItem(invoice.due_date, invoice.balance_cents,
                                               approved_over_cap=invoice.invoice_id in approved), client_rules, today)
        if decision.autopay_will_charge and decision.charge_on is not None:
            dates[invoice.invoice_id] = decision.charge_on
    return dates


def _owing_clients():
    """Clients with an open invoice, as a subquery (a list of ids as parameters would pass SQLite's limit)."""
    owing = aliased(Invoice)
    return select(owing.client_id).where(one_of(owing.status, OWING)).distinct()


def days_to_pay(session: Session, today: date, last: int = R.HISTORY_INVOICES) -> tuple[dict[int, int], int | None]:
    """For each client with an open invoice, its median days from issue to full payment over its last ``last``
    paid invoices issued in the last HISTORY_DAYS days, and the MSP-wide median over the same invoices (for
    clients with no history). "Paid" is the day the last money applied to the invoice was received, not the day
    it was recorded."""
    paid_on = func.max(Payment.received_on)
    ranked = (
        select(Invoice.client_id.label("client_id"), Invoice.issue_date.label("issue_date"),
               paid_on.label("paid_on"),
               func.row_number().over(partition_by=Invoice.client_id,
                                      order_by=(paid_on.desc(), Invoice.id.desc())).label("n"))
        .join(Allocation, Allocation.invoice_id == Invoice.id)
        .join(Payment, Payment.id == Allocation.payment_id)
        .where(Invoice.status == InvoiceStatus.PAID, Invoice.total_cents > 0, Allocation.amount_cents > 0,
               Payment.status == PaymentStatus.SUCCEEDED, Invoice.client_id.in_(_owing_clients()),
               Invoice.issue_date >= today - timedelta(days=R.HISTORY_DAYS))
        .group_by(Invoice.id, Invoice.client_id, Invoice.issue_date)
        .subquery())
    per_client: dict[int, list[int]] = {}
    everyone: list[int] = []
    for client_id, issued, paid in session.execute(
            select(ranked.c.client_id, ranked.c.issue_date, ranked.c.paid_on).where(ranked.c.n <= last)):
        days = (paid - issued).days
        per_client.setdefault(client_id, []).append(days)
        everyone.append(days)
    medians = {client_id: R.median_days(days) for client_id, days in per_client.items()}
    return {k: v for k, v in medians.items() if v is not None}, R.median_days(everyone)


@dataclass(frozen=True)
class Forecast:
    made_on: date
    horizons: list[R.HorizonFigures]
    msp_days_to_pay: int | None

    def total(self, days: int) -> int:
        return next(h.total_cents for h in self.horizons if h.days == days)


def forecast(session: Session, today: date) -> Forecast:
    invoices = open_invoices(session)
    client_days, default_days = days_to_pay(session, today) if invoices else ({}, None)
    receipts = R.forecast_receipts(invoices, today, promises=open_promises(session),
                                   autopay_on=autopay_dates(session, invoices, today), client_days=client_days,
                                   default_days=default_days, plan_installments=plan_installments(session))
    return Forecast(today, R.by_horizon(receipts, today), default_days)


# --- the daily snapshot and how it turned out ------------------------------------------------------------------------


def snapshot(session: Session, today: date) -> int:
    """Store today's forecast for each horizon once (unique made_on + horizon). Returns the rows added: 0 when
    today's were already stored, by this or another process (several `run-due` may race: the unique constraint
    decides, and the loser rolls back)."""
    taken = set(session.scalars(select(ForecastSnapshot.horizon_days).where(ForecastSnapshot.made_on == today)))
    if taken >= set(R.HORIZONS):
        session.rollback()
        return 0
    figures = forecast(session, today)
    begin_write(session)
    taken = set(session.scalars(select(ForecastSnapshot.horizon_days).where(ForecastSnapshot.made_on == today)))
    rows = [ForecastSnapshot(made_on=today, horizon_days=h.days, expected_cents=h.total_cents, created_at=now())
            for h in figures.horizons if h.days not in taken]
    session.add_all(rows)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return 0
    return len(rows)


def run_snapshot_step(ctx) -> None:
    """The `run-due` step "forecast snapshot" (``ctx``: services.due.DueContext)."""
    snapshot(ctx.session, ctx.today)


def received_between(session: Session, start: date, end: date) -> int:
    """Succeeded payments received on [start, end)."""
    return int(session.scalar(select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
        Payment.status == PaymentStatus.SUCCEEDED, Payment.received_on >= start, Payment.received_on < end)) or 0)


@dataclass(frozen=True)
class Accuracy:
    made_on: date
    horizon_days: int
    expected_cents: int
    actual_cents: int

    @property
    def window_end(self) -> date:
        """The last day of the window compared."""
        return R.window_end(self.made_on, self.horizon_days) - timedelta(days=1)

    @property
    def actual_share(self):
        """What came in as a percentage of what was expected."""
        return R.share(self.actual_cents, self.expected_cents)


def last_accuracy(session: Session, today: date, horizon: int = 30) -> Accuracy | None:
    """The newest ``horizon``-day forecast whose window has closed (made ``horizon`` or more days ago), against
    the succeeded payments received in its window. None until such a snapshot exists."""
    row = session.scalar(_LAST_CLOSED, {"horizon": horizon, "made_by": today - timedelta(days=horizon)})
    if row is None:
        return None
    actual = received_between(session, row.made_on, R.window_end(row.made_on, horizon))
    return Accuracy(row.made_on, horizon, int(row.expected_cents), actual)


_LAST_CLOSED = (select(ForecastSnapshot)
                .where(ForecastSnapshot.horizon_days == bindparam("horizon"),
                       ForecastSnapshot.made_on <= bindparam("made_by", type_=Date()))
                .order_by(ForecastSnapshot.made_on.desc()).limit(1))
