"""Client standing on a real database: thresholds from the signed terms, the automatic lift when paid (a bank
payment only once it settles), plans, promises, overrides, and changes recorded and announced once by run-due."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.clock import now, today
from portal.domain.dunning import PromiseStatus
from portal.domain.errors import DomainError
from portal.domain.plans import PlanStatus
from portal.domain.standing import Standing, StandingBasis
from portal.gateways.payments import sandbox_token
from portal.models import ClientStanding, OutboundEvent, StandingOverride
from portal.services import payments, standing
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import runtime_for
from tests.run_due_fixtures import run
from tests.standing_fixtures import promise, publish_terms, put_on_plan, sign_terms

DUE = date(2026, 3, 1)


def standing_of(session, client):
    session.expire_all()
    # the staff page's panel takes the override in force from the client's history instead: always the same one
    in_force = standing.active_overrides(session, [client.id], today()).get(client.id)
    assert standing.in_force(standing.override_history(session, client), today()) == in_force
    return standing.for_client(session, client, today())


def events(session) -> list[OutboundEvent]:
    session.expire_all()
    return list(session.scalars(select(OutboundEvent).order_by(OutboundEvent.id)))


@pytest.fixture
def signed(session, make):
    """A client that signed terms with a 10-day hold, and a $100 invoice due March 1."""
    version = publish_terms(session, hold_days=10)
    client = make.client("Harbor Dental LLC", external_id="PSA-100")
    agreement = sign_terms(session, client, version, on=date(2026, 1, 5))
    invoice = make.invoice(client, 10_000, issue_date=date(2026, 2, 1), due_date=DUE)
    return client, invoice, agreement


@pytest.mark.parametrize(("day", "expected"), [
    (DUE, Standing.GOOD),  # due today
    (DUE + timedelta(days=2), Standing.GOOD),
    (DUE + timedelta(days=3), Standing.WARNING),  # a week before the hold
    (DUE + timedelta(days=9), Standing.WARNING),  # hold_days - 1
    (DUE + timedelta(days=10), Standing.WARNING),  # hold_days: not yet "more than 10 days"
    (DUE + timedelta(days=11), Standing.ON_HOLD),  # hold_days + 1
])
def test_the_signed_threshold_decides(session, signed, clock, day, expected):
    client, invoice, agreement = signed
    clock.set(day)
    result = standing_of(session, client)
    assert result.standing == expected
    assert (result.basis, result.hold_days, result.terms_reference) == (StandingBasis.SIGNED_TERMS, 10,
                                                                         agreement.reference)


def test_a_client_that_signed_nothing_is_measured_against_the_default_terms(session, make, clock):
    client = make.client()
    make.invoice(client, 10_000, issue_date=date(2026, 2, 1), due_date=DUE)
    clock.set(DUE + timedelta(days=15))
    assert standing_of(session, client).standing == Standing.WARNING
    clock.set(DUE + timedelta(days=16))
    result = standing_of(session, client)
    assert (result.standing, result.basis, result.hold_days) == (Standing.ON_HOLD, StandingBasis.DEFAULT_TERMS, 15)
    assert "no signed terms" in result.reason


def test_what_must_be_paid_and_the_lift_when_it_is(session, signed, make, clock):
    client, invoice, _ = signed
    make.invoice(client, 4_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 10))  # 6 days past due
    make.invoice(client, 9_999, issue_date=date(2026, 3, 10), due_date=date(2026, 4, 10))  # not due
    result = standing_of(session, client)
    assert (result.standing, result.to_lift_cents, result.to_good_cents, result.past_due_cents) == (
        Standing.ON_HOLD, 10_000, 14_000, 14_000)

    make.payment(client, 10_000, allocations={invoice.id: 10_000})  # pays exactly what lifts the hold
    result = standing_of(session, client)
    assert (result.standing, result.to_lift_cents) == (Standing.WARNING, 4_000)
    make.payment(client, 4_000)
    assert standing_of(session, client).standing == Standing.GOOD


def test_a_bank_payment_lifts_the_hold_when_it_settles_not_before(app, session, shop, sandbox_gateway, clock):
    clock.set(DUE + timedelta(days=16))  # $100 due March 1, default terms: on hold
    rt = runtime_for(sandbox_gateway)
    run(app, session, rt)
    assert standing_of(session, shop.client).standing == Standing.ON_HOLD
    assert [(e.type, e.client_id) for e in events(session)] == [("standing.changed", shop.client.id)]

    request = payments.create_request(session, client=shop.client, contact=shop.contact,
                                      amounts={shop.first.id: 10_000})
    attempt = payments.pay(session, rt, request, token=sandbox_token("us_bank_account", "000123456789"),
                           attempt_number=1)
    assert attempt.status == "processing"
    assert standing_of(session, shop.client).standing == Standing.ON_HOLD  # money not moved yet
    run(app, session, rt)
    assert standing_of(session, shop.client).standing == Standing.ON_HOLD
    assert len(events(session)) == 1  # nothing changed, nothing announced

    clock.advance(minutes=2)  # the sandbox bank settles the debit; run-due's first step books it
    report = run(app, session, rt)
    assert report.settled == 1 and not report.problems
    assert standing_of(session, shop.client).standing == Standing.GOOD
    row = session.get(ClientStanding, shop.client.id)
    assert row.standing == Standing.GOOD
    changed = events(session)
    assert [e.type for e in changed] == ["standing.changed", "standing.changed"]
    assert '"previous_standing":"on_hold"' in changed[1].payload and '"standing":"good"' in changed[1].payload


def test_two_runs_announce_one_change(app, session, signed, rt, clock):
    client, _, _ = signed
    clock.set(DUE + timedelta(days=5))
    run(app, session, rt)
    run(app, session, rt)
    assert [e.type for e in events(session)] == ["standing.changed"]
    assert '"standing":"warning"' in events(session)[0].payload
    clock.set(DUE + timedelta(days=11))
    run(app, session, rt)
    run(app, session, rt)
    assert len(events(session)) == 2 and '"previous_standing":"warning"' in events(session)[1].payload
    assert session.get(ClientStanding, client.id).standing == Standing.ON_HOLD


def test_a_good_client_is_not_announced(app, session, make, rt):
    make.invoice(make.client(), 10_000)  # not due
    run(app, session, rt)
    assert events(session) == [] and session.scalar(select(func.count()).select_from(ClientStanding)) == 0


def test_a_current_plan_counts_as_good_and_a_defaulted_one_does_not(session, signed, clock):
    client, invoice, _ = signed
    clock.set(DUE + timedelta(days=30))
    plan = put_on_plan(session, client, [invoice])
    assert standing_of(session, client).standing == Standing.GOOD
    plan.status = PlanStatus.DEFAULTED
    plan.invoices[0].current_key = None  # what the plans service does when a plan ends
    session.commit()
    assert standing_of(session, client).standing == Standing.ON_HOLD


def test_an_open_promise_protects_until_its_date(session, signed, clock):
    client, invoice, _ = signed
    clock.set(DUE + timedelta(days=12))
    row = promise(session, client, invoice, on=today() + timedelta(days=3), amount_cents=10_000)
    assert standing_of(session, client).standing == Standing.GOOD
    clock.set(today() + timedelta(days=4))  # the date passed: no longer protects, whatever its row says yet
    assert standing_of(session, client).standing == Standing.ON_HOLD
    row.status = PromiseStatus.BROKEN
    session.commit()
    assert standing_of(session, client).standing == Standing.ON_HOLD


def test_an_override_wins_until_its_end_date_and_is_recorded(session, signed, make, clock):
    client, _, _ = signed
    admin = make.staff()
    clock.set(DUE + timedelta(days=20))
    standing.set_override(session, client, standing="good", reason="Wire promised by the CFO", staff=admin,
                          ends_on=today() + timedelta(days=2), today=today())
    result = standing_of(session, client)
    assert (result.standing, result.basis) == (Standing.GOOD, StandingBasis.OVERRIDE)
    assert "Wire promised by the CFO" in result.reason
    clock.set(today() + timedelta(days=2))
    assert standing_of(session, client).standing == Standing.GOOD  # through its end date
    clock.set(today() + timedelta(days=1))
    assert standing_of(session, client).standing == Standing.ON_HOLD
    [row] = session.scalars(select(StandingOverride)).all()
    assert (row.staff_id, row.standing, row.reason) == (admin.id, "good", "Wire promised by the CFO")


def test_an_override_can_be_ended_early(session, signed, make, clock):
    client, _, _ = signed
    clock.set(DUE + timedelta(days=20))
    row = standing.set_override(session, client, standing="good", reason="Call on Monday", staff=None,
                                ends_on=today() + timedelta(days=5), today=today())
    standing.end_override(session, client, row.id, None)
    assert standing_of(session, client).standing == Standing.ON_HOLD
    assert session.get(StandingOverride, row.id).ended_at is not None


def test_a_new_override_replaces_the_one_in_force_which_does_not_come_back(session, signed, make, clock):
    """"Good until the 25th" set on top of "on hold until the 30th": after the 25th the terms apply again (the form
    says so), not the older override; and ending the new one early ends the override, not just the newest row."""
    client, _, _ = signed
    admin = make.staff()
    clock.set(DUE - timedelta(days=5))  # nothing past due: good under the signed terms
    first = standing.set_override(session, client, standing="on_hold", reason="No answer to calls", staff=admin,
                                  ends_on=today() + timedelta(days=30), today=today())
    second = standing.set_override(session, client, standing="warning", reason="Paying by wire", staff=admin,
                                   ends_on=today() + timedelta(days=2), today=today())
    assert standing_of(session, client).standing == Standing.WARNING
    clock.set(today() + timedelta(days=3))  # the new one is over: the terms apply (still nothing past due: good)
    result = standing_of(session, client)
    assert (result.standing, result.basis) == (Standing.GOOD, StandingBasis.SIGNED_TERMS)
    assert session.get(StandingOverride, first.id).ended_at is not None  # replaced, shown as ended

    clock.set(DUE - timedelta(days=5))
    third = standing.set_override(session, client, standing="on_hold", reason="Again", staff=admin,
                                  ends_on=today() + timedelta(days=10), today=today())
    standing.end_override(session, client, third.id, admin)
    result = standing_of(session, client)
    assert (result.standing, result.basis) == (Standing.GOOD, StandingBasis.SIGNED_TERMS)
    assert session.get(StandingOverride, second.id).ended_at is not None


def test_of_two_overrides_set_at_the_same_moment_the_newest_is_in_force_then_the_other(session, signed, clock):
    """Two staff saving at once can each end what was in force before either row exists, leaving two not ended: the
    newest is in force, and once it is ended the other one is; the panel's reading of the history agrees."""
    client, _, _ = signed
    clock.set(DUE + timedelta(days=20))
    older, newer = (StandingOverride(client_id=client.id, standing=s, reason=s, ends_on=today() + timedelta(days=3),
                                     created_at=now()) for s in ("warning", "good"))
    session.add_all([older, newer])
    session.commit()
    assert standing_of(session, client).standing == Standing.GOOD
    standing.end_override(session, client, newer.id, None)
    assert standing_of(session, client).standing == Standing.WARNING
    clock.set(today() + timedelta(days=4))  # both past their end date: the signed terms again
    assert standing_of(session, client).basis == StandingBasis.SIGNED_TERMS


