"""The sandbox's payment methods: Stripe's test numbers and test ids, and the ids that carry a method's state.

The sandbox keeps no state (several gunicorn workers or nodes must agree), so every id it hands out says all a
later call needs: the scripted outcome, the card or account details and, for a saved method, its expiry, whether
its bank account is verified and a hash of the customer it belongs to.

- token (what the sandbox form or a test hands to ``charge``/``save_method``): ``sbx_ctok_<method>[_<MMYYYY>]`` or
  one of Stripe's test ids (``pm_card_visa`` ...), which the sandbox accepts wherever Stripe does.
- method: ``sbx_pm_<method>`` (used once), or saved on a customer: ``sbx_pm_<method>_<MMYYYY|none>_<v|p>_<owner>``
  (``p``: a bank account whose microdeposits are not verified yet).
- ``<method>`` is ``<outcome>_<funding>_<brand>_<last4>``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from .base import CardFunding, ChargeStatus, GatewayRequestError


@dataclass(frozen=True)
class Outcome:
    method_type: str  # "card" or "us_bank_account"
    settled_status: ChargeStatus  # the state once the (simulated) network has decided
    failure_code: str | None = None
    decline_code: str | None = None  # cards: the issuer's decline; bank accounts: the NACHA return code
    settles_later: bool = False  # bank debits sit in "processing" first
    #: Whether saving it for later succeeds. As at Stripe, a card is checked when it is saved, so a dead card
    #: (declined outright, lost, expired) fails then; a $0 check cannot see funds, and 4000000000000341 exists to
    #: save and then fail, so those save and decline only when charged.
    saves: bool = True
    #: Whether saving it asks for 3-D Secure first (Stripe's 4000002760003184 does, on every setup and payment):
    #: the setup waits in ``requires_action`` until the client passes the sandbox's stand-in for the challenge.
    authenticates_on_save: bool = False


OUTCOMES: dict[str, Outcome] = {
    "ok": Outcome("card", "succeeded"),
    "declined": Outcome("card", "failed", "card_declined", "generic_decline", saves=False),
    "nsf": Outcome("card", "failed", "card_declined", "insufficient_funds"),
    "lost": Outcome("card", "failed", "card_declined", "lost_card", saves=False),
    "expired": Outcome("card", "failed", "expired_card", "expired_card", saves=False),
    "custfail": Outcome("card", "failed", "card_declined", "generic_decline"),
    # 3-D Secure on every setup and payment. Saving it waits for the sandbox's challenge page (see sandbox.py); a
    # payment has no challenge page in the sandbox, so with the client present it passes; with the client away
    # (autopay) it fails as Stripe's does, asking for the client.
    "auth": Outcome("card", "succeeded", authenticates_on_save=True),
    "authoff": Outcome("card", "failed", "authentication_required", "authentication_required"),
    "badnumber": Outcome("card", "failed", "incorrect_number", saves=False),
    "achok": Outcome("us_bank_account", "succeeded", settles_later=True),
    "achnsf": Outcome("us_bank_account", "failed", "insufficient_funds", "R01", settles_later=True),
    "achclosed": Outcome("us_bank_account", "failed", "account_closed", "R02", settles_later=True),
    # A real bank would return this days later; the demo says so at once.
    "achinvalid": Outcome("us_bank_account", "failed", "invalid_account_number", saves=False),
}
#: The outcome a charge records when the client is away, and back to the method's own outcome for its id.
OFF_SESSION_OUTCOMES = {"auth": "authoff"}
_METHOD_OUTCOMES = {v: k for k, v in OFF_SESSION_OUTCOMES.items()}

#: Stripe's test card numbers: number -> (outcome, funding).
TEST_CARDS: dict[str, tuple[str, CardFunding]] = {
    "4242424242424242": ("ok", "credit"),
    "5555555555554444": ("ok", "credit"),
    "4000056655665556": ("ok", "debit"),
    "4000000000000002": ("declined", "credit"),
    "4000000000009995": ("nsf", "credit"),
    "4000000000009987": ("lost", "credit"),
    "4000000000000069": ("expired", "credit"),
    "4000000000000341": ("custfail", "credit"),
    "4000002760003184": ("auth", "credit"),
}
#: Stripe's test US bank account numbers: number -> outcome.
TEST_BANK_ACCOUNTS: dict[str, str] = {
    "000123456789": "achok",
    "000222222227": "achnsf",
    "000111111113": "achclosed",
}
#: Stripe's test payment-method ids -> (kind, test number): usable wherever a sandbox token or method id is.
STRIPE_TEST_IDS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("card", "4242424242424242"),
    "pm_card_mastercard": ("card", "5555555555554444"),
    "pm_card_visa_debit": ("card", "4000056655665556"),
    "pm_card_chargeDeclined": ("card", "4000000000000002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("card", "4000000000009995"),
    "pm_card_chargeDeclinedLostCard": ("card", "4000000000009987"),
    "pm_card_chargeDeclinedExpiredCard": ("card", "4000000000000069"),
    "pm_card_chargeCustomerFail": ("card", "4000000000000341"),
    "pm_card_authenticationRequired": ("card", "4000002760003184"),
    "pm_usBankAccount_success": ("us_bank_account", "000123456789"),
    # Stripe's "processing" id stays processing until the bank decides; so does every sandbox debit.
    "pm_usBankAccount_processing": ("us_bank_account", "000123456789"),
    "pm_usBankAccount_insufficientFunds": ("us_bank_account", "000222222227"),
    "pm_usBankAccount_accountClosed": ("us_bank_account", "000111111113"),
}
#: Like Stripe's test cards: any future date works, so a fixed one far ahead.
DEFAULT_EXPIRY = "122034"
SANDBOX_BANK_NAME = "SANDBOX TEST BANK"
_FUNDINGS = frozenset({"credit", "debit", "prepaid", "unknown"})
_NO_FUNDING = "none"  # placeholder field for bank accounts, keeps ids a fixed shape
_NO_EXPIRY = "none"


@dataclass(frozen=True)
class SandboxMethod:
    """A sandbox payment method, as encoded in tokens, method ids and charge ids."""

    outcome: str
    funding: str
    brand: str
    last4: str

    @property
    def method_type(self) -> str:
        return OUTCOMES[self.outcome].method_type

    def fields(self) -> str:
        return f"{self.outcome}_{self.funding}_{self.brand}_{self.last4}"

    def off_session(self) -> SandboxMethod:
        """The same method charged with the client away."""
        return replace(self, outcome=OFF_SESSION_OUTCOMES.get(self.outcome, self.outcome))

    def own_fields(self) -> str:
        """``fields()`` with the method's own outcome (undoing :meth:`off_session`), for its id."""
        return replace(self, outcome=_METHOD_OUTCOMES.get(self.outcome, self.outcome)).fields()

    @classmethod
    def from_fields(cls, parts: list[str]) -> SandboxMethod:
        outcome, funding, brand, last4 = parts
        method = cls(outcome, funding, brand, last4)  # method_type raises KeyError on a bad outcome
        allowed = {_NO_FUNDING} if method.method_type == "us_bank_account" else _FUNDINGS
        if funding not in allowed:
            raise ValueError(funding)
        if len(last4) != 4 or not last4.isdigit() or not brand.isalpha():
            raise ValueError(last4)
        return method


