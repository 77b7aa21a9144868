"""Autopay rules: when an invoice is charged by itself, how much, on which saved method, and what autopay earns.

Pure: standard library only; ``today`` is always an argument. Amounts are integer cents, rates Decimal percentages,
rounded once (portal.domain.money). The services that charge (``portal run-due``) ask these functions and record
the answer; nothing here knows about rows, gateways or email.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from decimal import Decimal
from enum import Enum, StrEnum
from typing import TypeVar

from . import dates
from .declines import BANK, CARD, DEFAULT_RETRY_DAYS, GiveUp, RetryStep, check_retry_schedule
from .errors import DomainError, InvalidAmount
from .money import check_amount, format_money, percent_of, round_half_up
from .payments import GATEWAY_MINIMUM_CENTS

_E = TypeVar("_E", bound=StrEnum)

# --- when to charge ---------------------------------------------------------------------------------------------------


class Timing(StrEnum):
    ON_DUE_DATE = "on_due_date"
    DAYS_BEFORE_DUE = "days_before_due"
    DAYS_AFTER_DUE = "days_after_due"
    DAY_OF_MONTH = "day_of_month"


#: Charging more than a month before the due date takes away the payment terms the client signed; charging more than
#: a month after leaves the invoice overdue (and the MSP's reminders silenced) for too long.
MAX_OFFSET_DAYS = 30


@dataclass(frozen=True)
class ChargeSchedule:
    """When an invoice is charged, relative to its due date.

    A fixed day of the month may be 1 to 31: 31 means "the last day of every month" (clamped to 30, 29 or 28),
    which MSPs that bill at month end ask for; allowing only 1 to 28 would forbid it. The charge is the first such
    day on or after the due date, so a fixed day never charges before the terms the client signed allow.
    """

    timing: Timing = Timing.ON_DUE_DATE
    days: int = 0  # for DAYS_BEFORE_DUE / DAYS_AFTER_DUE
    day_of_month: int | None = None  # for DAY_OF_MONTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "timing", _member(Timing, self.timing, "Choose when autopay charges."))
        _check_int(self.days, "The number of days")
        if self.timing in (Timing.DAYS_BEFORE_DUE, Timing.DAYS_AFTER_DUE):
            if not 1 <= self.days <= MAX_OFFSET_DAYS:
                word = "before" if self.timing is Timing.DAYS_BEFORE_DUE else "after"
                raise DomainError(f"Charge between 1 and {MAX_OFFSET_DAYS} days {word} the due date "
                                  f"(or choose 'on the due date').")
        elif self.days:
            raise DomainError("A number of days only applies to charging before or after the due date.")
        if self.timing is Timing.DAY_OF_MONTH:
            if self.day_of_month is None:
                raise DomainError("Choose the day of the month to charge on.")
            _check_int(self.day_of_month, "The day of the month")
            if not 1 <= self.day_of_month <= 31:
                raise DomainError("The day of the month must be between 1 and 31 (31: the last day of each month).")
        elif self.day_of_month is not None:
            raise DomainError("A day of the month only applies to charging on a fixed day of the month.")

    def charge_date(self, due_date: date) -> date:
        """The day autopay charges an invoice due on ``due_date``."""
        if self.timing is Timing.DAYS_BEFORE_DUE:
            return dates.add_days(due_date, -self.days, "The charge date")
        if self.timing is Timing.DAYS_AFTER_DUE:
            return dates.add_days(due_date, self.days, "The charge date")
        if self.timing is Timing.DAY_OF_MONTH and self.day_of_month is not None:  # always set (__post_init__)
            return next_day_of_month(due_date, self.day_of_month)
        return dates.check_supported(due_date, "The due date")

    def describe(self) -> str:
        """The schedule in the words the authorization and the pre-charge notice use."""
        if self.timing is Timing.DAYS_BEFORE_DUE:
            return f"{_days(self.days)} before each invoice's due date"
        if self.timing is Timing.DAYS_AFTER_DUE:
            return f"{_days(self.days)} after each invoice's due date"
        if self.timing is Timing.DAY_OF_MONTH:
            if self.day_of_month == 31:
                return "on the last day of the month, on or after each invoice's due date"
            shorter = " (or the month's last day, if shorter)" if (self.day_of_month or 0) > 28 else ""
            day = _ordinal(self.day_of_month or 0)
            return f"on the {day} day of the month{shorter}, on or after each invoice's due date"
        return "on each invoice's due date"


def clamp_day(year: int, month: int, day: int) -> date:
    """``day`` of that month, or the month's last day when the month is shorter (31 -> 30 April, 28/29 February)."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def next_day_of_month(on_or_after: date, day: int) -> date:
    """The first date on or after ``on_or_after`` that is the (clamped) ``day`` of its month."""
    dates.check_supported(on_or_after)
    candidate = clamp_day(on_or_after.year, on_or_after.month, day)
    if candidate >= on_or_after:
        return candidate
    year, month = (on_or_after.year + 1, 1) if on_or_after.month == 12 else (on_or_after.year, on_or_after.month + 1)
    return dates.check_supported(clamp_day(year, month, day), "The charge date")