@pytest.mark.parametrize(("fields", "message"), [
    ({"standing": "frozen"}, "Choose good"),
    ({"reason": ""}, "Give a reason"),
    ({"ends_on": None}, "Give an end date"),
    ({"ends_on": date(2026, 3, 1)}, "in the past"),
    ({"ends_on": date(2026, 9, 1)}, "at most 90 days"),
])
def test_a_bad_override_changes_nothing(session, signed, fields, message):
    client, _, _ = signed
    kwargs = {"standing": "good", "reason": "ok", "ends_on": today() + timedelta(days=1), **fields}
    with pytest.raises(DomainError, match=message):
        standing.set_override(session, client, staff=None, today=today(), **kwargs)
    session.rollback()
    assert session.scalar(select(func.count()).select_from(StandingOverride)) == 0


def test_a_page_of_clients_is_computed_in_a_fixed_number_of_queries(session, make, clock):
    from sqlalchemy import event

    clients = [make.client(f"Client {n:02d} LLC") for n in range(12)]
    for n, client in enumerate(clients):
        make.invoice(client, 1_000 + n, issue_date=date(2026, 1, 1), due_date=date(2026, 2, n + 1))
    clock.set(date(2026, 3, 1))
    statements = []
    engine = session.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        views, next_id = standing.client_page(session, after_id=0, limit=10, today=today())
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(views) == 10 and next_id == clients[9].id
    # BEGIN, the page, then past due, promises, the signed terms with the live notices, overrides
    assert len(statements) <= 6, statements
    rest, last = standing.client_page(session, after_id=next_id, limit=10, today=today())
    assert [v.client.id for v in rest] == [c.id for c in clients[10:]] and last is None


