"""Offline payments: allocation (default, custom, refused), credit, applying credit, refunds, the list."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import select

from portal.models import Allocation, Payment, Refund
from portal.services import ledger

from .conftest import count, page, row, value_of


def applied(session, payment) -> dict[int, int]:
    session.expire_all()
    result: dict[int, int] = {}
    for a in session.scalars(select(Allocation).where(Allocation.payment_id == payment.id)):
        result[a.invoice_id] = result.get(a.invoice_id, 0) + a.amount_cents
    return {k: v for k, v in result.items() if v}


def two_invoices(make):
    client = make.client("Fabrikam")
    older = make.invoice(client, 30_000, issue_date=date(2026, 1, 1), due_date=date(2026, 1, 31))
    newer = make.invoice(client, 20_000)
    return client, older, newer


PAYMENT = {"method": "check", "received_on": "2026-03-15", "reference": "CHK-2001", "memo": "Mailed",
           "record": "Record payment"}


def test_form_lists_open_invoices_oldest_first(admin, make):
    client, older, newer = two_invoices(make)
    make.invoice(client, 9_999, issue=False)  # drafts are not owed
    text = page(admin.get(f"/admin/clients/{client.id}/payments/new"))
    assert text.index(older.number) < text.index(newer.number)
    assert "$300.00" in row(text, "invoice", older.id) and "$200.00" in row(text, "invoice", newer.id)
    assert len(re.findall(r'name="alloc-\d+"', text)) == 2

    prefilled = page(admin.get(f"/admin/clients/{client.id}/payments/new?amount=350"))
    assert value_of(prefilled, "amount") == "350.00"
    assert (value_of(prefilled, f"alloc-{older.id}"), value_of(prefilled, f"alloc-{newer.id}")) == ("300.00", "50.00")

    one = page(admin.get(f"/admin/clients/{client.id}/payments/new?invoice={newer.id}"))
    assert value_of(one, "amount") == "200.00"
    assert (value_of(one, f"alloc-{older.id}"), value_of(one, f"alloc-{newer.id}")) == ("", "200.00")


def test_default_allocation_is_oldest_first(admin, make, session, staff_user):
    client, older, newer = two_invoices(make)
    response = admin.post(f"/admin/clients/{client.id}/payments/new", data={**PAYMENT, "amount": "350.00"})
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/clients/{client.id}"
    payment = session.scalar(select(Payment))
    assert (payment.amount_cents, payment.method, payment.reference, payment.received_on) == (
        35_000, "check", "CHK-2001", date(2026, 3, 15))
    assert payment.recorded_by_id == staff_user.id
    assert applied(session, payment) == {older.id: 30_000, newer.id: 5_000}
    assert (older.status, newer.status) == ("paid", "open")
    shown = page(admin.get(response.headers["Location"]))
    assert "Payment of $350.00 recorded; $350.00 applied to invoices." in shown


def test_custom_allocation(admin, make, session):
    client, older, newer = two_invoices(make)
    admin.post(f"/admin/clients/{client.id}/payments/new", data={
        **PAYMENT, "amount": "250", f"alloc-{older.id}": "", f"alloc-{newer.id}": "200.00"})
    payment = session.scalar(select(Payment))
    assert applied(session, payment) == {newer.id: 20_000}
    assert newer.status == "paid" and older.status == "open"
    assert ledger.credit_cents(session, client.id) == 5_000


def test_over_allocation_is_refused_and_nothing_saved(admin, make, session):
    client, older, newer = two_invoices(make)
    url = f"/admin/clients/{client.id}/payments/new"
    for data, message in [
        ({"amount": "100", f"alloc-{older.id}": "100", f"alloc-{newer.id}": "50"},
         "The allocations add up to more than the payment."),
        ({"amount": "500", f"alloc-{newer.id}": "250"}, f"That is more than is owed on {newer.number}."),
        ({"amount": "100", f"alloc-{newer.id}": "ten"}, "Enter an amount such as 125.00."),
        ({"amount": "abc"}, "'abc' is not an amount"),
        ({"amount": "0"}, "A payment must be more than zero."),
        ({"amount": "-5"}, "The amount cannot be negative."),
        ({"amount": ""}, "Enter the amount."),
        ({"amount": "100", "received_on": "2026-03-17"}, "A payment cannot be received in the future."),
        ({"amount": "100", "method": "bitcoin"}, "Not a valid choice."),
    ]:
        response = admin.post(url, data={**PAYMENT, **data})
        assert response.status_code == 200, data
        text = page(response)
        assert message in text, data
        assert 'name="amount"' in text  # the form is shown again with what was typed
    assert count(session, Payment) == 0 and count(session, Allocation) == 0
    assert (older.status, newer.status) == ("open", "open")


def test_fill_oldest_first_saves_nothing(admin, make, session):
    client, older, newer = two_invoices(make)
    response = admin.post(f"/admin/clients/{client.id}/payments/new",
                          data={**PAYMENT, "record": "", "suggest": "Fill oldest first", "amount": "320"})
    text = page(response)
    assert (value_of(text, f"alloc-{older.id}"), value_of(text, f"alloc-{newer.id}")) == ("300.00", "20.00")
    assert count(session, Payment) == 0


def test_overpayment_becomes_credit(admin, make, session):
    client, older, newer = two_invoices(make)
    response = admin.post(f"/admin/clients/{client.id}/payments/new", data={**PAYMENT, "amount": "600"})
    assert response.status_code == 302
    shown = page(admin.get(response.headers["Location"]))
    assert "$500.00 applied to invoices; $100.00 left as credit on the client's account." in shown
    assert re.search(r'id="stat-credit">.*?\$100\.00', shown, re.S)
    assert re.search(r'id="stat-balance">.*?\$0\.00', shown, re.S)


def test_payment_without_open_invoices_is_all_credit(admin, make, session):
    client = make.client()
    text = page(admin.get(f"/admin/clients/{client.id}/payments/new"))
    assert "the whole payment will be kept as credit" in text
    admin.post(f"/admin/clients/{client.id}/payments/new", data={**PAYMENT, "amount": "75"})
    assert ledger.credit_cents(session, client.id) == 7_500


def test_apply_credit(admin, make, session):
    client = make.client()
    make.payment(client, 15_000)  # nothing owed yet: all credit
    first, second = make.invoice(client, 10_000), make.invoice(client, 10_000)
    detail = page(admin.get(f"/admin/clients/{client.id}"))
    assert "Apply to open invoices" in detail

    response = admin.post(f"/admin/clients/{client.id}/apply-credit")
    assert response.status_code == 302
    assert "Applied $150.00 of credit to open invoices, oldest first." in page(admin.get(f"/admin/clients/{client.id}"))
    session.expire_all()
    assert (first.status, second.status) == ("paid", "open")
    assert ledger.credit_cents(session, client.id) == 0
    assert ledger.balance_of(session, second) == 5_000

    admin.post(f"/admin/clients/{client.id}/apply-credit")
    assert "Nothing to apply" in page(admin.get(f"/admin/clients/{client.id}"))


def test_refund_reopens_the_invoice(admin, make, session):
    client = make.client()
    invoice = make.invoice(client, 40_000)
    payment = make.payment(client, 40_000, reference="WIRE-1")
    assert invoice.status == "paid"

    missing = admin.post(f"/admin/payments/{payment.id}/refund", data={"amount": "400", "reason": ""})
    assert "Say why the money is refunded." in page(missing)
    too_much = admin.post(f"/admin/payments/{payment.id}/refund", data={"amount": "400.01", "reason": "Dup"})
    assert "That is more than is left to refund on this payment." in page(too_much)
    future = admin.post(f"/admin/payments/{payment.id}/refund",
                        data={"amount": "1", "reason": "Dup", "refunded_on": "2026-04-01"})
    assert "A refund cannot be dated in the future." in page(future)
    assert count(session, Refund) == 0

    response = admin.post(f"/admin/payments/{payment.id}/refund", data={"amount": "150", "reason": "Overbilled"})
    assert response.status_code == 302
    shown = page(admin.get(response.headers["Location"]))
    assert "Refund of $150.00 recorded. $150.00 was taken back off invoices, which are open again." in shown
    assert "Overbilled" in shown and "Partially refunded" in shown
    session.expire_all()
    assert invoice.status == "open" and ledger.balance_of(session, invoice) == 15_000
    refund = session.scalar(select(Refund))
    assert (refund.amount_cents, refund.reason, refund.refunded_on) == (15_000, "Overbilled", date(2026, 3, 16))
    reopened = row(page(admin.get(f"/admin/clients/{client.id}?tab=invoices")), "invoice", invoice.id)
    assert "Partially paid" in reopened and "$150.00" in reopened


def test_refund_of_unapplied_money_leaves_invoices_alone(admin, make, session):
    client = make.client()
    invoice = make.invoice(client, 10_000)
    payment = make.payment(client, 12_000)  # 20.00 left as credit
    admin.post(f"/admin/payments/{payment.id}/refund", data={"amount": "20", "reason": "Return the credit"})
    assert "Refund of $20.00 recorded." in page(admin.get(f"/admin/payments/{payment.id}"))
    session.expire_all()
    assert invoice.status == "paid" and ledger.credit_cents(session, client.id) == 0


def test_payments_list(admin, make):
    acme, globex = make.client("Acme Corp"), make.client("Globex")
    for n in range(26):
        make.payment(acme, 1_000 + n, reference=f"ACME-{n:02d}", received_on=date(2026, 2, 1))
    wire = make.payment(globex, 99_900, method="wire", reference="GLX-WIRE")

    first = page(admin.get("/admin/payments"))
    assert "Page 1 of 2 · 27 in all" in first
    newest = row(first, "payment", wire.id)  # newest received first
    assert "Globex" in newest and "Wire" in newest and "GLX-WIRE" in newest and "$999.00" in newest
    assert "Succeeded" in newest and "Mar 16, 2026" in newest
    assert first.index("GLX-WIRE") < first.index("ACME-")
    assert len(re.findall(r"<tr data-payment=", page(admin.get("/admin/payments?page=2")))) == 2
    only_globex = page(admin.get(f"/admin/payments?client={globex.id}"))
    assert "GLX-WIRE" in only_globex and "ACME-" not in only_globex
    only_acme = page(admin.get(f"/admin/payments?client={acme.id}"))
    assert "ACME-25" in only_acme and "GLX-WIRE" not in only_acme
    assert "GLX-WIRE" in page(admin.get("/admin/payments?q=glx")) and "ACME-" not in page(
        admin.get("/admin/payments?q=glx"))
    by_name = page(admin.get("/admin/payments?q=globe"))  # the client's name
    assert "GLX-WIRE" in by_name and "ACME-" not in by_name


def test_payment_detail(admin, make):
    client = make.client()
    invoice = make.invoice(client, 10_000)
    payment = make.payment(client, 15_000, method="ach", reference="ACH-5")
    text = page(admin.get(f"/admin/payments/{payment.id}"))
    assert re.search(r'id="applied">\$100\.00<', text) and re.search(r'id="unapplied">\$50\.00<', text)
    assert invoice.number in text and "ACH" in text and "ACH-5" in text
