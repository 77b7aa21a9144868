"""Late fees and duplicate bills in tests: published payment terms, a client's signed agreement written as a row
(the signing machinery has its own tests; what matters here is what the signed record says), plans and promises
written as rows as their own services leave them.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from decimal import Decimal

from portal.clock import now
from portal.domain import evidence
from portal.domain import terms as T
from portal.domain.dunning import PromiseStatus
from portal.domain.evidence import AgreementStatus
from portal.domain.plans import OfferStatus, PlanStatus
from portal.models import Agreement, PaymentPlan, PaymentPromise, PlanInvoice, PlanOffer, TermsVersion
from portal.services import settings as settings_service
from portal.services import terms
from portal.services.agreements import publish
from portal.web.runtime import runtime

LAW = "the laws of the State of Ohio; courts of Franklin County, Ohio"


def publish_terms(session, *, percent: str = "1.5", grace: str = "5", text: str = T.DEFAULT_TERMS_TEXT,
                  staff=None) -> TermsVersion:
    settings_service.update_settings(session, name="Acme IT", legal_name="Acme IT Services LLC",
                                     email="billing@acme.test")
    terms.save_draft(session, T.TERMS, text=text, staff=staff,
                     parameters={**T.DEFAULT_PARAMETERS, "late_fee_percent": percent, "grace_days": grace,
                                 "governing_law": LAW})
    return publish(session, runtime(), T.TERMS, staff=staff)


def sign_terms(session, client, version: TermsVersion, *, on: date,
               status: AgreementStatus = AgreementStatus.SIGNED) -> Agreement:
    """The client's signature on ``version`` on the day ``on``: the merged variables and document as signing
    stores them."""
    parameters = terms.version_parameters(version)
    variables = T.merge_variables(msp_legal_name="Acme IT Services LLC", msp_email="billing@acme.test",
                                  client_legal_name=client.legal_name, net_days=30, parameters=parameters,
                                  effective_date=on)
    text = evidence.merge(version.text, variables)
    signed_at = datetime(on.year, on.month, on.day, 16, tzinfo=UTC) if status != AgreementStatus.INVITED else None
    agreement = Agreement(kind=T.TERMS, reference=f"AGR-{secrets.token_hex(4).upper()}", client_id=client.id,
                          version_id=version.id, version_sha256=version.sha256, status=status,
                          merged_variables=evidence.canonical_json(variables).decode(), document_text=text,
                          document_html=evidence.to_html(text), document_sha256=evidence.sha256_hex(text.encode()),
                          chain_head="0" * 64, created_at=now(), signed_at=signed_at)
    session.add(agreement)
    session.commit()
    return agreement


def put_on_plan(session, client, invoices, *, status: PlanStatus = PlanStatus.CURRENT) -> PaymentPlan:
    """A plan over ``invoices`` as acceptance leaves it: offer, plan, and the covered-invoice rows."""
    stamp = now()
    offer = PlanOffer(public_id=secrets.token_urlsafe(16), client_id=client.id, status=OfferStatus.ACCEPTED,
                      proposed_by="msp", currency="USD", balance_cents=0, installments=3, frequency="monthly",
                      first_due_on=stamp.date(), apr_percent=Decimal(0), created_at=stamp)
    session.add(offer)
    session.flush()
    plan = PaymentPlan(reference=f"PLAN-{secrets.token_hex(3)}", client_id=client.id, offer_id=offer.id,
                       status=status, currency="USD", balance_cents=0, principal_cents=0, frequency="monthly",
                       grace_days=5, accepted_at=stamp)
    session.add(plan)
    session.flush()
    for invoice in invoices:
        session.add(PlanInvoice(plan_id=plan.id, invoice_id=invoice.id, role="covered",
                                current_key=invoice.id if status == PlanStatus.CURRENT else None))
    session.commit()
    return plan


def promise(session, client, invoice, *, on: date, status: PromiseStatus = PromiseStatus.OPEN,
            amount_cents: int = 1_000) -> PaymentPromise:
    row = PaymentPromise(client_id=client.id, invoice_id=invoice.id if invoice else None, amount_cents=amount_cents,
                         promised_on=on, status=status, created_at=now())
    session.add(row)
    session.commit()
    return row
