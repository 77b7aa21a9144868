"""`portal demo`: a believable MSP with two dozen clients and half a year of invoices, payments and credit.

Seeding is deterministic (one ``random.Random(seed)``) and relative to ``clock.today()``, so every aging bucket
has money in it whatever the date. Everything goes through the real services, like a billing clerk would: the
MSP publishes its payment terms (two versions) and some clients sign them, one stays on the older version, one
declines and one is still invited. A database that holds anything but the demo's own data is never touched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from portal.clock import today
from portal.domain import terms as T
from portal.domain.errors import DomainError
from portal.domain.invoices import LineInput
from portal.models import Base, Client, Contact, Invoice, Payment, StaffUser
from portal.models.billing import NUMBER_PREFIX

from . import (
    agreements,
    billing,
    clients,
    demo_autopay,
    demo_fees,
    demo_orders,
    demo_standing,
    payments,
    settings,
    staff,
    terms,
)
from .collections import figures
from .demo_collections import seed as seed_collections
from .demo_enforcement import seed as seed_enforcement
from .demo_plans import DEMO_AGENT
from .demo_plans import seed as seed_plans
from .payments.autopay_charging import OpenSession
from .runtime import Runtime

ADMIN_EMAIL = "admin@demo.test"
# Fixed and printed: it is a demo, and a re-run must not lock anyone out.
ADMIN_PASSWORD = "demo-admin-password"  # noqa: S105
DEFAULT_SEED = 2026
MONTHS = 7  # monthly invoices from 6 months ago to this month
SALES_TAX = Decimal("6.0")  # Idaho sales tax, charged on hardware only

MSP = {
    "name": "Bluepeak IT Services",
    "legal_name": "Bluepeak IT Services, LLC",
    "address": "1420 W Bannock St, Suite 200\nBoise, ID 83702",
    "email": "billing@bluepeak-it.test",
    "reply_to": "accounts@bluepeak-it.test",
    "phone": "(208) 555-0142",
    "website": "https://bluepeak-it.test",
    "currency": "USD",
    "default_net_days": 30,
    "payment_instructions": (
        "Pay online in this portal by card or bank transfer (ACH).\n"
        "Checks: payable to Bluepeak IT Services, LLC, mailed to 1420 W Bannock St, Suite 200, Boise, ID 83702 "
        "(write the invoice number on the memo line).\n"
        "Questions about an invoice: accounts@bluepeak-it.test or (208) 555-0142."
    ),
}

# (legal name, email domain, street, city, region, postal code, users, payment habit)
CLIENTS = [
    ("Harbor Dental Group, PC", "harbordental.test", "812 N 9th St", "Boise", "ID", "83702", 14, "on_time"),
    ("Cedar & Pine Law, PLLC", "cedarpinelaw.test", "250 S 5th St, Suite 700", "Boise", "ID", "83702", 9, "slow"),
    ("Summit Physical Therapy", "summitpt.test", "3100 E Fairview Ave", "Meridian", "ID", "83642", 11, "late"),
    ("Blue Heron Veterinary Clinic", "blueheronvet.test", "1775 W State St", "Eagle", "ID", "83616", 8,
     "struggling"),
    ("Maple Street Accounting", "maplestcpa.test", "410 Maple St", "Nampa", "ID", "83651", 6, "credit"),
    ("Riverbend Architects", "riverbendarch.test", "99 E Riverside Dr", "Eagle", "ID", "83616", 12, "partial"),
    ("Copperline Construction, Inc.", "copperline.test", "5600 W Gowen Rd", "Boise", "ID", "83709", 22,
     "delinquent"),
    ("Alder Creek Family Medicine", "aldercreekfm.test", "2200 N Eagle Rd", "Meridian", "ID", "83646", 18,
     "on_time"),
    ("Ironwood Insurance Agency", "ironwoodins.test", "1010 Main St", "Caldwell", "ID", "83605", 7, "slow"),
    ("Lakeside Realty Partners", "lakesiderealty.test", "301 N 1st Ave", "Sandpoint", "ID", "83864", 10, "late"),
    ("Bright Path Learning Center", "brightpath.test", "640 S Lusk St", "Boise", "ID", "83706", 15, "struggling"),
    ("Northgate Auto Repair", "northgateauto.test", "7425 W Fairview Ave", "Boise", "ID", "83704", 5, "credit"),
    ("Sagebrush Title & Escrow", "sagebrushtitle.test", "1500 Shoreline Dr", "Boise", "ID", "83702", 13,
     "partial"),
    ("Tidewater Logistics", "tidewaterlog.test", "4800 E Franklin Rd", "Nampa", "ID", "83687", 26, "on_time"),
    ("Juniper Home Health", "juniperhh.test", "950 W Bannock St", "Boise", "ID", "83702", 16, "slow"),
    ("Evergreen Chiropractic", "evergreenchiro.test", "123 E Idaho Ave", "Meridian", "ID", "83642", 4, "on_time"),
    ("Keystone Engineering Group", "keystoneeng.test", "800 W Main St, Suite 1200", "Boise", "ID", "83702", 21,
     "late"),
    ("Willow Creek Winery", "willowcreekwine.test", "18200 Sunny Slope Rd", "Caldwell", "ID", "83607", 6,
     "credit"),
    ("Foothill Orthodontics", "foothillortho.test", "2950 N Bogus Basin Rd", "Boise", "ID", "83702", 9,
     "on_time"),
    ("Granite Peak Financial Advisors", "granitepeakfa.test", "101 S Capitol Blvd, Suite 900", "Boise", "ID",
     "83702", 8, "slow"),
    ("Prairie Wind Community Alliance", "prairiewind.test", "415 E Commercial St", "Twin Falls", "ID", "83301",
     12, "struggling"),
    ("Silver Lake Property Management", "silverlakepm.test", "2600 N Government Way", "Coeur d'Alene", "ID",
     "83815", 10, "partial"),
    ("Oak & Anchor Brewing Co.", "oakanchorbrew.test", "621 S Capitol Blvd", "Boise", "ID", "83702", 7,
     "delinquent"),
    ("Redtail Environmental Consulting", "redtailenv.test", "3380 Americana Ter", "Boise", "ID", "83706", 11,
     "on_time"),
    ("Mesa Verde Pediatrics", "mesaverdepeds.test", "1855 N Cole Rd", "Boise", "ID", "83704", 17, "late"),
    ("Stonebridge Community Church", "stonebridgecc.test", "4400 W Ustick Rd", "Meridian", "ID", "83646", 6,
     "slow"),
]
FIRST_NAMES = ["Dana", "Marcus", "Priya", "Elena", "Tom", "Keisha", "Ryan", "Sofia", "Grace", "Hector", "Lauren",
               "Jamal", "Megan", "Owen", "Tessa", "Victor", "Rosa", "Caleb", "Nina", "Derek", "Hannah", "Luis"]
LAST_NAMES = ["Whitfield", "Okafor", "Raman", "Novak", "Brennan", "Castillo", "Hughes", "Lindqvist", "Parker",
              "Nakamura", "Delgado", "Fischer", "Moreau", "Sullivan", "Choi", "Adeyemi", "Reyes", "Baxter"]
TITLES = ["Office Manager", "Accounts Payable", "Owner", "Practice Administrator", "Controller",
          "Operations Director"]
PROJECTS = [
    ("Project: firewall replacement and VPN cut-over (hours)", 17500),
    ("Project: Microsoft 365 tenant migration (hours)", 16500),
    ("Project: new-office network build-out (hours)", 17500),
    ("After-hours emergency support (hours)", 22500),
    ("Project: server virtualization and storage upgrade (hours)", 18500),
]
HARDWARE = [
    ("Dell OptiPlex 7020 desktop, 16 GB / 512 GB SSD", 108900),
    ("Dell Latitude 5550 laptop with dock", 164900),
    ("Ubiquiti U6 Pro access point", 17900),
    ('Dell P2425H 24" monitor', 21900),
    ("APC Smart-UPS 1500VA", 74900),
    ("Fortinet FortiGate 60F firewall", 89500),
]
# Which invoices each habit leaves unpaid (k = months ago; 0 = this month's, still current) and which it pays half of
HABITS = {
    "on_time": {"unpaid": {0}, "half": set(), "late_by": (-8, 2)},
    "slow": {"unpaid": {0, 1}, "half": set(), "late_by": (12, 25)},
    "late": {"unpaid": {0, 2}, "half": {1}, "late_by": (25, 40)},
    "struggling": {"unpaid": {0, 1, 3, 4}, "half": {2}, "late_by": (40, 70)},
    "delinquent": {"unpaid": {0, 1, 2, 3, 4, 5}, "half": set(), "late_by": (20, 30)},
    "credit": {"unpaid": set(), "half": set(), "late_by": (-10, -2)},
    "partial": {"unpaid": {0}, "half": {1, 2, 3}, "late_by": (5, 20)},
}


# Payment terms: version 1, then version 2 with a lower late fee. Who signed what shows every status on
# the agreements page: signed the current version, signed only the older one (outdated), declined, invited.
TERMS_V1 = {**T.DEFAULT_PARAMETERS, "governing_law": "the laws of the State of Idaho; courts of Ada County, Idaho"}
TERMS_V2 = {**TERMS_V1, "late_fee_percent": "1", "grace_days": "10"}
SIGNED_V1 = ("Harbor Dental Group, PC", "Alder Creek Family Medicine")  # Alder Creek signs v2 as well
# Lakeside and Keystone pay late: under the signed terms they are charged late fees (one is waived after a call).
SIGNED_V2 = ("Alder Creek Family Medicine", "Tidewater Logistics", "Evergreen Chiropractic", "Lakeside Realty Partners",
             "Keystone Engineering Group")
DECLINED = ("Copperline Construction, Inc.",)
INVITED = ("Foothill Orthodontics",)
# A check written for the rounded amount: 30 cents left on last month's invoice, less than a card can be charged, so
# the invoice page offers to write it off.
SHORT_PAID = ("Foothill Orthodontics", 1, 30)


@dataclass(frozen=True)
class DemoSummary:
    admin_email: str
    admin_password: str
    contact_email: str  # a contact who can sign in with an emailed link
    clients: int
    invoices: int
    payments: int
    seeded: bool  # False: the demo data was already there and kept


# --- the database --------------------------------------------------------------------------------------------

def reset_database(engine: Engine) -> None:
    """Drop every table so the demo starts again (`portal demo` then runs the migrations, like
    `portal db upgrade`). Refuses a database that holds anything but demo data."""
    if inspect(engine).has_table(Client.__tablename__):
        with sessionmaker(bind=engine)() as session:
            _refuse_foreign_data(session)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:  # so the migrations run again from the start
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def _is_demo(session: Session) -> bool:
    return session.scalar(select(StaffUser.id).where(StaffUser.email == ADMIN_EMAIL)) is not None


def _refuse_foreign_data(session: Session) -> None:
    has_data = session.scalar(select(func.count()).select_from(Client)) or session.scalar(
        select(func.count()).select_from(StaffUser))
    if has_data and not _is_demo(session):
        raise DomainError("This database holds data that is not the demo's; portal demo will not touch it. "
                          "Point PORTAL_DATABASE_URL / PORTAL_INSTANCE_PATH at an empty database for the demo.")


# --- seeding ------------------------------------------------------------------------------------------------

def seed_demo(session: Session, rt: Runtime, *, open_session: OpenSession, seed: int = DEFAULT_SEED) -> DemoSummary:
    """Seed an empty database; a demo database is left as it is (re-running keeps the data). ``open_session`` gives
    each of `run-due`'s worker threads its own session, as in the command (the demo replays its autopay runs)."""
    _refuse_foreign_data(session)
    existed = _is_demo(session)
    if not existed:
        _Seeder(session, rt, random.Random(seed), today(), open_session).run()
    # The contact to try the portal as: a client that is behind, so there are overdue and part-paid invoices to pay
    showcase = next(i for i, row in enumerate(CLIENTS) if row[7] == "late")
    client = session.scalar(select(Client).where(Client.external_id == _external_id(showcase)))
    contact = next((c for c in client.contacts if c.portal_access), None) if client else None
    return DemoSummary(
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        contact_email=contact.email if contact else "",
        clients=session.scalar(select(func.count()).select_from(Client)) or 0,
        invoices=session.scalar(select(func.count()).select_from(Invoice)) or 0,
        payments=session.scalar(select(func.count()).select_from(Payment)) or 0,
        seeded=not existed,
    )


