"""Demo data for autopay, replayed through the real services with the clock held at each day (``portal.clock.held_at``)
so every row carries the date it would have had:

- the MSP's autopay settings: a 5% discount for clients on autopay, three days' notice before a charge, soft declines
  retried after 3, 5 and 7 days, invoices over $5,000 left for an admin to approve, autopay required for new clients;
- five weeks ago three clients saved a method and signed the autopay authorization: Harbor Dental by card,
  Tidewater Logistics by bank account (ACH), Evergreen Chiropractic by a card that declines for insufficient funds;
- each has a project invoice that `run-due`, replayed day by day over the last two weeks as cron would have run it,
  gave notice of and then charged on its due date: Harbor's paid by card with the 5% discount (its own ledger line,
  in the discounts export), Tidewater's debit settled the next day, Evergreen's declined two days ago (the client was
  emailed a link to update the card; the retry is scheduled). Each replayed day is a run in the run-due log.

Harbor's monthly invoice falls due today, its notice already sent: the first `portal run-due` charges it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy.orm import Session

from portal.clock import held_at, now
from portal.gateways.payments import MandateAcceptance
from portal.models import Client, Contact

from . import agreements, due
from .autopay import enrollment, methods, rules
from .demo_plans import DEMO_AGENT
from .payments.autopay_charging import OpenSession
from .runtime import Runtime


class OnAutopay(NamedTuple):
    client: str
    token: str  # the sandbox's copy of Stripe's test ids
    project: str  # the one-off invoice run-due charges
    hours: Decimal
    rate_cents: int
    due_days_ago: int


AUTOPAY = (
    OnAutopay("Harbor Dental Group, PC", "pm_card_visa",
              "Project: firewall replacement and VPN cut-over (hours)", Decimal("6"), 17500, 12),
    OnAutopay("Tidewater Logistics", "pm_usBankAccount_success",
              "Project: new-office network build-out (hours)", Decimal("12"), 17500, 12),
    OnAutopay("Evergreen Chiropractic", "pm_card_chargeDeclinedInsufficientFunds",
              "After-hours emergency support (hours)", Decimal("2.5"), 22500, 2),
)
ENROLLED_DAYS_AGO = 35
NET_DAYS = 15  # the project invoices' terms
#: What cron would have run each morning of the replay (the other steps' demo data is seeded by their own modules).
REPLAYED_STEPS = tuple(step for step in due.STEPS
                       if step.name in ("settle payments", "autopay outcomes", "autopay charges", "pre-charge notices"))
REPLAYED_DAYS = 16  # from before the first notice (the due date 12 days ago less 3 days' notice) to yesterday


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, 0), tzinfo=UTC)


def seed(session: Session, rt: Runtime, clients: list[Client], today: date, open_session: OpenSession) -> None:
    by_name = {c.legal_name: c for c in clients}
    enrolled_on = today - timedelta(days=ENROLLED_DAYS_AGO)
    with held_at(_at(enrolled_on, 9)):
        defaults = rules.autopay_settings(session)
        rules.update_settings(session, rules.SettingsInput(
            timing=defaults.timing, offset_days=0, day_of_month=None, cap_cents=500_000, scope="all",
            method_types=frozenset({"card", "us_bank_account"}), use_fallback=True, notice_days=3,
            retry_days="3,5,7", required_for_new_clients=True, incentive_kind="discount",
            discount_percent=Decimal("5"), stop_after_failures=3))
    for row in AUTOPAY:
        with held_at(_at(enrolled_on, 15)):
            _enroll(session, rt, by_name[row.client], row.token)
    for days_ago in range(REPLAYED_DAYS, 0, -1):
        with held_at(_at(today - timedelta(days=days_ago), 6)):
            due.run_due(session, rt, open_session=open_session, steps=REPLAYED_STEPS)


def _enroll(session: Session, rt: Runtime, client: Client, token: str) -> None:
    """The billing contact saves the method and signs the authorization, as in the browser."""
    contact: Contact = next(c for c in client.contacts if c.is_billing)
    acceptance = MandateAcceptance(ip_address=f"203.0.113.{10 + client.id}", user_agent=DEMO_AGENT,
                                   accepted_at=now())
    method = methods.save(session, rt, contact, methods.NewMethod(token=token, nonce=f"demo-setup-{client.id:08d}"),
                          acceptance)
    document = enrollment.document(session, rt, client, method)
    meta = agreements.Meta(ip=acceptance.ip_address, user_agent=DEMO_AGENT, session_id=f"demo{client.id:04d}",
                           contact_id=contact.id)
    enrollment.authorize(session, rt, contact, method.id, enrollment.SignedBy(
        full_name=contact.name, title=contact.title or "Owner", authority_confirmed=True, consent_confirmed=True,
        signature=agreements.Signature("typed", typed=contact.name), shown_sha256=document.sha256), meta=meta)
