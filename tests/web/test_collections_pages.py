"""Collections over HTTP: the staff schedule editor (malformed steps refused beside the form, nothing changed;
preview), the call list and a client's collection page (calls, promises, pause/resume), the client's own reminders
and promises (isolation: another client's invoice or promise is 404), the promise form reached from a reminder
email's link, and CSRF on these forms."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.clock import today
from portal.domain.dunning import PromiseStatus
from portal.models import ClientCollection, CollectionNote, DunningStep, PaymentPromise
from portal.services.collections import promises, reminders, schedule
from tests.conftest import sign_in, statements_unchanged_as_rows_grow
from tests.payments_fixtures import read_outbox

DUE = date(2026, 3, 10)  # the clock is at 2026-03-16
LINK = re.compile(r"http://localhost(/i/[A-Za-z0-9_.\-]+)/promise")


@pytest.fixture
def acme(make):
    client = make.client("Acme Dental")
    make.contact(client, "ap@acme.test", name="Ann Payable", phone="555-0199")
    return client


@pytest.fixture
def late(make, acme):
    return make.invoice(acme, 80_000, issue_date=date(2026, 2, 8), due_date=DUE)


@pytest.fixture
def other(make):
    client = make.client("Other Co")
    contact = make.contact(client, "pay@other.test")
    invoice = make.invoice(client, 5_000, issue_date=date(2026, 2, 8), due_date=DUE)
    return client, contact, invoice


def count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


# --- the schedule editor ----------------------------------------------------------------------------------------------

def test_the_schedule_shows_the_default_steps_with_previews(app, staff_http):
    page = staff_http.get("/admin/collections/schedule")
    assert page.status_code == 200
    for subject in ("Invoice {invoice_number} was due yesterday: a copy is attached",
                    "Final notice: invoice {invoice_number}, new work paused until cleared"):
        assert subject in page.text
    assert "original invoice PDF attached" in page.text
    assert "Final notice: invoice INV-1042, new work paused until cleared" in page.text  # the preview


def step_form(**kw) -> dict:
    return {"offset_days": "5", "name": "Nudge", "subject": "About {invoice_number}", "body": "Pay {pay_link}",
            "pay_within_days": "7", "active": "y", **kw}


@pytest.mark.parametrize(("fields", "message"), [
    ({"offset_days": "7"}, "Another step already sends on 7 days after the due date"),
    ({"offset_days": "-61"}, "between -60"),
    ({"subject": ""}, "The subject is empty"),
    ({"subject": "Pay {nonsense}"}, "names {nonsense}"),
    ({"offset_days": "soon"}, "Not a valid integer value"),
])
def test_a_malformed_step_is_refused_beside_the_form_and_nothing_changes(app, session, staff_http, fields, message):
    schedule.ensure_saved(session)
    before = count(session, DunningStep)
    response = staff_http.post("/admin/collections/schedule/new", data=step_form(**fields))
    assert response.status_code == 200
    assert message in response.text
    assert count(session, DunningStep) == before


def test_editing_a_steps_subject_and_previewing_it(app, session, staff_http):
    schedule.ensure_saved(session)
    step = session.scalar(select(DunningStep).where(DunningStep.offset_days == 7))
    preview = staff_http.post(f"/admin/collections/schedule/{step.id}",
                              data=step_form(offset_days="7", subject="Still open: {invoice_number} ({balance})",
                                             action="preview"))
    assert "Still open: INV-1042 ($1,250.00)" in preview.text
    session.expire_all()
    assert session.get(DunningStep, step.id).subject != "Still open: {invoice_number} ({balance})"  # not saved
    saved = staff_http.post(f"/admin/collections/schedule/{step.id}",
                            data=step_form(offset_days="7", subject="Still open: {invoice_number} ({balance})"))
    assert saved.status_code == 302
    session.expire_all()
    assert session.get(DunningStep, step.id).subject == "Still open: {invoice_number} ({balance})"


def test_a_step_already_sent_cannot_be_removed(app, session, rt, clock, staff_http, late):
    clock.set(DUE + timedelta(days=1))
    assert reminders.send_due(session, rt, today()).sent == 1
    step = session.scalar(select(DunningStep).where(DunningStep.offset_days == 1))
    response = staff_http.post(f"/admin/collections/schedule/{step.id}/delete", follow_redirects=True)
    assert "was already sent for some invoices" in response.text
    assert count(session, DunningStep) == 5


# --- the call list and a client's page --------------------------------------------------------------------------------

def test_call_list_and_the_client_page(app, session, rt, clock, staff_http, acme, late):
    clock.set(DUE + timedelta(days=1))
    reminders.send_due(session, rt, today())
    clock.set(DUE + timedelta(days=4))
    page = staff_http.get("/admin/collections/")
    assert page.status_code == 200 and "Acme Dental" in page.text and "555-0199" in page.text
    assert "$800.00" in page.text and "Invoice past due" in page.text

    response = staff_http.post(f"/admin/collections/clients/{acme.id}/call", data={
        "outcome": "reached", "reason": "did_not_receive", "note": "Resent to the new AP address",
        "next_call_on": (today() + timedelta(days=3)).isoformat()})
    assert response.status_code == 302
    assert "Acme Dental" not in staff_http.get("/admin/collections/").text  # next call scheduled
    client_page = staff_http.get(f"/admin/collections/clients/{acme.id}")
    assert "Resent to the new AP address" in client_page.text and "Did not receive the invoice" in client_page.text
    assert 'id="collections"' in staff_http.get(f"/admin/clients/{acme.id}?tab=collections").text  # client page


@pytest.mark.parametrize(("fields", "message"), [
    ({"promised_on": "2026-03-15"}, "The promised date is in the past"),
    ({"amount": "800.01"}, "larger than the balance of $800.00"),
    ({"amount": "0"}, "more than zero"),
    ({"amount": "lots"}, "is not an amount"),
])
def test_a_bad_promise_from_the_admin_is_refused_and_nothing_changes(app, session, staff_http, acme, late, fields,
                                                                      message):
    data = {"invoice": str(late.id), "amount": "300.00", "promised_on": "2026-03-20", **fields}
    response = staff_http.post(f"/admin/collections/clients/{acme.id}/promise", data=data)
    assert response.status_code == 422
    assert message in response.text
    assert count(session, PaymentPromise) == 0


def test_the_admin_records_a_promise_and_pauses_and_resumes(app, session, staff_http, acme, late):
    response = staff_http.post(f"/admin/collections/clients/{acme.id}/promise",
                               data={"invoice": "past_due", "amount": "300.00", "promised_on": "2026-03-20"})
    assert response.status_code == 302
    made = session.scalar(select(PaymentPromise))
    assert (made.amount_cents, made.invoice_id, made.status) == (30_000, None, PromiseStatus.OPEN)

    refused = staff_http.post(f"/admin/collections/clients/{acme.id}/pause", data={"reason": ""})
    assert refused.status_code == 422 and "Say why the reminders are paused" in refused.text
    assert count(session, ClientCollection) == 0
    assert staff_http.post(f"/admin/collections/clients/{acme.id}/pause",
                           data={"reason": "Disputed hours", "until": ""}).status_code == 302
    page = staff_http.get(f"/admin/clients/{acme.id}?tab=collections")
    assert "Reminders paused" in page.text and "Disputed hours" in page.text
    staff_http.post(f"/admin/collections/clients/{acme.id}/resume")
    session.expire_all()
    assert session.get(ClientCollection, acme.id).paused is False


def test_staff_pages_need_staff(app, http, acme, late, make):
    assert http.get("/admin/collections/").status_code == 302  # to sign-in
    sign_in(http, make.contact(acme, "it@acme.test"))
    assert http.get("/admin/collections/").status_code == 403
    assert http.get(f"/admin/collections/clients/{acme.id}").status_code == 403


# --- the client's pages -----------------------------------------------------------------------------------------------

def test_a_contact_promises_to_pay_and_sees_it(app, session, http, acme, late):
    contact = acme.contacts[0]
    sign_in(http, contact)
    form = http.get(f"/reminders/promise?invoice={late.id}")
    assert form.status_code == 200 and late.number in form.text
    refused = http.post("/reminders/promise", data={"invoice": str(late.id), "amount": "900", "promised_on":
                                                    "2026-03-20"})
    assert "larger than the balance" in refused.text and count(session, PaymentPromise) == 0
    refused = http.post("/reminders/promise", data={"invoice": str(late.id), "amount": "100",
                                                    "promised_on": "2026-03-01"})
    assert "in the past" in refused.text and count(session, PaymentPromise) == 0
    done = http.post("/reminders/promise", data={"invoice": str(late.id), "amount": "400.00",
                                                 "promised_on": "2026-03-25"})
    assert done.status_code == 302
    made = session.scalar(select(PaymentPromise))
    assert (made.client_id, made.invoice_id, made.contact_id, made.amount_cents) == (acme.id, late.id, contact.id,
                                                                                    40_000)
    mine = http.get("/reminders")
    assert "$400.00" in mine.text and late.number in mine.text
    assert http.get(f"/reminders/promises/{made.id}").status_code == 200


def test_the_reminder_and_promise_lists_read_their_invoices_with_the_rows(app, session, rt, clock, http, make,
                                                                         acme):
    """A client's reminders and promises (up to 50 each on its own page, 10 on the staff's collection page) each
    name their invoice, a reminder its step: read with the rows, not one lazy load per row."""
    clock.set(DUE + timedelta(days=1))
    sign_in(http, acme.contacts[0])
    staff = app.test_client()
    sign_in(staff, make.staff())
    made = []

    def grow(n: int) -> None:
        for _ in range(n):  # different amounts: the same amount again would be held as a likely duplicate bill
            made.append(make.invoice(acme, 10_000 + 1_000 * len(made), issue_date=date(2026, 2, 8), due_date=DUE))
        assert reminders.send_due(session, rt, today()).sent == n
        for invoice in made[-n:]:  # then a promise for each (a promised invoice is not reminded)
            promises.record(session, client_id=acme.id, invoice_id=invoice.id, amount_cents=5_000,
                            promised_on=today() + timedelta(days=5), today=today())

    grow(1)
    shown = statements_unchanged_as_rows_grow(
        app, [lambda: http.get("/reminders"), lambda: staff.get(f"/admin/collections/clients/{acme.id}")],
        lambda: grow(4))
    step = session.scalar(select(DunningStep).where(DunningStep.offset_days == 1))
    for response in shown:
        assert all(i.number in response.text for i in made) and response.text.count(step.name) >= 5


def test_another_clients_invoice_or_promise_is_not_found(app, session, http, acme, late, other):
    other_client, other_contact, other_invoice = other
    theirs = promises.record(session, client_id=other_client.id, invoice_id=other_invoice.id, amount_cents=1_000,
                             promised_on=today(), today=today())
    sign_in(http, acme.contacts[0])
    assert http.get(f"/reminders/promise?invoice={other_invoice.id}").status_code == 404
    assert http.get(f"/reminders/promises/{theirs.id}").status_code == 404
    response = http.post("/reminders/promise", data={"invoice": str(other_invoice.id), "amount": "10.00",
                                                     "promised_on": "2026-03-20"})
    assert response.status_code == 200 and "Not a valid choice" in response.text  # not one of theirs to choose
    assert count(session, PaymentPromise) == 1
    assert "Other Co" not in http.get("/reminders").text


def test_the_promise_link_in_a_reminder_email_records_a_promise(app, session, rt, clock, http, outbox, acme, late):
    clock.set(DUE + timedelta(days=1))
    assert reminders.send_due(session, rt, today()).sent == 1
    [message] = read_outbox(outbox)
    body = message.get_body(("plain",)).get_content()
    path = LINK.search(body).group(1) + "/promise"
    page = http.get(path)
    assert page.status_code == 200 and late.number in page.text and "$800.00" in page.text
    refused = http.post(path, data={"invoice": str(late.id), "amount": "100", "promised_on": "2026-03-01"})
    assert "in the past" in refused.text and count(session, PaymentPromise) == 0
    done = http.post(path, data={"invoice": str(late.id), "amount": "800.00", "promised_on": "2026-03-20"})
    assert done.status_code == 200 and "is recorded" in done.text
    made = session.scalar(select(PaymentPromise))
    assert (made.invoice_id, made.contact_id, made.amount_cents) == (late.id, acme.contacts[0].id, 80_000)
    assert http.get("/i/not-a-token/promise").status_code == 404


# --- CSRF -------------------------------------------------------------------------------------------------------------

@pytest.fixture
def csrf_on(app_config):
    app_config["WTF_CSRF_ENABLED"] = True
    return app_config


def test_collections_forms_refuse_a_post_without_csrf(csrf_on, app, session, http, make, acme, late):
    staff = make.staff()
    sign_in(http, staff)
    for url, data in [(f"/admin/collections/clients/{acme.id}/promise",
                       {"invoice": str(late.id), "amount": "1", "promised_on": "2026-03-20"}),
                      (f"/admin/collections/clients/{acme.id}/call", {"outcome": "reached", "reason": "other"}),
                      (f"/admin/collections/clients/{acme.id}/pause", {"reason": "x"}),
                      ("/admin/collections/schedule/new", step_form())]:
        assert http.post(url, data=data).status_code == 400, url
    assert [count(session, m) for m in (PaymentPromise, CollectionNote, ClientCollection, DunningStep)] == [0] * 4
