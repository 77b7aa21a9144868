"""Shared fixtures. The database is real: SQLite by default, PostgreSQL when PORTAL_TEST_DATABASE_URL is set
(`.ci/run` runs the suite once for each). Tables are created once per run and emptied after every test.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from sqlalchemy import event, text

from portal import create_app, db
from portal.clock import Clock, now
from portal.domain.invoices import LineInput
from portal.models import Base, StaffUser
from portal.services import billing, clients, payments, staff

pytest_plugins = ["tests.demo_snapshot"]  # the `seeded_demo` fixture

# Property tests: no timing checks (speed is measured in bench/; on a loaded CI machine Hypothesis's 200 ms deadline
# and its "too slow" health check fail at random) and the same examples on every run, so a CI result does not
# depend on luck. To search fresh examples: HYPOTHESIS_PROFILE=explore .venv/bin/python -m pytest tests/unit
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", derandomize=True, database=None, **_UNTIMED)
settings.register_profile("explore", max_examples=2_000, **_UNTIMED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser):
    parser.addoption("--database-tests-only", action="store_true",
                     help="run only the tests that use the suite's database (PORTAL_TEST_DATABASE_URL); CI's "
                          "PostgreSQL run, since the others (pure rules, the gateways, the CLI's own SQLite files) "
                          "do the same thing whichever database the suite is given, and the SQLite run has them")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--database-tests-only"):
        return
    # `database_url` is the suite's database; `own_database` (the demo command's tests) swaps in a SQLite file
    uses = [item for item in items if "database_url" in getattr(item, "fixturenames", ())
            and "own_database" not in getattr(item, "fixturenames", ())]
    if not uses:
        raise pytest.UsageError("--database-tests-only: no collected test uses the database")
    kept = set(uses)
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = uses


START = datetime(2026, 3, 16, 15, 0, tzinfo=UTC)  # a Monday; every test starts here unless it moves the clock


class FrozenClock(Clock):
    """The app's clock, held still so tests are deterministic; tests move it explicitly."""

    def __init__(self, at: datetime = START):
        self.at = at
        super().__init__(lambda: self.at)

    def set(self, at: datetime | date) -> None:
        self.at = at if isinstance(at, datetime) else datetime(at.year, at.month, at.day, 15, tzinfo=UTC)

    def advance(self, **delta) -> None:
        self.at += timedelta(**delta)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return os.environ.get("PORTAL_TEST_DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def _schema(database_url):
    engine = db.make_engine(database_url)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


BULK_INVOICES = 10_000  # a test with this many invoices or more has its tables truncated afterwards (PostgreSQL)


def _empty_tables(engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # only the tables with rows, children first, then every used id sequence back to 1 (a rolled-back
            # insert advances one too): the same fresh state as TRUNCATE ... RESTART IDENTITY CASCADE of the whole
            # schema, which costs per table (~100 ms a test here) where this costs ~10 ms
            filled = _tables_with_rows(conn, tables)
            bulk = text(f"SELECT count(*) FROM (SELECT 1 FROM invoices LIMIT {BULK_INVOICES}) AS counted")
            if "invoices" in filled and conn.scalar(bulk) == BULK_INVOICES:
                # a test's backlog of tens of thousands (make.backlog): DELETE checks each table that refers to an
                # invoice once per invoice (66,000 took over 15 minutes in CI); TRUNCATE drops them in one go
                names = ", ".join(f'"{t}"' for t in tables if t in filled)
                conn.execute(text(f"TRUNCATE {names} CASCADE"))  # CASCADE: the empty tables that refer to them
                filled = set()
            for table in tables:
                if table in filled:
                    conn.execute(text(f'DELETE FROM "{table}"'))
            conn.execute(text("SELECT setval(format('%I.%I', schemaname, sequencename), 1, false) FROM pg_sequences "
                              "WHERE schemaname = current_schema() AND last_value IS NOT NULL"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


def _tables_with_rows(conn, tables: list[str]) -> set[str]:
    """One query: most tests write to a few of the schema's ~70 tables."""
    return set(conn.execute(text(" UNION ALL ".join(
        f"SELECT '{t}' WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in tables))).scalars())


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def app_config(database_url, tmp_path) -> dict:
    """Overrides for create_app; a test may change them before asking for `app`."""
    return {
        "ENV": "test",
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "test-secret-key-not-for-production",
        "BASE_URL": "http://localhost",
        "WTF_CSRF_ENABLED": False,  # tests/web/test_security.py checks CSRF with it on
        "RATELIMIT_ENABLED": False,  # rate limits have their own tests
        "SMTP_URL": None,
        "STRIPE_SECRET_KEY": None,
    }


class RequestIsolatingClient(FlaskClient):
    """Each request runs in its own app context with its own database session, as it does in production.

    Without this, requests would reuse the test's app context (Flask reuses an active one), share its `g` and its
    session, and a view that forgot to commit would still look right to the test. Before each request the test's
    own pending work is committed (releasing SQLite's write lock); afterwards its loaded objects are expired so
    assertions read what the request really committed.
    """

    def open(self, *args, **kwargs):
        outer = db.session()
        outer.commit()
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        outer.expire_all()
        return response


@pytest.fixture
def app(_schema, app_config, clock):
    application = create_app(app_config)
    application.test_client_class = RequestIsolatingClient
    application.extensions["clock"] = clock
    ctx = application.app_context()
    ctx.push()
    yield application
    ctx.pop()
    application.extensions["db_engine"].dispose()
    try:
        _check_settled_sums(_schema)
    finally:
        _empty_tables(_schema)


def _check_settled_sums(engine) -> None:
    """After every test, whatever it did to the ledger (randomized operations, multi-process payment races, run-due
    on several nodes, imports): the sums the database keeps (models/settled.py) are the sums of the rows: on each
    invoice its allocations and adjustments, on each payment its allocations and its refunds but failed ones."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from portal.models import Invoice, Payment
    from portal.services.ledger import applied_by_payment, paid_cents, refunded_by_payment

    with engine.connect() as conn:
        stored = dict(conn.execute(select(Invoice.id, Invoice.settled_cents)).all())
        kept = {i: (a, r) for i, a, r in conn.execute(select(Payment.id, Payment.applied_cents,
                                                               Payment.refunded_cents))}
        applied, refunded = applied_by_payment(), refunded_by_payment()
        rows = dict(conn.execute(select(applied.c.payment_id, applied.c.cents)).all())
        refunds = dict(conn.execute(select(refunded.c.payment_id, refunded.c.cents)).all())
    derived_payments = {i: (int(rows.get(i, 0)), int(refunds.get(i, 0))) for i in kept}
    drift = {i: (kept[i], derived_payments[i]) for i in kept if kept[i] != derived_payments[i]}
    assert not drift, f"payments' applied/refunded sums drifted from the ledger rows (stored, derived): {drift}"
    if not stored:
        return
    with Session(engine) as session:
        derived = paid_cents(session, stored)
    drift = {i: (stored[i], derived[i]) for i in stored if stored[i] != derived[i]}
    assert not drift, f"invoices.settled_cents drifted from the ledger rows (stored, derived): {drift}"


@pytest.fixture
def session(app):
    return db.session()


@pytest.fixture
def http(app):
    return app.test_client()


@pytest.fixture
def outbox(app) -> Path:
    return Path(app.instance_path) / "outbox"


_PASSWORD_HASHES: dict[str, str] = {}


class Factory:
    """Builds believable records through the real services, so tests exercise the same paths as users."""

    def __init__(self, session):
        self.session = session
        self._n = 0

    def _next(self) -> int:
        self._n += 1
        return self._n

    def staff(self, email: str = "admin@msp.test", password: str = "correct horse battery", *, name: str = "Alex Admin",
              role: str = "admin"):
        """The row staff.create_staff writes, with each password's scrypt hash made once per run by the service's
        own hash_password: a hash costs ~0.2 s, and a few hundred tests need a staff user. Tests of creating staff
        call the service itself."""
        if password not in _PASSWORD_HASHES:
            _PASSWORD_HASHES[password] = staff.hash_password(password)
        user = StaffUser(email=clients.normalize_email(email), name=name, password_hash=_PASSWORD_HASHES[password],
                         role=role, is_active=True, created_at=now())
        self.session.add(user)
        self.session.commit()
        return user

    def client(self, name: str | None = None, **kw):
        n = self._next()
        return clients.create_client(self.session, legal_name=name or f"Client {n} LLC", **kw)

    def contact(self, client, email: str | None = None, **kw):
        n = self._next()
        return clients.add_contact(self.session, client, name=kw.pop("name", f"Contact {n}"),
                                   email=email or f"contact{n}@client{client.id}.test", **kw)

    def invoice(self, client, amount_cents: int = 10_000, *, issue: bool = True, issue_date: date | None = None,
                due_date: date | None = None, lines: list[LineInput] | None = None, **kw):
        lines = lines or [LineInput("Managed services", Decimal(1), amount_cents, taxable=False)]
        return billing.create_invoice(self.session, client, lines=lines, issue_date=issue_date, due_date=due_date,
                                      issue=issue, **kw)

    def payment(self, client, amount_cents: int, method: str = "check", **kw):
        return payments.record_payment(self.session, client, amount_cents=amount_cents, method=method, **kw)

    def backlog(self, client, count: int, *, issue_date: date, due_date: date) -> None:
        """``count`` open invoices of $1.00 in one go (COPY on PostgreSQL), numbered OLD-000000 on: for what must
        hold at a large MSP's scale (one at a time through the service, tens of thousands would take minutes)."""
        from portal.models import Invoice
        from portal.services import bulk

        at = now()
        with self.session.begin_nested():  # COPY on PostgreSQL: inside a transaction that has begun
            bulk.insert_rows(self.session, Invoice.__table__, [
                {"client_id": client.id, "number": f"OLD-{n:06d}", "status": "open", "currency": "USD",
                 "issue_date": issue_date, "due_date": due_date, "tax_rate": Decimal(0), "subtotal_cents": 100,
                 "tax_cents": 0, "total_cents": 100, "memo": "", "source": "import", "created_at": at,
                 "issued_at": at, "void_reason": ""} for n in range(count)])
        self.session.commit()


@pytest.fixture
def make(session) -> Factory:
    return Factory(session)


def statements_run(app, action) -> list[str]:
    """The SQL statements ``action()`` runs through the app's engine, SQLite's BEGIN left out (portal.db emits it
    as a statement; PostgreSQL's is the driver's own)."""
    seen: list[str] = []

    def _seen(_conn, _cursor, statement, *_args):
        if not statement.startswith("BEGIN"):
            seen.append(statement)

    engine = app.extensions["db_engine"]
    event.listen(engine, "before_cursor_execute", _seen)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", _seen)
    return seen


def statements_unchanged_as_rows_grow(app, views, grow) -> list:
    """Each of ``views`` (a page request) runs as many statements after ``grow()`` adds rows as before: the list
    reads its rows' related records with the rows, not one at a time. Returns what each view answered after, for
    the test to check every row is shown."""
    views[0]()  # the process's first page also copies the MSP's settings (SettingsCache)
    before = [statements_run(app, view) for view in views]
    grow()
    answered: list = []
    after = [statements_run(app, lambda view=view: answered.append(view())) for view in views]
    assert [len(s) for s in before] == [len(s) for s in after], after
    return answered


def sign_in(http_client, record) -> None:
    """Put a signed-in identity in the test client's session (for tests that are not about signing in)."""
    from portal.web.auth.identity import Identity

    with http_client.session_transaction() as s:
        s["_user_id"] = Identity(record).get_id()
        s["_fresh"] = True


@pytest.fixture
def staff_http(http, make):
    sign_in(http, make.staff())
    return http


@pytest.fixture(scope="session")
def _smtp_server():
    from tests.smtp_server import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_server(_smtp_server):
    """A real SMTP server on loopback, emptied for each test (tests/smtp_server.py: how to point the app at it)."""
    _smtp_server.reset()
    return _smtp_server


@pytest.fixture
def rt(app):
    """The app's Runtime: what services need from outside the database (portal/services/runtime.py)."""
    return app.extensions["runtime"]