@dataclass(frozen=True)
class _PlannedInvoice:
    client_index: int
    months_ago: int  # 0 = this month's invoice, 1 = last month's ...
    issue_date: date
    due_date: date
    lines: tuple[LineInput, ...]
    tax_rate: Decimal
    by_autopay: bool = False  # left for run-due to charge (demo_autopay), not paid by the client's habit


class _Seeder:
    def __init__(self, session: Session, rt: Runtime, rng: random.Random, today: date, open_session: OpenSession):
        self.session, self.rt, self.rng, self.today = session, rt, rng, today
        self.open_session = open_session

    def run(self) -> None:
        settings.update_settings(self.session, **MSP)
        admin = staff.create_staff(self.session, email=ADMIN_EMAIL, name="Morgan Avery", password=ADMIN_PASSWORD)
        demo_clients = [self._client(i, *row[:7]) for i, row in enumerate(CLIENTS)]
        self.session.commit()
        plan = [inv for i, row in enumerate(CLIENTS) for inv in self._plan_invoices(i, row[6])]
        if self.rt.gateway.is_sandbox:  # Stripe's test ids are tokens only in the sandbox
            plan += self._autopay_projects()
        plan.sort(key=lambda p: (p.issue_date, p.client_index))  # invoice numbers follow the calendar
        invoices = []
        for n, p in enumerate(plan, start=1):
            invoice = billing.create_invoice(
                self.session, demo_clients[p.client_index], lines=p.lines, issue_date=p.issue_date,
                due_date=p.due_date, tax_rate=p.tax_rate, issue=True, commit=False,
                number=f"{NUMBER_PREFIX}{n:06d}",  # the database is empty: no need to look up the last one
            )
            # issued on the invoice date, as the MSP's billing run would have done
            invoice.created_at = invoice.issued_at = datetime.combine(p.issue_date, time(14, 0), tzinfo=UTC)
            invoices.append((p, invoice))
        self.session.commit()
        for index, row in enumerate(CLIENTS):
            own = [(p, inv) for p, inv in invoices if p.client_index == index]
            self._payments(demo_clients[index], own, row[7])
        self._payment_terms(admin, demo_clients)
        if self.rt.gateway.is_sandbox:  # before late fees, reminders and holds: autopay paid these invoices on time
            demo_autopay.seed(self.session, self.rt, demo_clients, self.today, self.open_session)
        seed_collections(self.session, demo_clients, admin, self.today)  # promises (one broken), notes, a pause
        demo_standing.seed(self.session, demo_clients, admin, self.today)  # on hold, one override
        demo_orders.seed(self.session, self.rt, demo_clients, admin, self.today)  # equipment, a deposit to pay
        seed_plans(self.session, self.rt, demo_clients, admin, self.today)  # current, defaulted, a counter-offer
        seed_enforcement(self.session, self.rt, demo_clients, admin, self.today)  # a notice, a locked file
        demo_fees.seed_fees(self.session, self.today)  # late fees per the signed terms, as run-due charges them
        demo_fees.waive_one(self.session, admin)  # one waived with a reason
        figures.refresh(self.session, self.today)  # the dashboard's trend and forecast, as hourly run-due stores them

    def _payment_terms(self, admin: StaffUser, demo_clients: list[Client]) -> None:
        """Two published versions of the payment terms and clients at every stage of signing them."""
        by_name = {c.legal_name: c for c in demo_clients}
        self._publish(admin, TERMS_V1, "First published payment terms.")
        for name in SIGNED_V1:
            self._sign(by_name[name])
        self._publish(admin, TERMS_V2, "Late fee lowered to 1% per month; 10 days' grace instead of 5.")
        for name in SIGNED_V2:
            self._sign(by_name[name])
        for name in DECLINED:
            agreement, contact, meta = self._walk(by_name[name], steps=False)
            agreements.decline(self.session, self.rt, agreement, contact, meta=meta,
                               reason="Our lawyer wants to discuss the remote-disable clause before we sign.")
        for name in INVITED:
            self._walk(by_name[name], steps=False)

    def _publish(self, admin: StaffUser, parameters: dict[str, str], summary: str) -> None:
        terms.save_draft(self.session, T.TERMS, text=T.DEFAULT_TERMS_TEXT, parameters=parameters, staff=admin)
        agreements.publish(self.session, self.rt, T.TERMS, staff=admin, summary=summary)

    def _walk(self, client: Client, *, steps: bool = True) -> tuple:
        """Invite the billing contact (the invitation email goes to the outbox like any other) and, with
        ``steps``, consent, read and acknowledge as that contact would in the browser."""
        contact: Contact = next(c for c in client.contacts if c.is_billing)
        agreement = agreements.invite(self.session, self.rt, client, contact,
                                      meta=agreements.Meta(staff_id=None, ip="198.51.100.20", user_agent=DEMO_AGENT))
        meta = agreements.Meta(ip=f"203.0.113.{10 + client.id}", user_agent=DEMO_AGENT,
                               session_id=f"demo{client.id:04d}", contact_id=contact.id)
        if steps:
            disclosure, _ = agreements.disclosure_document(self.session)
            agreements.consent(self.session, self.rt, agreement, contact, disclosure_version_id=disclosure.id,
                               meta=meta)
            agreements.record_view(self.session, self.rt, agreement, contact, meta=meta)
            agreements.acknowledge(self.session, self.rt, agreement, contact, list(T.CLAUSE_KEYS), meta=meta)
        return agreement, contact, meta

    def _sign(self, client: Client) -> None:
        agreement, contact, meta = self._walk(client)
        agreements.sign(self.session, self.rt, agreement, contact, full_name=contact.name,
                        title=contact.title or "Owner", authority_confirmed=True,
                        signature=agreements.Signature("typed", typed=contact.name),
                        document_sha256=agreement.document_sha256, meta=meta)

    def _client(self, index, name, domain, street, city, region, postal, users) -> Client:
        client = clients.create_client(
            self.session, legal_name=name, external_id=_external_id(index),
            address_line1=street, city=city, region=region, postal_code=postal, country="US",
            net_days=15 if users < 6 else None, commit=False,
        )
        people = self.rng.sample(range(len(FIRST_NAMES)), k=self.rng.randint(1, 3))
        for n, who in enumerate(people):
            first, last = FIRST_NAMES[who], self.rng.choice(LAST_NAMES)
            clients.add_contact(
                self.session, client, name=f"{first} {last}", email=f"{first}.{last}@{domain}".lower(),
                title=TITLES[(who + n) % len(TITLES)], phone=f"(208) 555-{self.rng.randint(1000, 9999)}",
                is_billing=n == 0, commit=False,
            )
        return client

    def _plan_invoices(self, index: int, users: int) -> list[_PlannedInvoice]:
        billing_day = self.rng.randint(4, 24)  # days into the 30-day cycle: keeps months 1..3 in their buckets
        net = 15 if users < 6 else 30
        planned = []
        for k in range(MONTHS):
            issue = self.today - timedelta(days=30 * k + billing_day)
            if k == 0:
                issue = self.today - timedelta(days=min(billing_day, 10))  # this month's: not yet due
            planned.append(_PlannedInvoice(index, k, issue, issue + timedelta(days=net),
                                           self._monthly_lines(users), Decimal(0)))
        for _ in range(self.rng.choice((0, 1, 1, 2))):
            k = self.rng.randint(1, MONTHS - 1)
            issue = self.today - timedelta(days=30 * k + self.rng.randint(4, 24))
            planned.append(_PlannedInvoice(index, k, issue, issue + timedelta(days=net), self._project_lines(),
                                           SALES_TAX))
        return planned

    def _autopay_projects(self) -> list[_PlannedInvoice]:
        """The one-off invoice of each client on autopay that `run-due` charged (demo_autopay)."""
        index = {row[0]: i for i, row in enumerate(CLIENTS)}
        planned = []
        for row in demo_autopay.AUTOPAY:
            due = self.today - timedelta(days=row.due_days_ago)
            planned.append(_PlannedInvoice(
                index[row.client], 0, due - timedelta(days=demo_autopay.NET_DAYS), due,
                (LineInput(row.project, row.hours, row.rate_cents, taxable=False),), Decimal(0), by_autopay=True))
        return planned

    def _monthly_lines(self, users: int) -> tuple[LineInput, ...]:
        seats = users + self.rng.choice((0, 0, 0, 1, -1))
        servers = max(1, users // 8)
        return (
            LineInput(f"Managed IT services — {seats} users", Decimal(seats), 14500, taxable=False),
            LineInput("Microsoft 365 Business Premium licences", Decimal(seats), 2200, taxable=False),
            LineInput("Endpoint detection & response (EDR), per device", Decimal(seats + servers), 850,
                      taxable=False),
            LineInput(f"Cloud backup & disaster recovery — {servers} server(s)", Decimal(servers), 18900,
                      taxable=False),
        )

    def _project_lines(self) -> tuple[LineInput, ...]:
        description, rate = self.rng.choice(PROJECTS)
        hours = Decimal(self.rng.choice(("2.5", "4", "6.5", "8", "12", "16.5")))
        lines = [LineInput(description, hours, rate, taxable=False)]
        for description, price in self.rng.sample(HARDWARE, k=self.rng.randint(0, 2)):
            lines.append(LineInput(f"Hardware: {description}", Decimal(self.rng.randint(1, 4)), price))
        return tuple(lines)

    def _payments(self, client: Client, invoices: list, habit_name: str) -> None:
        habit = HABITS[habit_name]
        for p, invoice in sorted(invoices, key=lambda pair: pair[1].due_date):
            if p.by_autopay or p.months_ago in habit["unpaid"]:
                continue
            half = p.months_ago in habit["half"]
            paid_on = p.due_date + timedelta(days=self.rng.randint(*habit["late_by"]))
            if half:  # something on account lately, to show willing
                paid_on = min(paid_on, self.today - timedelta(days=self.rng.randint(1, 3)))
            paid_on = max(paid_on, p.issue_date + timedelta(days=1))
            if paid_on > self.today:
                continue  # not paid yet: it simply stays open
            amount = invoice.total_cents // 2 if half else invoice.total_cents
            if (client.legal_name, p.months_ago) == SHORT_PAID[:2]:
                amount -= SHORT_PAID[2]
            method = self.rng.choice(("check", "check", "ach", "card", "wire"))
            payments.record_payment(
                self.session, client, amount_cents=amount, method=method, received_on=paid_on,
                reference=_reference(method, self.rng), allocations={invoice.id: amount},
            )
        if habit_name == "credit":  # a deposit paid ahead of a project: money on account, not yet applied
            deposit = self.rng.choice((25000, 50000, 75000))
            payments.record_payment(
                self.session, client, amount_cents=deposit, method="check",
                received_on=self.today - timedelta(days=self.rng.randint(2, 12)),
                reference=_reference("check", self.rng), memo="Deposit for upcoming project", allocations={},
            )


def _external_id(index: int) -> str:
    return f"PSA-{1001 + index}"  # the client's id in the MSP's PSA, as an import would have set it


def _reference(method: str, rng: random.Random) -> str:
    if method == "check":
        return f"Check #{rng.randint(1001, 9999)}"
    if method in ("ach", "wire"):
        return f"{method.upper()} {rng.randint(10**9, 10**10 - 1)}"
    return f"Card ending {rng.randint(1000, 9999)}"
