"""Why an autopay charge failed, and what to do next: stop, retry later, or ask the client to approve it.

Pure: no gateway imports. Codes arrive as the gateways normalize them (``ChargeResult.failure_code`` and
``decline_code``): Stripe's card error codes and decline codes, Stripe's ACH failure codes, or a raw NACHA return
code (R01...) where a bank or the sandbox reports one.

Three classes, because each needs a different next step:
- hard: this method will not pay, however often it is asked (lost card, closed account, revoked authorization).
  Retrying only adds fees and can get the MSP's account flagged. Stop, switch to the fallback method, tell the client.
- soft: the method may pay later (insufficient funds, an issuer outage). Retry on the MSP's schedule, then stop.
- authentication_required: the bank wants the cardholder present (3-D Secure). No unattended retry can succeed;
  the client gets a link to approve the payment on-session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from . import dates
from .errors import DomainError

CARD, BANK = "card", "us_bank_account"


class DeclineClass(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    AUTHENTICATION_REQUIRED = "authentication_required"


HARD, SOFT, AUTHENTICATION_REQUIRED = DeclineClass.HARD, DeclineClass.SOFT, DeclineClass.AUTHENTICATION_REQUIRED

# Card decline codes (Stripe's ``decline_code``; a few also arrive as the error ``code``).
_CARD_HARD = frozenset({
    "lost_card", "stolen_card", "pickup_card", "expired_card", "incorrect_number", "invalid_number",
    "invalid_account", "card_not_supported", "currency_not_supported", "do_not_try_again", "fraudulent",
    "merchant_blacklist", "new_account_information_available", "not_permitted", "pin_try_exceeded",
    "restricted_card", "revocation_of_all_authorizations", "revocation_of_authorization", "security_violation",
    "service_not_allowed", "stop_payment_order", "transaction_not_allowed", "invalid_expiry_month",
    "invalid_expiry_year", "account_closed",
})
# do_not_honor and generic_decline say nothing about why; card issuers use them for temporary risk holds as often as
# for dead cards, so they get the bounded retry schedule rather than an immediate stop (Stripe's own retries agree).
_CARD_SOFT = frozenset({
    "insufficient_funds", "processing_error", "try_again_later", "generic_decline", "do_not_honor",
    "issuer_not_available", "reenter_transaction", "approve_with_id", "call_issuer", "card_velocity_exceeded",
    "withdrawal_count_limit_exceeded", "no_action_taken", "duplicate_transaction", "rate_limit", "lock_timeout",
    "api_connection_error", "api_error",
})
_CARD_AUTHENTICATION = frozenset({
    "authentication_required", "offline_pin_required", "online_or_offline_pin_required",
    "payment_intent_authentication_failure",
})
# Card codes that mean the cardholder withdrew the MSP's permission to charge: the autopay authorization is void,
# not just the card.
_CARD_REVOKED = frozenset({"revocation_of_all_authorizations", "revocation_of_authorization", "stop_payment_order"})

# NACHA allows a returned debit to be presented again only after R01 (insufficient funds) and R09 (uncollected
# funds); every other return is final for that authorization.
_ACH_SOFT_RETURNS = frozenset({"R01", "R09"})
# Returns that say the account holder did not authorize (or withdrew authorization for) the debit. Debiting again
# needs a new signed authorization, so the autopay authorization is treated as revoked.
_ACH_UNAUTHORIZED_RETURNS = frozenset({"R05", "R07", "R10", "R11", "R29", "R51"})
# Stripe reports ACH returns by name, not by R code.
_ACH_NAMES = {
    "insufficient_funds": "R01",
    "account_closed": "R02",
    "no_account": "R03",
    "invalid_account_number": "R04",
    "debit_not_authorized": "R10",
    "account_frozen": "R16",
    "bank_account_restricted": "R16",
    "invalid_currency": "R20",
}


@dataclass(frozen=True)
class Decline:
    kind: DeclineClass
    code: str  # the code that decided the class, for the run log
    #: The client withdrew the permission to debit: the authorization agreement gets a revocation event and the
    #: fallback may only be used if it has its own signed authorization.
    revokes_authorization: bool = False

    @property
    def stops_method(self) -> bool:
        """A hard decline retires the method for autopay; the client must fix or replace it."""
        return self.kind is HARD


def classify(*, method_type: str | None, failure_code: str | None, decline_code: str | None) -> Decline:
    """Sort a failed charge into hard, soft or authentication_required.

    Unknown codes: an unknown card decline is soft (the schedule is bounded, and issuers invent codes), an unknown
    ACH return is hard (NACHA forbids re-presenting anything but R01/R09, and a return costs the MSP a fee).
    """
    if method_type == BANK:
        return _classify_bank(failure_code, decline_code)
    for code in (decline_code, failure_code):
        if not code:
            continue
        code = code.strip().lower()
        if code in _CARD_AUTHENTICATION:
            return Decline(AUTHENTICATION_REQUIRED, code)
        if code in _CARD_HARD:
            return Decline(HARD, code, revokes_authorization=code in _CARD_REVOKED)
        if code in _CARD_SOFT:
            return Decline(SOFT, code)
    # card_declined with no decline_code, or a code we have never seen
    return Decline(SOFT, (decline_code or failure_code or "unknown").strip().lower())


def _classify_bank(failure_code: str | None, decline_code: str | None) -> Decline:
    for raw in (decline_code, failure_code):
        if not raw:
            continue
        code = raw.strip()
        return_code = code.upper() if _is_return_code(code) else _ACH_NAMES.get(code.lower())
        if return_code is None:
            continue
        if return_code in _ACH_SOFT_RETURNS:
            return Decline(SOFT, return_code)
        return Decline(HARD, return_code, revokes_authorization=return_code in _ACH_UNAUTHORIZED_RETURNS)
    return Decline(HARD, (decline_code or failure_code or "unknown").strip())


def _is_return_code(code: str) -> bool:
    return len(code) == 3 and code[0] in "Rr" and code[1:].isdigit()


# --- retries ----------------------------------------------------------------------------------------------------------

DEFAULT_RETRY_DAYS = (3, 5, 7)
MAX_RETRIES = 6
MAX_RETRY_GAP_DAYS = 30
#: A retry schedule longer than this keeps an invoice "being collected" past the point where the MSP should be
#: calling the client; beyond it the failure belongs to a person, not to cron.
MAX_RETRY_SPAN_DAYS = 60
#: NACHA: a debit returned R01/R09 may be re-presented at most twice ...
ACH_MAX_RETRIES = 2
#: ... and only within 180 days of the original entry.
ACH_RETRY_WINDOW_DAYS = 180


def check_retry_schedule(days: Sequence[int]) -> tuple[int, ...]:
    """The MSP's soft-decline schedule: each number is the days to wait after the previous failed attempt."""
    schedule = tuple(days)
    if len(schedule) > MAX_RETRIES:
        raise DomainError(f"Retry a declined charge at most {MAX_RETRIES} times.")
    for gap in schedule:
        if isinstance(gap, bool) or not isinstance(gap, int) or not 1 <= gap <= MAX_RETRY_GAP_DAYS:
            raise DomainError(f"Each retry must wait between 1 and {MAX_RETRY_GAP_DAYS} days.")
    if sum(schedule) > MAX_RETRY_SPAN_DAYS:
        raise DomainError(f"The retries must all fall within {MAX_RETRY_SPAN_DAYS} days of the first failure.")
    return schedule