@dataclass(frozen=True)
class SavedMethod:
    """A method saved on a customer: ``sbx_pm_<method>_<expiry>_<v|p>_<owner>``."""

    method: SandboxMethod
    expiry: str  # MMYYYY for cards, "none" for bank accounts
    verified: bool
    owner: str  # owner_hash(customer id)

    @property
    def id(self) -> str:
        return f"sbx_pm_{self.method.own_fields()}_{self.suffix}"

    @property
    def suffix(self) -> str:
        return f"{self.expiry}_{'v' if self.verified else 'p'}_{self.owner}"

    @property
    def exp_month(self) -> int | None:
        return None if self.expiry == _NO_EXPIRY else int(self.expiry[:2])

    @property
    def exp_year(self) -> int | None:
        return None if self.expiry == _NO_EXPIRY else int(self.expiry[2:])

    @classmethod
    def from_parts(cls, parts: list[str]) -> SavedMethod:
        method = SandboxMethod.from_fields(parts[:4])
        expiry, state, owner = parts[4:]
        is_card = method.method_type == "card"
        if (expiry == _NO_EXPIRY) == is_card or (is_card and not _valid_expiry(expiry)):
            raise ValueError(expiry)
        if state not in ("v", "p") or (state == "p" and is_card) or not _is_hash(owner):
            raise ValueError(state)
        return cls(method, expiry, state == "v", owner)