def test_a_page_of_clients_keeps_each_ones_signed_terms_the_last_it_signed(session, signed, make, clock):
    """The terms (and live notices) are read for a page of clients in one statement: each client is measured by the
    terms it signed last, a client that signed none by the defaults (15 days)."""
    harbor, _, first = signed  # signed a 10-day hold on January 5
    later = publish_terms(session, hold_days=20)
    resigned = make.client("Resigned LLC")
    sign_terms(session, resigned, first.version, on=date(2026, 1, 5))
    newest = sign_terms(session, resigned, later, on=date(2026, 1, 6))
    unsigned = make.client("Unsigned LLC")
    for client in (resigned, unsigned):
        make.invoice(client, 10_000, issue_date=date(2026, 2, 1), due_date=DUE)
    clock.set(DUE + timedelta(days=12))
    views = {v.client.id: v.result for v in standing.for_clients(session, [harbor, resigned, unsigned], today())}
    assert [views[c.id].hold_days for c in (harbor, resigned, unsigned)] == [10, 20, 15]
    assert views[resigned.id].terms_reference == newest.reference
    # 12 days past due: over a 10-day hold; not yet a week before a 20-day one; a week into the default 15
    assert [views[c.id].standing for c in (harbor, resigned, unsigned)] == [Standing.ON_HOLD, Standing.GOOD,
                                                                             Standing.WARNING]


