"""Payment terms: the default template, its merge variables, the parameters each published version fixes
(late fee, grace days, remote-disable N and M ...), the high-risk clauses a signer acknowledges one by one, and
the E-SIGN consent disclosure. Pure standard library.

Why the parameters live on the published version rather than in MSP settings: they are contract terms. A client
is bound by the late fee and notice periods of the version it signed, so they must be frozen with that version
(and covered by its hash), and a later change is a new version the client has to sign.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from . import authorizations as A
from . import charge_authorizations as C
from . import deposit_agreement as D
from . import plan_agreements as P
from .errors import DomainError

TERMS = "terms"  # the agreement/template kind of the MSP's payment terms
DISCLOSURE = "esign_disclosure"  # the consent to do business electronically, versioned the same way


class TermsStanding(StrEnum):
    """Where a client stands with the MSP's current payment terms (derived from its agreements, not stored)."""

    UNSIGNED = "unsigned"  # never signed, nothing open
    INVITED = "invited"  # an invitation to the current version is open
    OUTDATED = "outdated"  # signed an older version only
    SIGNED = "signed"  # signed the current version
    DECLINED = "declined"  # declined the current version
TEMPLATE_KINDS = (TERMS, DISCLOSURE)
TEMPLATE_TITLES = {TERMS: "Payment terms", DISCLOSURE: "Electronic records and signatures disclosure"}

GOVERNING_LAW_PLACEHOLDER = "[governing law: to be completed by the MSP]"


@dataclass(frozen=True)
class Parameter:
    name: str
    label: str
    kind: str  # int | percent | text
    low: int = 0
    high: int = 0
    help: str = ""


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("late_fee_percent", "Late fee (% per month on the overdue balance)", "percent", 0, 5,
              "Many places cap late fees or interest; 0 means no late fee."),
    Parameter("grace_days", "Grace period before a late fee (days)", "int", 0, 60),
    Parameter("hold_days", "Service hold after (days past due)", "int", 1, 180),
    Parameter("remote_disable_days", "Remote disable allowed after (days past due, N)", "int", 1, 365),
    Parameter("remote_disable_notice_days", "Written notice before remote disable (days, M)", "int", 1, 90),
    Parameter("equipment_deposit_percent", "Deposit on equipment orders (%)", "int", 0, 100),
    Parameter("dispute_days", "Days to dispute an invoice", "int", 1, 120),
    Parameter("change_notice_days", "Notice before changed terms apply (days)", "int", 0, 180),
    Parameter("governing_law", "Governing law and venue", "text", 0, 200,
              "For example: the laws of the State of Ohio; courts of Franklin County, Ohio."),
)
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)

DEFAULT_PARAMETERS: dict[str, str] = {
    "late_fee_percent": "1.5",
    "grace_days": "5",
    "hold_days": "15",
    "remote_disable_days": "45",
    "remote_disable_notice_days": "10",
    "equipment_deposit_percent": "50",
    "dispute_days": "15",
    "change_notice_days": "30",
    "governing_law": "",
}


def parse_parameters(raw: Mapping[str, object], *, for_publishing: bool = False) -> dict[str, str]:
    """Validated parameters as normalized strings (they are hashed with the version, so one spelling each)."""
    values: dict[str, str] = {}
    for p in PARAMETERS:
        text = str(raw.get(p.name, "") if raw.get(p.name) is not None else "").strip()
        if p.kind == "text":
            if len(text) > p.high:
                raise DomainError(f"{p.label}: at most {p.high} characters.")
            if for_publishing and (not text or text == GOVERNING_LAW_PLACEHOLDER):
                raise DomainError(f"{p.label}: fill this in before publishing (ask your lawyer which law applies).")
            values[p.name] = text
            continue
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise DomainError(f"{p.label}: enter a number.") from None
        if not number.is_finite() or not p.low <= number <= p.high:
            raise DomainError(f"{p.label}: enter a number from {p.low} to {p.high}.")
        if p.kind == "int":
            if number != number.to_integral_value():
                raise DomainError(f"{p.label}: enter a whole number of days or percent.")
            values[p.name] = str(int(number))
        else:
            if number.as_tuple().exponent < -2:  # type: ignore[operator]
                raise DomainError(f"{p.label}: use at most two decimals.")
            values[p.name] = format(number.normalize(), "f")
    return values


# ---------------------------------------------------------------------------------------------------- variables

VARIABLES: dict[str, str] = {
    "msp_legal_name": "Your legal name (Settings)",
    "msp_email": "Your billing email (Settings)",
    "client_legal_name": "The client's legal name",
    "net_days": "The client's payment terms in days (client, else your default)",
    "effective_date": "The date the client was invited to sign",
    **{p.name: p.label for p in PARAMETERS},
}


