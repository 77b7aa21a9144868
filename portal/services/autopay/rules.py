"""The MSP's autopay defaults, each client's enrollment and overrides, and the rules that result.

Rows store choices; portal.domain.autopay validates them (AutopayRules / ClientOverride / Incentive are only built
through validation), so a value the domain refuses is never saved. ``rules_for`` is what the charging engine asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.clock import now
from portal.domain import autopay as A
from portal.domain.errors import DomainError
from portal.models import AutopayEnrollment, AutopaySettings, Client

from ..locking import begin_write

INCENTIVE_NONE, INCENTIVE_ACTIVE, INCENTIVE_STOPPED = "none", "active", "stopped"


def autopay_settings(session: Session) -> AutopaySettings:
    """The singleton row, or unsaved defaults (reading settings never writes)."""
    row = session.get(AutopaySettings, 1)
    if row is None:
        row = AutopaySettings(id=1, timing=A.Timing.ON_DUE_DATE, offset_days=0, day_of_month=None, cap_cents=None,
                              scope=A.Scope.ALL, method_types="card,us_bank_account", use_fallback=True,
                              notice_days=3, retry_days="3,5,7", required_for_new_clients=False,
                              incentive_kind=A.IncentiveKind.NONE, discount_percent=None, stop_after_failures=3)
    return row


def _choice(kind, value, message: str):
    try:
        return kind(value)
    except ValueError:
        raise DomainError(message) from None


def parse_days(text: str) -> tuple[int, ...]:
    """'3, 5, 7' -> (3, 5, 7); the domain then checks the schedule itself."""
    parts = [p.strip() for p in (text or "").replace(";", ",").split(",") if p.strip()]
    if not all(re.fullmatch(r"[0-9]{1,3}", p) for p in parts):  # ASCII digits: str.isdigit() accepts '²'
        raise DomainError("Enter the retry schedule as whole numbers of days separated by commas, e.g. 3, 5, 7.")
    return tuple(int(p) for p in parts)


def _types(text: str) -> frozenset[str]:
    return frozenset(t for t in (text or "").split(",") if t)


def _schedule(timing: str, offset_days: int | None, day_of_month: int | None) -> A.ChargeSchedule:
    timing = _choice(A.Timing, timing, "Choose when autopay charges.")
    return A.ChargeSchedule(timing=timing,
                            days=(offset_days or 0) if timing in (A.Timing.DAYS_BEFORE_DUE,
                                                                  A.Timing.DAYS_AFTER_DUE) else 0,
                            day_of_month=day_of_month if timing is A.Timing.DAY_OF_MONTH else None)


def msp_rules(row: AutopaySettings) -> A.AutopayRules:
    return A.AutopayRules(schedule=_schedule(row.timing, row.offset_days, row.day_of_month), cap_cents=row.cap_cents,
                          scope=row.scope, method_types=_types(row.method_types), use_fallback=row.use_fallback,
                          notice_days=row.notice_days, retry_days=parse_days(row.retry_days),
                          required_for_new_clients=row.required_for_new_clients)


def incentive(row: AutopaySettings) -> A.Incentive:
    return A.Incentive(kind=row.incentive_kind, discount_percent=row.discount_percent,
                       stop_after_failures=row.stop_after_failures)


@dataclass(frozen=True)
class SettingsInput:
    """What the MSP's autopay settings form sends, already shape-checked by the form."""

    timing: str
    offset_days: int
    day_of_month: int | None
    cap_cents: int | None
    scope: str
    method_types: frozenset[str]
    use_fallback: bool
    notice_days: int
    retry_days: str
    required_for_new_clients: bool
    incentive_kind: str
    discount_percent: Decimal | None
    stop_after_failures: int
    next_increase_on: object = None
    next_increase_percent: Decimal | None = None


def update_settings(session: Session, data: SettingsInput) -> AutopaySettings:
    """Validate through the domain first: a refused value changes nothing."""
    schedule = _schedule(data.timing, data.offset_days, data.day_of_month)
    A.AutopayRules(schedule=schedule, cap_cents=data.cap_cents, scope=data.scope, method_types=data.method_types,
                   use_fallback=data.use_fallback, notice_days=data.notice_days,
                   retry_days=parse_days(data.retry_days), required_for_new_clients=data.required_for_new_clients)
    kind = _choice(A.IncentiveKind, data.incentive_kind, "Choose an autopay incentive.")
    A.Incentive(kind=kind, discount_percent=data.discount_percent if kind is A.IncentiveKind.DISCOUNT else None,
                stop_after_failures=data.stop_after_failures)
    if data.next_increase_percent is not None and not Decimal("0") < data.next_increase_percent <= Decimal("100"):
        raise DomainError("Enter the next price increase as a percentage between 0 and 100.")
    begin_write(session)
    row = autopay_settings(session)
    if row not in session:
        session.add(row)
    row.timing, row.offset_days, row.day_of_month = schedule.timing, schedule.days, schedule.day_of_month
    row.cap_cents, row.scope = data.cap_cents, A.Scope(data.scope)
    row.method_types = ",".join(sorted(data.method_types))
    row.use_fallback, row.notice_days = data.use_fallback, data.notice_days
    row.retry_days = ",".join(str(d) for d in parse_days(data.retry_days))
    row.required_for_new_clients = data.required_for_new_clients
    row.incentive_kind = kind
    row.discount_percent = data.discount_percent if kind is A.IncentiveKind.DISCOUNT else None
    row.stop_after_failures = data.stop_after_failures
    row.next_increase_on, row.next_increase_percent = data.next_increase_on, data.next_increase_percent
    row.updated_at = now()
    session.commit()
    return row


