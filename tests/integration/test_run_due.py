"""`portal run-due` charging autopay invoices: the real services on a real database, the sandbox gateway.

Enrollment rows are written directly here (the enrollment side has its own tests): a saved method on the client's
gateway customer, an authorization agreement row, and autopay switched on.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from datetime import date

from sqlalchemy import select

from portal import db
from portal.clock import now
from portal.domain import authorizations as AUTH
from portal.domain import autopay as A
from portal.models import (
    Agreement,
    AutopayCharge,
    AutopayEnrollment,
    ChargeAttempt,
    DueRun,
    GatewayCustomer,
    SavedPaymentMethod,
)
from portal.services.agreements import rendered
from portal.services.due import run_due
from tests.payments_fixtures import *  # noqa: F403
from tests.payments_fixtures import invoice_state, read_outbox, runtime_for


def enroll(session, rt, client, pm: str = "pm_card_visa", *, fallback: str | None = None):
    gateway = rt.gateway
    customer = gateway.ensure_customer(client_ref=f"client-{client.id}", name=client.legal_name, email=None,
                                       existing_id=None)
    session.add(GatewayCustomer(client_id=client.id, gateway=gateway.name, customer_id=customer, created_at=now()))
    kind = AUTH.kind_for("card")
    version = rendered.current_version(session, kind)
    agreement = Agreement(kind=kind,
                          reference=secrets.token_hex(6), client_id=client.id, version_id=version.id,
                          version_sha256="0" * 64, status="signed", merged_variables="{}", document_text="",
                          document_html="", document_sha256="0" * 64, chain_head="0" * 64, created_at=now())
    session.add(agreement)
    session.flush()
    for method, default in ((pm, True), *(((fallback, False),) if fallback else ())):
        session.add(SavedPaymentMethod(client_id=client.id, gateway=gateway.name, customer_id=customer,
                                       method_id=method, method_type="card", brand="visa", last4="4242",
                                       exp_month=12, exp_year=2034, status=A.SavedMethodStatus.ACTIVE,
                                       is_default=default, is_fallback=not default, authorization_id=agreement.id,
                                       created_at=now()))
    session.add(AutopayEnrollment(client_id=client.id, enrolled=True, notice_days=0, updated_at=now()))
    session.commit()


@contextmanager
def worker_session(app):
    with app.app_context():
        yield db.session()


def run(app, session, rt):
    return run_due(session, rt, open_session=lambda: worker_session(app))


def test_an_invoice_due_today_is_charged_off_session_once(app, session, make, sandbox_gateway, outbox):
    rt = runtime_for(sandbox_gateway)
    client = make.client("Acme Dental LLC")
    make.contact(client, email="pat@acme-dental.test")
    invoice = make.invoice(client, 12_000, issue_date=date(2026, 3, 1), due_date=date(2026, 3, 16))
    enroll(session, rt, client)

    report = run(app, session, rt)
    again = run(app, session, rt)

    assert (report.charged, report.succeeded, again.charged) == (1, 1, 0)
    assert invoice_state(session, invoice) == ("paid", 0)
    [charge] = session.scalars(select(AutopayCharge)).all()
    attempt = session.get(ChargeAttempt, charge.attempt_id)
    assert (attempt.origin, attempt.status, attempt.charged_cents) == ("autopay", "succeeded", 12_000)
    assert len(session.scalars(select(DueRun)).all()) == 2
    assert any("Payment received" in m["Subject"] for m in read_outbox(outbox))
