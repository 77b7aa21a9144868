"""Helpers for the `portal run-due` tests: clients put on autopay, and runs of the real service.

Two ways onto autopay:
- ``enroll_through_portal``: the enrollment services (a SetupIntent through the gateway, the signed authorization),
  as a client does it. Used wherever the saved method must be a real one on the gateway customer (bank accounts
  need their mandate).
- ``enroll_rows``: the rows written directly (a method on the client's gateway customer, a stub signed
  authorization, autopay on) for what the enrollment side cannot produce by design: a card saved fine that the bank
  later reports lost, a card that wants 3-D Secure on every charge, or hundreds of clients at once.
"""

from __future__ import annotations

import gc
import secrets
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from portal import db
from portal.clock import now
from portal.domain import authorizations as AUTH
from portal.domain import autopay as A
from portal.gateways.payments import MandateAcceptance
from portal.models import (
    Agreement,
    AutopayEnrollment,
    Base,
    GatewayCustomer,
    PaymentRequest,
    PaymentRequestItem,
    SavedPaymentMethod,
)
from portal.services import agreements
from portal.services.agreements import rendered
from portal.services.agreements.chain import Meta
from portal.services.autopay import enrollment, methods
from portal.services.due import run_due

ACCEPTANCE = MandateAcceptance(ip_address="203.0.113.7", user_agent="Mozilla/5.0 (test)",
                               accepted_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
META = Meta(ip="203.0.113.7", user_agent="Mozilla/5.0 (test)", session_id="a" * 32)

#: What the fake (and Stripe) know each test method as.
CARD, BANK = A.CARD, A.BANK


def enroll_through_portal(session, rt, contact, token: str, *, role: str = A.DEFAULT, notice_days: int = 0
                          ) -> SavedPaymentMethod:
    """Save a method with the enrollment service (``token``: a confirmation token) and sign its authorization."""
    method = methods.save(session, rt, contact, methods.NewMethod(token=token, nonce=secrets.token_hex(12)),
                          ACCEPTANCE)
    doc = enrollment.document(session, rt, contact.client, method)
    signature = agreements.Signature(kind="typed", typed="Pat Payer")
    signed = enrollment.SignedBy(full_name="Pat Payer", title="Office Manager", authority_confirmed=True,
                                 consent_confirmed=True, signature=signature, shown_sha256=doc.sha256)
    enrollment.authorize(session, rt, contact, method.id, signed, meta=META, role=role)
    set_rules(session, contact.client_id, notice_days=notice_days)
    return session.get(SavedPaymentMethod, method.id)


def set_rules(session, client_id: int, **overrides) -> AutopayEnrollment:
    row = session.scalar(select(AutopayEnrollment).where(AutopayEnrollment.client_id == client_id))
    for name, value in overrides.items():
        setattr(row, name, value)
    session.commit()
    return row


def enroll_rows(session, rt, client, methods_: list[tuple[str, str]], *, notice_days: int = 0,
                exp: tuple[int, int] = (12, 2034), customer: str | None = None) -> str:
    """Autopay on with ``methods_`` [(gateway method id, card|us_bank_account)], the first the default, the second
    the fallback. Returns the gateway customer id."""
    gateway = rt.gateway
    customer = customer or gateway.ensure_customer(client_ref=f"client-{client.id}", name=client.legal_name,
                                                   email=None, existing_id=None)
    session.add(GatewayCustomer(client_id=client.id, gateway=gateway.name, customer_id=customer, created_at=now()))
    kind = AUTH.kind_for(methods_[0][1])
    version = rendered.current_version(session, kind)
    agreement = Agreement(kind=kind, reference=secrets.token_hex(6), client_id=client.id, version_id=version.id,
                          version_sha256="0" * 64, status="signed", merged_variables="{}", document_text="",
                          document_html="", document_sha256="0" * 64, chain_head="0" * 64, created_at=now())
    session.add(agreement)
    session.flush()
    for n, (method_id, method_type) in enumerate(methods_):
        card = method_type == CARD
        session.add(SavedPaymentMethod(
            client_id=client.id, gateway=gateway.name, customer_id=customer, method_id=method_id,
            method_type=method_type, brand="visa" if card else None, last4="4242" if card else "6789",
            bank_name=None if card else "STRIPE TEST BANK", exp_month=exp[0] if card else None,
            exp_year=exp[1] if card else None, status=A.SavedMethodStatus.ACTIVE, is_default=n == 0,
            is_fallback=n == 1, authorization_id=agreement.id, created_at=now()))
    session.add(AutopayEnrollment(client_id=client.id, enrolled=True, notice_days=notice_days, updated_at=now()))
    session.commit()
    return customer


def saved_on_gateway(rt, client, token: str) -> tuple[str, str]:
    """(customer id, saved method id): ``token`` (a confirmation token) saved on a new gateway customer of the
    client through the gateway's SetupIntent, as enrollment saves it, without signing anything."""
    customer = rt.gateway.ensure_customer(client_ref=f"client-{client.id}", name=client.legal_name, email=None,
                                          existing_id=None)
    result = rt.gateway.save_method(idempotency_key=f"test-setup-{secrets.token_hex(8)}", customer_id=customer,
                                    confirmation_token=token, mandate=ACCEPTANCE, metadata={})
    assert result.method is not None, result
    return customer, result.method.method_id


@contextmanager
def worker_session(app):
    with app.app_context():
        yield db.session()


def run(app, session, rt, **kwargs):
    """One `run-due`, the way the CLI runs it (worker threads with their own sessions)."""
    return run_due(session, rt, open_session=lambda: worker_session(app), **kwargs)


@contextmanager
def charge_rows_read_back():
    """The payment requests and items the block read back by relationship (class names, in order): a charge's own
    claim holds them, so booking its answer should read none. A full collection runs before every statement and
    after every re-read row (a lock's ``populate_existing`` resets the row's relationships): whatever only the
    session's weak identity map holds is gone the moment it could be."""
    read_back: list[str] = []

    def collect(*_args):
        gc.collect()

    def collect_then_count(state):
        collect()
        mapper = state.bind_arguments.get("mapper")
        if state.is_relationship_load and mapper is not None and mapper.class_ in (PaymentRequest, PaymentRequestItem):
            read_back.append(mapper.class_.__name__)

    gc.freeze()  # what exists before the block is never collected, so each collection only walks the block's objects
    event.listen(Session, "do_orm_execute", collect_then_count)
    event.listen(Base, "refresh", collect, propagate=True)
    try:
        yield read_back
    finally:
        event.remove(Session, "do_orm_execute", collect_then_count)
        event.remove(Base, "refresh", collect)
        gc.unfreeze()