# --- per client ----------------------------------------------------------------------------------------------------


def enrollment(session: Session, client_id: int) -> AutopayEnrollment | None:
    return session.scalar(select(AutopayEnrollment).where(AutopayEnrollment.client_id == client_id))


def enrollment_for_update(session: Session, client_id: int) -> AutopayEnrollment:
    """The client's enrollment row, locked (created, unflushed-safe, when missing). Call after begin_write."""
    row = session.scalar(select(AutopayEnrollment).where(AutopayEnrollment.client_id == client_id)
                         .with_for_update())
    if row is None:
        row = AutopayEnrollment(client_id=client_id, enrolled=False, locked=False, has_cap_override=False,
                                incentive_state=INCENTIVE_NONE, left_reason="", updated_at=now())
        session.add(row)
        session.flush()
    return row


def override_of(row: AutopayEnrollment | None) -> A.ClientOverride:
    if row is None:
        return A.ClientOverride()
    inherit = A.INHERIT
    return A.ClientOverride(
        schedule=_schedule(row.timing, row.offset_days, row.day_of_month) if row.timing else inherit,
        cap_cents=row.cap_cents if row.has_cap_override else inherit,
        scope=A.Scope(row.scope) if row.scope else inherit,
        method_types=_types(row.method_types) if row.method_types else inherit,
        use_fallback=row.use_fallback if row.use_fallback is not None else inherit,
        notice_days=row.notice_days if row.notice_days is not None else inherit,
        retry_days=parse_days(row.retry_days) if row.retry_days else inherit,
        locked=row.locked,
    )


def rules_for(session: Session, client_id: int) -> A.AutopayRules:
    """The MSP's defaults with this client's overrides: what autopay does for the client."""
    return A.rules_for_client(msp_rules(autopay_settings(session)), override_of(enrollment(session, client_id)))


def is_enrolled(session: Session, client_id: int) -> bool:
    row = enrollment(session, client_id)
    return bool(row and row.enrolled)


@dataclass(frozen=True)
class OverrideInput:
    """A client's overrides; None in a field means "inherit the MSP's default"."""

    timing: str | None = None
    offset_days: int | None = None
    day_of_month: int | None = None
    cap_override: bool = False
    cap_cents: int | None = None
    scope: str | None = None
    notice_days: int | None = None
    retry_days: str | None = None
    use_fallback: bool | None = None
    locked: bool = False


def update_client_rules(session: Session, client: Client, data: OverrideInput) -> AutopayEnrollment:
    """Staff set a client's overrides and lock; validated as the client's whole rule set before saving."""
    inherit = A.INHERIT
    override = A.ClientOverride(
        schedule=_schedule(data.timing, data.offset_days, data.day_of_month) if data.timing else inherit,
        cap_cents=data.cap_cents if data.cap_override else inherit,
        scope=_choice(A.Scope, data.scope, "Choose which invoices autopay charges.") if data.scope else inherit,
        notice_days=data.notice_days if data.notice_days is not None else inherit,
        retry_days=parse_days(data.retry_days) if data.retry_days else inherit,
        use_fallback=data.use_fallback if data.use_fallback is not None else inherit,
        locked=data.locked,
    )
    A.rules_for_client(msp_rules(autopay_settings(session)), override)  # raises DomainError when it makes no sense
    begin_write(session)
    row = enrollment_for_update(session, client.id)
    if isinstance(override.schedule, A.ChargeSchedule):
        row.timing = override.schedule.timing
        row.offset_days, row.day_of_month = override.schedule.days, override.schedule.day_of_month
    else:
        row.timing = row.offset_days = row.day_of_month = None
    row.has_cap_override, row.cap_cents = data.cap_override, data.cap_cents if data.cap_override else None
    row.scope = data.scope or None
    row.notice_days = data.notice_days
    row.retry_days = ",".join(str(d) for d in parse_days(data.retry_days)) if data.retry_days else None
    row.use_fallback = data.use_fallback
    row.locked = data.locked
    row.updated_at = now()
    session.commit()
    return row