def test_promises_are_read_only_for_clients_with_something_past_due(session, signed, make, clock):
    """A promise covers past-due invoices only: a client with nothing past due (most of them) is measured without
    reading its promises, and a page reads them for the clients that have something past due."""
    from sqlalchemy import event

    late, invoice, _ = signed
    paid_up = make.client("Paid Up LLC")
    make.invoice(paid_up, 5_000, issue_date=DUE, due_date=DUE + timedelta(days=60))
    clock.set(DUE + timedelta(days=12))
    promise(session, late, invoice, on=today() + timedelta(days=3), amount_cents=10_000)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(session.get_bind(), "before_cursor_execute", listener)
    try:
        alone = standing.for_client(session, paid_up, today())
        read_alone = [s for s in statements if "payment_promises" in s]
        both = standing.for_clients(session, [paid_up, late], today())
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", listener)
    assert alone.standing == Standing.GOOD and alone.past_due_cents == 0 and read_alone == []
    assert [v.result.standing for v in both] == [Standing.GOOD, Standing.GOOD]  # the promise protects the late one
    assert len([s for s in statements if "payment_promises" in s]) == 1


def test_the_demo_shows_clients_on_hold_and_one_override(session, seeded_demo):
    from portal.models import Client

    clients = list(session.scalars(select(Client).order_by(Client.id)))
    views = standing.for_clients(session, clients, today())
    held = [v for v in views if v.result.standing == Standing.ON_HOLD]
    assert held and all(v.result.to_lift_cents > 0 for v in held)
    [overridden] = [v for v in views if v.result.basis == StandingBasis.OVERRIDE]
    assert overridden.result.standing == Standing.GOOD and overridden.result.past_due_cents > 0
    recorded = {row.client_id: row.standing for row in session.scalars(select(ClientStanding))}
    assert {v.client.id for v in held} <= set(recorded) and all(recorded[v.client.id] == "on_hold" for v in held)
