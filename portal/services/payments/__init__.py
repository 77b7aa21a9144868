"""Payments: money received offline, clients paying invoices online, and money going back.

The order of things is what keeps online payments safe:

1. ``create_request`` (checkout.py) stores the invoices and amounts the client chose.
2. ``pay`` (charging.py) writes a ChargeAttempt row and commits it *before* calling the gateway; the row's id makes
   the idempotency key, and the unique (request, attempt number) pair turns a double-submitted form into a lookup.
3. ``apply_result`` (results.py) is the one place a gateway answer changes our books, whoever brings it (the
   browser's request, a webhook, reconciliation): it records the answer in its own transaction, then books it.

Every transaction that checks what is owed and then writes starts with ``begin_write`` and takes its locks in the one
order of ``portal.services.locking`` (the client's invoices, then attempt / payment / refund rows: locks.py). No
transaction is open while the gateway answers. Services that call the gateway, build links or send email take the
``Runtime`` (``rt``).

Callers import this package (``from portal.services import payments``); the work is split by seam:
booking.py (the ledger side: payments received, allocation, credit, ledger refunds), settings.py (surcharge and part
payments), checkout.py, charging.py, results.py, refunds.py (through the gateway), disputes.py, notices.py (emails),
webhooks.py, reconciliation.py (``portal payments reconcile``) and overview.py (what staff see).
"""

from .booking import (
    OFFLINE_METHODS,
    apply_arrived_payment,
    apply_credit,
    payment_unapplied_cents,
    record_payment,
    refund_offline,
    refund_payment,
    unapply_invoice,
)
from .charging import ensure_customer, pay, refresh_attempt, replay_charge
from .checkout import (
    WITHDRAWN_WORDS,
    InvoiceAwaited,
    PayableInvoice,
    PaymentInFlight,
    PaymentUnavailable,
    Quote,
    SurchargeConsentNeeded,
    attempts_of,
    blocking_attempt,
    create_request,
    in_flight_by_invoice,
    invoices_awaiting,
    is_withdrawn,
    latest_attempt,
    next_attempt_number,
    payable,
    payable_invoices,
    payments_in_flight,
    quote,
    request_by_public_id,
    withdraw,
)
from .disputes import disputes_of, record_dispute
from .notices import describe_method
from .overview import STATE_FILTERS, AttemptRow, attempt_for_payment, attempt_page, attempt_row, disputes_for
from .reconciliation import ReconcileReport, reconcile
from .refunds import (
    Refundable,
    RefundOutcomeUnknown,
    has_open_dispute,
    record_gateway_refund,
    refund,
    refundable,
    refunds_of,
    send_refund,
)
from .results import apply_result, payment_of
from .settings import payment_settings, surcharge_terms, update_payment_settings
from .webhooks import handle_event

__all__ = [
    "AttemptRow", "InvoiceAwaited", "OFFLINE_METHODS", "PayableInvoice", "PaymentInFlight", "PaymentUnavailable",
    "Quote", "ReconcileReport", "RefundOutcomeUnknown", "Refundable", "STATE_FILTERS", "SurchargeConsentNeeded",
    "WITHDRAWN_WORDS",
    "apply_arrived_payment", "apply_credit", "apply_result", "attempt_for_payment", "attempt_page", "attempt_row",
    "attempts_of", "blocking_attempt", "create_request", "describe_method", "disputes_for", "disputes_of",
    "ensure_customer", "handle_event", "has_open_dispute", "in_flight_by_invoice", "invoices_awaiting",
    "is_withdrawn", "latest_attempt", "next_attempt_number", "pay", "payable", "payable_invoices", "payment_of",
    "payment_settings",
    "payment_unapplied_cents", "payments_in_flight", "quote", "reconcile", "record_dispute",
    "record_gateway_refund", "record_payment", "refresh_attempt", "refund", "refund_offline", "refund_payment",
    "refundable", "refunds_of", "replay_charge", "request_by_public_id", "send_refund", "surcharge_terms",
    "unapply_invoice", "update_payment_settings", "withdraw",
]