# --- the rules: an MSP default and per-client overrides ---------------------------------------------------------------


class Scope(StrEnum):
    ALL = "all"
    #: An invoice on a payment plan is collected by its installments; the client may not want autopay on both.
    NOT_ON_PLAN = "not_on_plan"


METHOD_TYPES = frozenset({CARD, BANK})
#: A notice has to arrive before the money moves; a month ahead is the most any bank or card network asks for.
MAX_NOTICE_DAYS = 30


@dataclass(frozen=True)
class AutopayRules:
    """What autopay does for a client: the MSP's defaults with that client's overrides applied.

    Built only through validation (``__post_init__``), so a rules object that exists is one that makes sense.
    """

    schedule: ChargeSchedule = field(default_factory=ChargeSchedule)
    #: Invoices owing more than this need an admin's approval (or are left for the client to pay by hand): a
    #: surprise five-figure debit is how autopay clients are lost. None: no cap.
    cap_cents: int | None = None
    scope: Scope = Scope.ALL
    #: The kinds of saved method autopay may charge (an MSP may refuse cards to avoid card fees).
    method_types: frozenset[str] = METHOD_TYPES
    #: Whether a hard decline on the client's default method moves on to their fallback method.
    use_fallback: bool = True
    #: Days between the pre-charge notice and the charge; 0 sends none.
    notice_days: int = 3
    retry_days: tuple[int, ...] = DEFAULT_RETRY_DAYS
    #: The client cannot switch autopay off themselves; they have to ask the MSP.
    locked: bool = False
    #: New clients' onboarding is not complete until a method is authorized for autopay. An MSP-wide rule.
    required_for_new_clients: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, ChargeSchedule):
            raise DomainError("Choose when autopay charges.")
        if self.cap_cents is not None:
            _check_int(self.cap_cents, "The autopay limit")
            if self.cap_cents < GATEWAY_MINIMUM_CENTS:
                raise InvalidAmount(f"The autopay limit must be at least {format_money(GATEWAY_MINIMUM_CENTS)} "
                                    "(leave it empty for no limit).")
            check_amount(self.cap_cents, "The autopay limit")
        object.__setattr__(self, "scope", _member(Scope, self.scope, "Choose which invoices autopay charges."))
        kinds = frozenset(self.method_types)
        if not kinds:
            raise DomainError("Allow at least one kind of payment method for autopay.")
        if not kinds <= METHOD_TYPES:
            raise DomainError("Autopay can charge cards and US bank accounts only.")
        object.__setattr__(self, "method_types", kinds)
        _check_int(self.notice_days, "The notice period")
        if not 0 <= self.notice_days <= MAX_NOTICE_DAYS:
            raise DomainError(f"Send the pre-charge notice between 0 and {MAX_NOTICE_DAYS} days before the charge.")
        object.__setattr__(self, "retry_days", check_retry_schedule(self.retry_days))


