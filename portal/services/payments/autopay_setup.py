"""What the collection engine needs to know about a client on autopay, read from the enrollment side's rows
(portal/models/autopay.py): its rules (the MSP's defaults with its overrides), its saved methods in the order the
client named them, and whether its incentive applies. Read once per run, before any gateway call."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.domain import autopay as policy
from portal.domain.autopay import SavedMethodStatus
from portal.models import AutopayEnrollment, GatewayCustomer, SavedPaymentMethod

from ..autopay import methods, rules
from ..keysets import among


@dataclass(frozen=True)
class MethodOnFile:
    row_id: int
    saved: policy.SavedMethod  # what the domain decides with
    label: str  # "Visa ending 4242", for emails and the run log


@dataclass(frozen=True)
class ClientAutopay:
    client_id: int
    customer_id: str | None  # the gateway customer the methods are saved on
    rules: policy.AutopayRules
    methods: tuple[MethodOnFile, ...]
    incentive: policy.Incentive | None  # None: no incentive (any more) for this client

    def method(self, method_id: str) -> MethodOnFile | None:
        return next((m for m in self.methods if m.saved.method_id == method_id), None)


def enrolled_clients(session: Session, gateway_name: str, *, client_ids: list[int] | None = None
                     ) -> list[ClientAutopay]:
    """Every client with autopay on (or those of ``client_ids``), with what charging them needs."""
    settings = rules.autopay_settings(session)
    msp = rules.msp_rules(settings)
    query = select(AutopayEnrollment).where(AutopayEnrollment.enrolled.is_(True)).order_by(AutopayEnrollment.client_id)
    if client_ids is not None:
        query = query.where(among(session, AutopayEnrollment.client_id, client_ids))
    enrollments = list(session.scalars(query))
    ids = [e.client_id for e in enrollments]
    saved: dict[int, list[SavedPaymentMethod]] = {}
    for row in session.scalars(select(SavedPaymentMethod).where(
            among(session, SavedPaymentMethod.client_id, ids), SavedPaymentMethod.gateway == gateway_name,
            SavedPaymentMethod.status != SavedMethodStatus.REMOVED).order_by(SavedPaymentMethod.id)):
        saved.setdefault(row.client_id, []).append(row)
    customers = {client_id: customer for client_id, customer in session.execute(
        select(GatewayCustomer.client_id, GatewayCustomer.customer_id).where(
            among(session, GatewayCustomer.client_id, ids), GatewayCustomer.gateway == gateway_name))}
    return [ClientAutopay(
        client_id=e.client_id, customer_id=customers.get(e.client_id),
        rules=policy.rules_for_client(msp, rules.override_of(e)),
        methods=tuple(on_file(m) for m in saved.get(e.client_id, [])),
        incentive=rules.incentive(settings) if e.incentive_state == rules.INCENTIVE_ACTIVE else None,
    ) for e in enrollments]


def on_file(row: SavedPaymentMethod) -> MethodOnFile:
    [saved] = methods.domain_methods([row])
    return MethodOnFile(row.id, saved, methods.label(row))