def merge_variables(*, msp_legal_name: str, msp_email: str, client_legal_name: str, net_days: int,
                    parameters: Mapping[str, str], effective_date: date) -> dict[str, str]:
    values = {
        "msp_legal_name": msp_legal_name,
        "msp_email": msp_email or "our billing email address",
        "client_legal_name": client_legal_name,
        "net_days": str(net_days),
        "effective_date": effective_date.strftime("%B %-d, %Y"),
    }
    for name in PARAMETER_NAMES:
        values[name] = parameters.get(name, "") or (GOVERNING_LAW_PLACEHOLDER if name == "governing_law" else "")
    return values


# ---------------------------------------------------------------------------------------------------- clauses

@dataclass(frozen=True)
class Clause:
    key: str
    title: str
    statement: str  # what the signer ticks; merged with the same variables as the document


HIGH_RISK_CLAUSES: tuple[Clause, ...] = (
    Clause("remote_disable", "Remote disabling of systems",
           "I understand that if an invoice is more than {{ remote_disable_days }} days past due, "
           "{{ msp_legal_name }} may remotely disable our systems, servers and routers after giving "
           "{{ remote_disable_notice_days }} days' written notice."),
    Clause("equipment_recovery", "Equipment ownership and recovery",
           "I understand that equipment stays the property of {{ msp_legal_name }} until it is paid for in full, "
           "and that unpaid equipment may be physically recovered."),
    Clause("autopay", "Automatic payments",
           "I understand that {{ msp_legal_name }} expects invoices to be paid by automatic payment from a saved "
           "card or bank account, charged when each invoice is due."),
    Clause("late_fees", "Late fees",
           "I understand that balances unpaid {{ grace_days }} days after their due date incur a late fee of "
           "{{ late_fee_percent }}% per month, and that collection costs may be added."),
)
CLAUSE_KEYS = tuple(c.key for c in HIGH_RISK_CLAUSES)

AUTHORITY_STATEMENT = ("I confirm that I am authorized to sign on behalf of {{ client_legal_name }} and to bind "
                       "{{ client_legal_name }} to these payment terms.")

CONSENT_STATEMENT = ("I have read the disclosure above and agree to receive records and sign documents "
                     "electronically with {{ msp_legal_name }}.")


# ---------------------------------------------------------------------------------------------------- defaults

DEFAULT_TERMS_TEXT = """\
# Payment Terms

These payment terms are an agreement between {{ msp_legal_name }} ("we", "us") and {{ client_legal_name }} ("you"). \
They apply to every invoice we send you for managed IT services, projects, licenses and equipment from \
{{ effective_date }}.

## 1. When invoices are due

Each invoice is due **{{ net_days }} days** after its invoice date, unless the invoice shows a different due date. \
If you think an invoice is wrong, tell us in writing within {{ dispute_days }} days of the invoice date and pay the \
part you do not dispute on time. We will work with you in good faith to resolve the rest.

## 2. How to pay

You can pay in the client portal by card or bank transfer (ACH), or by any other method shown on the invoice. \
A bank payment counts as paid when the funds settle, not when it is started.

## 3. Automatic payments (autopay)

We expect you to keep a card or bank account on file for automatic payment. Each invoice is charged on its due \
date. You can change the saved payment method in the portal at any time. If an automatic payment fails, we will \
tell you and try again; the invoice stays due until it is paid.

## 4. Late fees and interest

If a balance is still unpaid {{ grace_days }} days after its due date, we may add a late fee of \
**{{ late_fee_percent }}% per month** on the overdue amount until it is paid, or the highest rate the law allows if \
that is lower.

## 5. Service hold while past due

If any invoice is more than {{ hold_days }} days past due, we may place your account on service hold until it is \
brought current. While on hold:

- we will not start new service calls, projects or non-emergency work;
- we will not order equipment or licenses for you unless you pay for them, or pay a deposit, in advance;
- we will keep monitoring, security updates and backups running unless section 6 applies.

## 6. Remote disabling of systems

If any invoice is more than **{{ remote_disable_days }} days past due**, we may, after giving you \
**{{ remote_disable_notice_days }} days' written notice**, remotely disable systems, servers, routers, software \
licenses and services that we provide or manage for you. We will restore them promptly once your account is \
brought current. You remain responsible for what a disabled system cannot do during that time.

## 7. Equipment ownership and recovery

Equipment we supply stays **our property until it is paid for in full**. Until then you must keep it in good \
condition and must not sell, pledge or move it to another location without telling us. If equipment is not paid \
for when due, we may recover it: you agree to give us reasonable access to your premises during business hours to \
collect it.

## 8. Deposits for equipment orders

Equipment and license orders require a deposit of {{ equipment_deposit_percent }}% of their price before we place \
the order, with the rest due on delivery. Special orders may not be returnable.

## 9. Collection costs

If we have to use a collection agency, lawyer or court to collect an overdue balance, you agree to pay the \
reasonable costs of collection, including legal fees, as far as the law allows.

## 10. Notices

We send notices, including the notice before remote disabling, by email to your billing contacts and in the \
client portal. Notices to us go to {{ msp_email }}. Keep your billing contacts up to date in the portal.

## 11. Changes to these terms

We may update these terms by publishing a new version in the client portal and telling your billing contacts at \
least {{ change_notice_days }} days before it applies. Invoices issued before then stay under the version you \
signed.

## 12. Governing law

These terms are governed by {{ governing_law }}.

## 13. Electronic signature and records

You agree that these terms may be signed electronically and that the signed electronic record has the same \
effect as a signed paper copy. You can download a signed copy at any time in the client portal.
"""