class _Inherit(Enum):
    INHERIT = "inherit"


#: An override field left at INHERIT takes the MSP's default (None is a real value: "no cap for this client").
INHERIT = _Inherit.INHERIT


@dataclass(frozen=True)
class ClientOverride:
    """One client's departures from the MSP's defaults. Requiring autopay for new clients is MSP-wide, not here."""

    schedule: ChargeSchedule | _Inherit = INHERIT
    cap_cents: int | None | _Inherit = INHERIT
    scope: Scope | _Inherit = INHERIT
    method_types: frozenset[str] | _Inherit = INHERIT
    use_fallback: bool | _Inherit = INHERIT
    notice_days: int | _Inherit = INHERIT
    retry_days: tuple[int, ...] | _Inherit = INHERIT
    locked: bool | _Inherit = INHERIT


def rules_for_client(msp: AutopayRules, override: ClientOverride | None = None) -> AutopayRules:
    """The MSP's defaults with the client's overrides on top, validated as a whole."""
    if override is None:
        return msp
    changes = {f.name: getattr(override, f.name) for f in fields(override)}
    return replace(msp, **{name: value for name, value in changes.items() if value is not INHERIT})


def check_can_turn_off(rules: AutopayRules, msp_name: str = "your provider") -> None:
    """A client leaving autopay: refused while the MSP has locked it (the MSP can still turn it off)."""
    if rules.locked:
        raise DomainError(f"Autopay is locked on your account. Contact {msp_name} to change it.")


# --- is this invoice charged today? -----------------------------------------------------------------------------------


class Skip(StrEnum):
    """Why an invoice was not charged on a run: one line each in the run log."""

    NOTHING_OWED = "nothing_owed"
    PAYMENT_IN_FLIGHT = "payment_in_flight"
    DISPUTED = "disputed"
    ON_PAYMENT_PLAN = "on_payment_plan"
    HELD_AS_DUPLICATE = "held_as_duplicate"  # a likely duplicate bill the admin has not confirmed yet
    OVER_CAP = "over_cap"
    BELOW_GATEWAY_MINIMUM = "below_gateway_minimum"
    NOT_DUE_YET = "not_due_yet"
    NOTICE_PENDING = "notice_pending"  # the pre-charge notice goes now; the charge waits the notice period
    RETRY_SCHEDULED = "retry_scheduled"
    AWAITING_CLIENT = "awaiting_client"  # the bank wants the client to approve the payment on-session
    GAVE_UP = "gave_up"  # declined, retries used up: the client was told and pays by hand
    NO_USABLE_METHOD = "no_usable_method"  # reported by the charging service from usable_methods()


#: Skips after which autopay still intends to collect the invoice: no overdue reminder while one of these holds.
_STILL_SCHEDULED = frozenset({Skip.NOT_DUE_YET, Skip.NOTICE_PENDING, Skip.RETRY_SCHEDULED})


@dataclass(frozen=True)
class DueItem:
    """An invoice (or, with plans, an installment) as autopay sees it."""

    due_date: date
    balance_cents: int
    in_flight_cents: int = 0  # money already on its way (a bank payment clearing, an unfinished charge)
    on_plan: bool = False
    disputed: bool = False
    approved_over_cap: bool = False  # an admin approved charging it although it is over the cap
    notice_sent_on: date | None = None


@dataclass(frozen=True)
class ChargeDecision:
    skip: Skip | None
    charge_on: date | None = None  # the day it is (or was, or would be) charged
    notice_on: date | None = None  # when the pre-charge notice is due, if it has not been sent
    charge_cents: int = 0
    discount_cents: int = 0

    @property
    def charge_now(self) -> bool:
        return self.skip is None

    @property
    def autopay_will_charge(self) -> bool:
        """Overdue reminders stay quiet while this holds: the client already agreed to be charged."""
        return self.skip is None or self.skip in _STILL_SCHEDULED


