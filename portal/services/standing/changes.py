"""Standing changes, noticed by run-due: each client's computed standing against the one last announced
(``ClientStanding``; no row means good). A difference is recorded and announced as one ``standing.changed`` event
in the same commit, so two runs (or two nodes, under the step's lease) announce a change once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain.standing import Standing
from portal.domain.webhooks import EventType
from portal.models import Client, ClientStanding

from .. import outbound_webhooks
from ..locking import begin_write
from ..settings import get_settings
from .compute import as_json, for_clients

PAGE = 500


@dataclass(frozen=True)
class StandingChange:
    client_id: int
    before: Standing
    after: Standing


def record_changes(session: Session, today: date) -> list[StandingChange]:
    currency = get_settings(session).currency
    changes: list[StandingChange] = []
    after_id = 0
    while True:
        begin_write(session)
        clients = list(session.scalars(select(Client).where(Client.id > after_id).order_by(Client.id).limit(PAGE)))
        if not clients:
            session.commit()
            return changes
        after_id = clients[-1].id
        known = {row.client_id: row for row in session.scalars(
            select(ClientStanding).where(ClientStanding.client_id.in_([c.id for c in clients]))
            .with_for_update())}
        stamp = now()
        for view in for_clients(session, clients, today):
            row = known.get(view.client.id)
            before = Standing(row.standing) if row else Standing.GOOD
            after = view.result.standing
            if row is not None and before == after:
                row.reason, row.to_lift_cents = view.result.reason, view.result.to_lift_cents
                continue
            if row is None and after == Standing.GOOD:
                continue  # never announced and good: nothing to say
            if row is None:
                row = ClientStanding(client_id=view.client.id)
                session.add(row)
            row.standing, row.since = after, stamp
            row.reason, row.to_lift_cents = view.result.reason, view.result.to_lift_cents
            if before != after:
                body = as_json(view, currency)
                body.pop("client")
                outbound_webhooks.emit(session, EventType.STANDING_CHANGED,
                                       {**body, "previous_standing": before.value}, client=view.client)
                changes.append(StandingChange(view.client.id, before, after))
        session.commit()
