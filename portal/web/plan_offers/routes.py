"""Plan offers: the MSP's plan policy, offers and counters from the admin side, the client's self-service options,
proposals, answers and signing. ``bp`` lives here; the staff and client views register on it from admin.py and
client.py. The schedule preview (JSON for the page's script, the same figures the no-script "Preview" button
shows) is a POST with the form's CSRF token that writes nothing.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask_login import current_user

from portal import db
from portal.clock import today
from portal.domain.errors import DomainError
from portal.domain.money import format_money
from portal.services.errors import NotFound
from portal.services.plans import offers
from portal.services.plans.offers import Draft

bp = Blueprint("plan_offers", __name__)


def preview_json(draft: Draft | None, error: str = ""):
    """The schedule as the preview script draws it (amounts already formatted: one way of writing money)."""
    if draft is None:
        return jsonify({"ok": False, "error": error}), 200
    schedule, currency = draft.schedule, draft.currency

    def money(cents: int) -> str:
        return format_money(cents, currency)

    return jsonify({
        "ok": True, "balance": money(draft.balance_cents), "down_payment": money(draft.terms.down_payment_cents),
        "principal": money(schedule.principal_cents), "total_interest": money(schedule.total_interest_cents),
        "total_cost": money(schedule.total_cost_cents), "installments": len(schedule.rows),
        "apr": f"{draft.terms.apr_percent.normalize():f}%", "outside_policy": draft.outside_policy,
        "invoices": [{"number": c.invoice.number, "balance": money(c.balance_cents)} for c in draft.covered],
        "rows": [{"number": r.number, "due_on": r.due_on.strftime("%b %-d, %Y"), "amount": money(r.amount_cents),
                  "interest": money(r.interest_cents), "principal": money(r.principal_cents),
                  "balance_after": money(r.balance_after_cents)} for r in schedule.rows],
    })


def try_draft(session, client_id: int, choice_fn, **kwargs) -> tuple[Draft | None, str]:
    """The draft, or the refusal's message (the preview shows it instead of the table). Writes nothing."""
    try:
        return offers.draft(session, client_id, choice_fn(), **kwargs), ""
    except NotFound:
        raise
    except DomainError as e:
        session.rollback()
        return None, str(e)


@bp.app_context_processor
def _plan_offer_helpers():
    """``plan_banner(overdue_cents)`` for the client's home page and ``plan_proposals_waiting()`` for the admin
    pages: called only by the templates that show them, so other pages pay nothing."""

    def plan_banner(overdue_cents: int):
        if not (current_user.is_authenticated and current_user.is_contact):
            return None
        from portal.services.plans import banner

        return banner.for_client(db.session(), current_user.client_id, today(), overdue_cents=overdue_cents)

    def plan_proposals_waiting() -> int:
        if not (current_user.is_authenticated and current_user.is_staff):
            return 0
        return current_user.proposals_waiting  # read with the staff user (Identity)

    def client_plan_offers(client_id: int):
        return offers.latest_in_threads(db.session(), client_id)

    return {"plan_banner": plan_banner, "plan_proposals_waiting": plan_proposals_waiting,
            "client_plan_offers": client_plan_offers}


from . import admin, client  # noqa: E402,F401  (the views register on bp)