def charge_decision(item: DueItem, rules: AutopayRules, today: date, *, discount_percent: Decimal | None = None,
                    retry: RetryStep | None = None) -> ChargeDecision:
    """Whether autopay charges ``item`` today, for how much and with what discount, or why not.

    A charge date already past still charges today: a missed cron run catches up instead of leaving the invoice
    behind. No first charge goes out before its pre-charge notice has had ``notice_days`` to arrive, so an invoice
    issued late is charged later rather than without warning. ``retry``: the outcome of ``declines.next_retry``
    when an earlier attempt on this invoice failed (retries are announced by the failure email, not a notice).
    """
    payable = item.balance_cents - max(item.in_flight_cents, 0)
    if item.balance_cents <= 0:
        return ChargeDecision(Skip.NOTHING_OWED)
    if payable <= 0:
        return ChargeDecision(Skip.PAYMENT_IN_FLIGHT)
    if item.disputed:
        return ChargeDecision(Skip.DISPUTED)
    if item.on_plan and rules.scope is Scope.NOT_ON_PLAN:
        return ChargeDecision(Skip.ON_PAYMENT_PLAN)
    if rules.cap_cents is not None and payable > rules.cap_cents and not item.approved_over_cap:
        return ChargeDecision(Skip.OVER_CAP)
    split = split_discount(payable, discount_percent) if discount_percent else ChargeSplit(0, payable)
    if split.charge_cents < GATEWAY_MINIMUM_CENTS:
        return ChargeDecision(Skip.BELOW_GATEWAY_MINIMUM)
    amounts = {"charge_cents": split.charge_cents, "discount_cents": split.discount_cents}

    if retry is not None:
        if retry.gave_up is GiveUp.AWAITING_CLIENT:
            return ChargeDecision(Skip.AWAITING_CLIENT)
        if retry.retry_on is None:
            return ChargeDecision(Skip.GAVE_UP)
        if retry.retry_on > today:
            return ChargeDecision(Skip.RETRY_SCHEDULED, retry.retry_on, **amounts)
        return ChargeDecision(None, retry.retry_on, **amounts)

    charge_on = rules.schedule.charge_date(item.due_date)
    notice_on = None
    if rules.notice_days:
        sent = item.notice_sent_on
        earliest = dates.add_days(sent or today, rules.notice_days, "The charge date")
        charge_on = max(charge_on, earliest)
        if sent is None:
            notice_on = notice_date(charge_on, rules.notice_days)
    if charge_on > today:
        waiting_for_notice = notice_on is not None and notice_on <= today
        return ChargeDecision(Skip.NOTICE_PENDING if waiting_for_notice else Skip.NOT_DUE_YET, charge_on, notice_on,
                              **amounts)
    return ChargeDecision(None, charge_on, **amounts)


def notice_date(charge_on: date, notice_days: int) -> date:
    """The pre-charge notice goes ``notice_days`` before the charge, listing what will be charged and when."""
    return dates.add_days(charge_on, -notice_days, "The notice date")


# --- saved methods ----------------------------------------------------------------------------------------------------

DEFAULT, FALLBACK, OTHER = "default", "fallback", "other"
EXPIRING_WITHIN_DAYS = 30


class Expiry(StrEnum):
    VALID = "valid"
    EXPIRING = "expiring"
    EXPIRED = "expired"


def card_last_valid_day(exp_month: int, exp_year: int) -> date:
    """Cards are good through the last day of their expiry month."""
    _check_int(exp_month, "The expiry month")
    _check_int(exp_year, "The expiry year")
    if not 1 <= exp_month <= 12:
        raise DomainError("The expiry month must be between 1 and 12.")
    if not dates.EARLIEST.year <= exp_year <= dates.LATEST.year:
        raise DomainError("That expiry year is not a real one.")
    return clamp_day(exp_year, exp_month, 31)