DEFAULT_DISCLOSURE_TEXT = """\
# Consent to electronic records and signatures

{{ msp_legal_name }} would like to provide agreements, notices and other records to you electronically and to \
have you sign them electronically. Please read this disclosure before you agree.

## What you agree to

If you agree, the documents you sign in this portal, their signed copies, invoices and notices about your account \
will be provided to you electronically, through the client portal and by email.

## Your right to a paper copy

You may ask for a paper copy of any document you signed electronically at any time, free of charge, by emailing \
{{ msp_email }}.

## How to withdraw your consent

You may withdraw this consent at any time by emailing {{ msp_email }}. Withdrawing does not affect documents you \
already signed electronically. After you withdraw, we will send future agreements on paper.

## Keeping your details up to date

Tell us at {{ msp_email }} if your email address changes.

## What you need

- a device with a current web browser (such as Chrome, Edge, Firefox or Safari) and an internet connection;
- an email address that can receive our messages;
- software that opens PDF files, to read and keep the signed copy;
- a printer or storage space if you want to keep a copy outside the portal.
"""

DEFAULT_TEXTS = {TERMS: DEFAULT_TERMS_TEXT, DISCLOSURE: DEFAULT_DISCLOSURE_TEXT}

# Documents rendered per agreement from a published template and that agreement's data, versioned, published and
# signed like the terms: autopay authorizations (issue 10), installment plans and promissory notes (issue 11),
# equipment deposits and one-off charge authorizations (issue 13). Each module names its KINDS, TITLES,
# DEFAULT_TEXTS and VARIABLES.
RENDERED_MODULES = (A, P, D, C)
TEMPLATE_KINDS = (*TEMPLATE_KINDS, *(kind for m in RENDERED_MODULES for kind in m.KINDS))
TEMPLATE_TITLES = {**TEMPLATE_TITLES, **{k: v for m in RENDERED_MODULES for k, v in m.TITLES.items()}}
DEFAULT_TEXTS = {**DEFAULT_TEXTS, **{k: v for m in RENDERED_MODULES for k, v in m.DEFAULT_TEXTS.items()}}


def variables_for(kind: str) -> dict[str, str]:
    """The merge variables a template of this kind may use."""
    return next((m.VARIABLES for m in RENDERED_MODULES if kind in m.KINDS), VARIABLES)


def sample_variables(kind: str, *, msp_legal_name: str, msp_email: str, net_days: int, parameters: dict[str, str],
                     portal_url: str, effective_date: date) -> dict[str, str]:
    """Believable merge values for the template editor's preview of a draft of ``kind`` (a sample client)."""
    msp = {"msp_legal_name": msp_legal_name, "msp_email": msp_email}
    if kind in A.KINDS:  # a sample method and the default schedule
        return A.merge_variables(**msp, client_legal_name=SAMPLE_CLIENT, method="Visa ending 4242",
                                 schedule="on each invoice's due date", cap=None, notice_days=3,
                                 portal_url=portal_url, effective_date=effective_date)
    if kind in P.KINDS:
        return P.sample_variables(**msp, portal_url=portal_url, effective_date=effective_date,
                                  as_note=kind == P.PROMISSORY_NOTE)
    if kind in D.KINDS:
        return D.sample_variables(**msp, portal_url=portal_url, effective_date=effective_date)
    if kind in C.KINDS:
        return C.merge_variables(**msp, client_legal_name=SAMPLE_CLIENT, amount="$1,250.00",
                                 method="Visa ending 4242", invoices="INV-1001, INV-1002",
                                 reason="urgent service requested by the Client", effective_date=effective_date)
    return merge_variables(**msp, client_legal_name=SAMPLE_CLIENT, net_days=net_days, parameters=parameters,
                           effective_date=effective_date)


SAMPLE_CLIENT = "Example Client LLC"
