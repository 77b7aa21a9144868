"""Standing for one client or a page of clients, in a fixed number of queries."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Date, Select, bindparam, func, select
from sqlalchemy.orm import Session

from portal.domain import standing as S
from portal.domain.dunning import PromiseStatus
from portal.domain.invoices import OPEN
from portal.domain.notices import NoticeStatus
from portal.models import Agreement, Client, EnforcementNotice, Invoice, PaymentPromise, PlanInvoice

from ..agreements.invitations import last_signed_terms
from ..keysets import plain_rows, written
from ..ledger import applied_by_invoice, balance_expr
from .overrides import active_overrides

MAX_PAGE = 200


@dataclass(frozen=True)
class ClientStandingView:
    client: Client
    result: S.StandingResult
    #: while a remote-disable or equipment-recovery notice is live: the earliest day the signed terms permit disable
    disable_permitted_from: date | None = None


def _past_due_items(session: Session, client_ids: Sequence[int], today: date) -> dict[int, list[S.PastDueItem]]:
    """Open invoices due before today with a balance, per client, flagged when a current plan collects them.
    Only succeeded money is allocated, so a bank payment still processing leaves the balance in place."""
    rows = plain_rows(session, _PAST_DUE, {"client_ids": list(client_ids), "today": today})
    items: dict[int, list[S.PastDueItem]] = defaultdict(list)
    for invoice_id, client_id, number, due_date, cents, on_plan in rows:
        items[client_id].append(S.PastDueItem(invoice_id, number, due_date, int(cents), bool(on_plan)))
    return items


def _past_due_statement() -> Select:
    past_due = (Invoice.client_id.in_(bindparam("client_ids", expanding=True)), Invoice.status == written(OPEN),
                Invoice.due_date < bindparam("today", type_=Date()))
    applied = applied_by_invoice(*past_due)  # only the past-due invoices' rows are summed
    balance = balance_expr(applied)
    return (select(Invoice.id, Invoice.client_id, Invoice.number, Invoice.due_date, balance,
                   PlanInvoice.id.is_not(None))
            .outerjoin(applied, applied.c.invoice_id == Invoice.id)
            .outerjoin(PlanInvoice, PlanInvoice.current_key == Invoice.id)
            .where(*past_due, balance > 0))


# Built once, like the other statements below: every standing (a client's page, the help desk's API, the webhooks)
# reads them, and constructing one cost as much as running it.
_PAST_DUE = _past_due_statement()


def _open_promises(session: Session, client_ids: Sequence[int], today: date) -> dict[int, list[S.Promise]]:
    rows = plain_rows(session, _OPEN_PROMISES, {"client_ids": list(client_ids), "today": today})
    promises: dict[int, list[S.Promise]] = defaultdict(list)
    for client_id, invoice_id, cents in rows:
        promises[client_id].append(S.Promise(invoice_id, int(cents)))
    return promises


_OPEN_PROMISES = (select(PaymentPromise.client_id, PaymentPromise.invoice_id, PaymentPromise.amount_cents)
                  .where(PaymentPromise.client_id.in_(bindparam("client_ids", expanding=True)),
                         PaymentPromise.status == PromiseStatus.OPEN,
                         PaymentPromise.promised_on >= bindparam("today", type_=Date())))


def _terms_and_notices(session: Session, client_ids: Sequence[int]
                       ) -> tuple[dict[int, S.Thresholds], dict[int, date]]:
    """In one round trip: the thresholds of the terms each client signed last (its merged variables are what it
    agreed to), and the earliest "disable permitted from" of its live notices (portal.services.enforcement.notices)."""
    terms, disable = {}, {}
    for client_id, merged_variables, reference, disable_from in plain_rows(
            session, _TERMS_AND_NOTICES, {"client_ids": list(client_ids)}):
        if reference is not None:
            try:
                merged = json.loads(merged_variables or "{}")
            except ValueError:
                merged = {}
            terms[client_id] = S.thresholds_from(merged if isinstance(merged, dict) else {}, reference)
        if disable_from is not None:
            disable[client_id] = disable_from
    return terms, disable


_DISABLE_FROM = (select(func.min(EnforcementNotice.disable_permitted_on))
                 .where(EnforcementNotice.client_id == Client.id, EnforcementNotice.status == NoticeStatus.ISSUED)
                 .scalar_subquery())
_TERMS_AND_NOTICES = (select(Client.id, Agreement.merged_variables, Agreement.reference, _DISABLE_FROM)
                      .outerjoin(Agreement, Agreement.id == last_signed_terms(Client.id))
                      .where(Client.id.in_(bindparam("client_ids", expanding=True))))


def for_clients(session: Session, clients: Sequence[Client], today: date, *,
                overrides: Mapping[int, S.Override] | None = None) -> list[ClientStandingView]:
    """``overrides``: the overrides in force by client, when the caller has read them already (else read here)."""
    ids = [c.id for c in clients]
    if not ids:
        return []
    items = _past_due_items(session, ids, today)
    # a promise only covers past-due invoices: most clients have none, and need no read for it
    promises = _open_promises(session, list(items), today) if items else {}
    terms, disable = _terms_and_notices(session, ids)
    overrides = active_overrides(session, ids, today) if overrides is None else overrides
    default = S.thresholds_from(None)
    return [ClientStandingView(c, S.compute(items.get(c.id, []), promises.get(c.id, []), terms.get(c.id, default),
                                            today, overrides.get(c.id)), disable.get(c.id))
            for c in clients]


def by_external_id(session: Session, external_id: str, today: date) -> ClientStandingView | None:
    if not external_id or len(external_id) > 100:
        return None
    client = session.scalar(select(Client).where(Client.external_id == external_id))
    return for_clients(session, [client], today)[0] if client is not None else None


def for_client(session: Session, client: Client, today: date) -> S.StandingResult:
    return for_clients(session, [client], today)[0].result


def client_page(session: Session, *, after_id: int, limit: int, today: date
                ) -> tuple[list[ClientStandingView], int | None]:
    """Clients in id order after ``after_id`` (keyset pagination: stable while clients are added), and the id to
    continue after (None on the last page)."""
    limit = max(1, min(limit, MAX_PAGE))
    clients = list(session.scalars(select(Client).where(Client.id > after_id).order_by(Client.id).limit(limit + 1)))
    more = len(clients) > limit
    clients = clients[:limit]
    return for_clients(session, clients, today), (clients[-1].id if more else None)


def as_json(view: ClientStandingView, currency: str) -> dict:
    """The standing as the API answers it and webhooks carry it (documented in static/openapi.json)."""
    r, c = view.result, view.client
    return {
        "client": {"id": c.id, "external_id": c.external_id, "name": c.legal_name},
        "standing": r.standing.value,
        "on_hold": r.standing == S.Standing.ON_HOLD,
        "reason": r.reason,
        "basis": r.basis.value,
        "currency": currency,
        "past_due_cents": r.past_due_cents,
        "to_lift_cents": r.to_lift_cents,
        "to_good_cents": r.to_good_cents,
        "days_past_due": r.days_past_due,
        "hold_days": r.hold_days,
        "warning_days": r.warning_days,
        "hold_from": r.hold_from.isoformat() if r.hold_from else None,
        "override_ends_on": r.override_ends_on.isoformat() if r.override_ends_on else None,
        "terms_reference": r.terms_reference or None,
        "disable_permitted_from": view.disable_permitted_from.isoformat() if view.disable_permitted_from else None,
    }