def card_expiry(exp_month: int, exp_year: int, today: date, *, within_days: int = EXPIRING_WITHIN_DAYS) -> Expiry:
    """Expired, expiring within ``within_days`` (the client is emailed once to update it), or valid."""
    last = card_last_valid_day(exp_month, exp_year)
    if last < today:
        return Expiry.EXPIRED
    if (last - today).days < within_days:
        return Expiry.EXPIRING
    return Expiry.VALID


@dataclass(frozen=True)
class SavedMethod:
    method_id: str
    method_type: str
    role: str = OTHER  # the client names a default and optionally a fallback in the signed authorization
    verified: bool = True  # an ACH account awaiting microdeposit verification is never charged
    authorized: bool = True  # has a signed, unrevoked autopay authorization
    exp_month: int | None = None
    exp_year: int | None = None
    retired: bool = False  # hard-declined: it stays listed, but autopay no longer uses it


def usable_methods(methods: Sequence[SavedMethod], rules: AutopayRules, charge_on: date) -> list[SavedMethod]:
    """The methods to try, in order: the client's default, then (if the rules allow) their fallback.

    The order is the client's own because they named both in the authorization they signed; the MSP decides which
    kinds are allowed and whether a failed default falls back. A card that will have expired by the charge date
    is left out rather than declined at the gateway. Empty: the run log says ``Skip.NO_USABLE_METHOD``.
    """
    roles = (DEFAULT, FALLBACK) if rules.use_fallback else (DEFAULT,)
    usable = []
    for role in roles:
        for method in methods:
            if method.role == role and _can_charge(method, rules, charge_on):
                usable.append(method)
    return usable


def _can_charge(method: SavedMethod, rules: AutopayRules, charge_on: date) -> bool:
    if method.retired or not method.verified or not method.authorized:
        return False
    if method.method_type not in rules.method_types:
        return False
    if method.method_type == CARD and method.exp_month is not None and method.exp_year is not None:
        return card_expiry(method.exp_month, method.exp_year, charge_on, within_days=0) is not Expiry.EXPIRED
    return True


# --- incentives -------------------------------------------------------------------------------------------------------


class IncentiveKind(StrEnum):
    NONE = "none"
    DISCOUNT = "discount"  # a percentage off every invoice charged by autopay
    RATE_LOCK = "rate_lock"  # the client's next scheduled price increase is waived


#: An autopay discount above this is almost certainly a typing mistake (50 for 5.0), and would cost more than the
#: card fees autopay saves.
MAX_DISCOUNT_PERCENT = Decimal("25")
MAX_FAILURES_BEFORE_STOP = 10


@dataclass(frozen=True)
class Incentive:
    kind: IncentiveKind = IncentiveKind.NONE
    discount_percent: Decimal | None = None
    #: The incentive stops when the client's autopay method fails this many charges in a row.
    stop_after_failures: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _member(IncentiveKind, self.kind, "Choose an autopay incentive."))
        if self.kind is IncentiveKind.DISCOUNT:
            rate = self.discount_percent
            if rate is None or not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
                raise InvalidAmount("Enter the autopay discount as a percentage above 0.")
            if rate > MAX_DISCOUNT_PERCENT:
                raise InvalidAmount(f"The autopay discount cannot be more than {MAX_DISCOUNT_PERCENT}%.")
            if rate != rate.quantize(Decimal("0.01")):
                raise InvalidAmount("Use at most two decimals for the autopay discount.")
        elif self.discount_percent is not None:
            raise DomainError("A discount percentage only applies to the discount incentive.")
        _check_int(self.stop_after_failures, "The number of failures")
        if not 1 <= self.stop_after_failures <= MAX_FAILURES_BEFORE_STOP:
            raise DomainError(f"Stop the incentive after 1 to {MAX_FAILURES_BEFORE_STOP} failed charges in a row.")