@dataclass(frozen=True)
class FailedAttempt:
    on: date
    kind: DeclineClass


class GiveUp(StrEnum):
    """Why no further unattended retry happens: each wants a different email to the client."""

    HARD_DECLINE = "hard_decline"
    SCHEDULE_EXHAUSTED = "schedule_exhausted"
    AWAITING_CLIENT = "awaiting_client"  # authentication_required: the client approves it on-session
    ACH_RETRY_LIMIT = "ach_retry_limit"


@dataclass(frozen=True)
class RetryStep:
    retry_on: date | None
    gave_up: GiveUp | None = None

    @property
    def retrying(self) -> bool:
        return self.retry_on is not None


def next_retry(attempts: Sequence[FailedAttempt], schedule: Sequence[int], *, method_type: str) -> RetryStep:
    """The date of the next attempt on the same method after ``attempts`` (this charge's failures on it, oldest
    first), or why there is none.

    Each wait counts from the last failed attempt, not from the first, so a run that happened late (cron down for a
    day) never leaves the next retry crowded onto it, and retry dates are strictly increasing.
    """
    if not attempts:
        raise DomainError("There is no failed attempt to retry.")
    schedule = check_retry_schedule(schedule)
    ordered = list(attempts)
    if any(later.on < earlier.on for earlier, later in zip(ordered, ordered[1:], strict=False)):
        raise DomainError("Failed attempts must be listed oldest first.")
    last = ordered[-1]
    if last.kind is HARD:
        return RetryStep(None, GiveUp.HARD_DECLINE)
    if last.kind is AUTHENTICATION_REQUIRED:
        return RetryStep(None, GiveUp.AWAITING_CLIENT)
    retries_made = len(ordered) - 1
    if method_type == BANK and retries_made >= ACH_MAX_RETRIES:
        return RetryStep(None, GiveUp.ACH_RETRY_LIMIT)
    if retries_made >= len(schedule):
        return RetryStep(None, GiveUp.SCHEDULE_EXHAUSTED)
    retry_on = dates.add_days(last.on, schedule[retries_made], "The retry date")
    if method_type == BANK and (retry_on - ordered[0].on).days > ACH_RETRY_WINDOW_DAYS:
        return RetryStep(None, GiveUp.ACH_RETRY_LIMIT)
    return RetryStep(retry_on)


def consecutive_failures(outcomes: Sequence[bool]) -> int:
    """How many charges in a row failed at the end of ``outcomes`` (True = paid), oldest first."""
    count = 0
    for paid in reversed(outcomes):
        if paid:
            break
        count += 1
    return count