def sandbox_token(
    kind: str,
    number: str,
    funding: str | None = None,
    *,
    exp_month: int | None = None,
    exp_year: int | None = None,
) -> str:
    """Build the sandbox "confirmation token" for what a client typed into the sandbox form.

    ``kind`` is "card" or "us_bank_account". Unknown card numbers decline as ``incorrect_number``;
    unknown account numbers fail as ``invalid_account_number``. ``funding`` overrides a card's
    funding so the demo can show prepaid or unknown cards; ``exp_month``/``exp_year`` give a card an expiry
    (default 12/2034) so the demo can show an expiring one. Raises ValueError for input that is not a
    number at all (the form shows it as a field error).
    """
    digits = "".join(ch for ch in number if ch not in " -")
    if not digits.isdigit() or len(digits) < 4:
        raise ValueError("enter the number using digits only")
    if kind == "card":
        outcome, default_funding = TEST_CARDS.get(digits, ("badnumber", "credit"))
        if funding is not None and funding not in _FUNDINGS:
            raise ValueError(f"unknown card funding {funding!r}")
        method = SandboxMethod(outcome, funding or default_funding, _card_brand(digits), digits[-4:])
    elif kind == "us_bank_account":
        if funding is not None or exp_month is not None or exp_year is not None:
            raise ValueError("funding and expiry apply to cards only")
        outcome = TEST_BANK_ACCOUNTS.get(digits, "achinvalid")
        method = SandboxMethod(outcome, _NO_FUNDING, "bank", digits[-4:])
    else:
        raise ValueError(f"unknown payment method kind {kind!r}")
    if (exp_month is None) != (exp_year is None):
        raise ValueError("give both the expiry month and year")
    if exp_month is None or exp_year is None:
        return f"sbx_ctok_{method.fields()}"
    expiry = f"{exp_month:02d}{exp_year:04d}"
    if not _valid_expiry(expiry):
        raise ValueError("the expiry month must be 1 to 12 and the year four digits")
    return f"sbx_ctok_{method.fields()}_{expiry}"


def parse_token(value: str) -> tuple[SandboxMethod, str]:
    """The method and card expiry behind a sandbox token or one of Stripe's test ids."""
    if value in STRIPE_TEST_IDS:
        value = sandbox_token(*STRIPE_TEST_IDS[value])
    if value.startswith("sbx_ctok_"):
        parts = value.removeprefix("sbx_ctok_").split("_")
        try:
            method = SandboxMethod.from_fields(parts[:4])
            if len(parts) == 4:
                return method, DEFAULT_EXPIRY if method.method_type == "card" else _NO_EXPIRY
            if len(parts) == 5 and method.method_type == "card" and _valid_expiry(parts[4]):
                return method, parts[4]
        except (KeyError, ValueError):
            pass
    raise GatewayRequestError("Unknown sandbox payment details; please enter them again.", code="resource_missing")


def parse_method(value: str) -> tuple[SandboxMethod, SavedMethod | None]:
    """A method id to charge: a Stripe test id, a used-once ``sbx_pm_`` id, or a saved one (second item)."""
    if value in STRIPE_TEST_IDS:
        return parse_token(value)[0], None
    parts = value.removeprefix("sbx_pm_").split("_") if value.startswith("sbx_pm_") else []
    try:
        if len(parts) == 4:
            return SandboxMethod.from_fields(parts), None
        if len(parts) == 7:
            saved = SavedMethod.from_parts(parts)
            return saved.method, saved
    except (KeyError, ValueError):
        pass
    raise GatewayRequestError("Unknown sandbox payment details; please enter them again.", code="resource_missing")


def owner_hash(customer_id: str) -> str:
    return short_hash("customer:" + customer_id)


def short_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:16]


def _is_hash(value: str) -> bool:
    return len(value) == 16 and all(ch in "0123456789abcdef" for ch in value)


def _valid_expiry(expiry: str) -> bool:
    return len(expiry) == 6 and expiry.isdigit() and 1 <= int(expiry[:2]) <= 12 and int(expiry[2:]) >= 2000


def _card_brand(digits: str) -> str:
    if digits.startswith("4"):
        return "visa"
    if digits[:2] in {"51", "52", "53", "54", "55"} or digits[:2] == "22":
        return "mastercard"
    if digits[:2] in {"34", "37"}:
        return "amex"
    if digits.startswith("6"):
        return "discover"
    return "unknown"