@dataclass(frozen=True)
class ChargeSplit:
    discount_cents: int
    charge_cents: int


def split_discount(balance_cents: int, percent: Decimal) -> ChargeSplit:
    """The autopay discount on the balance being charged, and what is charged: they add up to the balance exactly.

    The discount is computed on what is charged now (not the invoice total), so a part-paid invoice is not
    discounted twice; it is rounded once, half-up, and never exceeds the balance.
    """
    if balance_cents < 0:
        raise InvalidAmount("Cannot discount a negative balance.")
    discount = min(percent_of(balance_cents, percent), balance_cents)
    return ChargeSplit(discount, balance_cents - discount)


def yearly_savings(incentive: Incentive, *, billed_cents: int, months_of_history: int,
                   next_increase_percent: Decimal | None = None) -> int | None:
    """What autopay would have saved this client in a year, shown before they enroll.

    ``billed_cents`` is what the client was billed over the last ``months_of_history`` months (at most the last
    12). With a full year that is the figure; with less it is annualised (billed x 12 / months), rounded once.
    A rate lock saves the next increase on that yearly figure, when the MSP has said how large it is. None: there is
    nothing honest to show (no history, no incentive, or an increase of unknown size).
    """
    if billed_cents < 0:
        raise InvalidAmount("Billed totals cannot be negative.")
    _check_int(months_of_history, "The months of history")
    if months_of_history <= 0 or incentive.kind is IncentiveKind.NONE:
        return None
    months = min(months_of_history, 12)
    rate = incentive.discount_percent if incentive.kind is IncentiveKind.DISCOUNT else next_increase_percent
    if rate is None:  # a rate lock whose increase the MSP has not announced
        return None
    return round_half_up(Decimal(billed_cents) * 12 / months * rate / 100)


def months_of_history(first_invoice_on: date | None, today: date) -> int:
    """Whole months of billing to average over, counting the current month, at most 12."""
    if first_invoice_on is None or first_invoice_on > today:
        return 0
    months = (today.year - first_invoice_on.year) * 12 + today.month - first_invoice_on.month + 1
    return min(months, 12)


class IncentiveStop(StrEnum):
    LEFT_AUTOPAY = "left_autopay"
    METHOD_FAILING = "method_failing"


def incentive_stop(incentive: Incentive, *, on_autopay: bool, failures_in_a_row: int) -> IncentiveStop | None:
    """Why the incentive ends now (the client is told), or None while it still applies."""
    if incentive.kind is IncentiveKind.NONE:
        return None
    if not on_autopay:
        return IncentiveStop.LEFT_AUTOPAY
    if failures_in_a_row >= incentive.stop_after_failures:
        return IncentiveStop.METHOD_FAILING
    return None


def waived_increase(increase_dates: Sequence[date], *, locked_on: date) -> date | None:
    """The one price increase a rate lock waives: the first scheduled on or after the day the lock was granted."""
    upcoming = sorted(d for d in increase_dates if d >= locked_on)
    return upcoming[0] if upcoming else None


# --- helpers ----------------------------------------------------------------------------------------------------------


def _member(kind: type[_E], value: object, message: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        raise DomainError(message) from None


def _check_int(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DomainError(f"{what} must be a whole number.")


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --- statuses of the autopay rows (portal.models.autopay) --------------------------------------------------------


class SavedMethodStatus(StrEnum):
    """A saved card or bank account: pending_verification (microdeposits to read back; shown, never charged) ->
    active -> removed (detached) or blocked (a hard decline or bank return retired it)."""

    PENDING_VERIFICATION = "pending_verification"
    ACTIVE = "active"
    REMOVED = "removed"
    BLOCKED = "blocked"


class OnboardingStatus(StrEnum):
    """A "checkless from day one" invitation: invited -> terms_signed -> autopay_on -> complete."""

    INVITED = "invited"
    TERMS_SIGNED = "terms_signed"
    AUTOPAY_ON = "autopay_on"
    COMPLETE = "complete"
