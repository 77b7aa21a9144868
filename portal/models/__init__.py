"""ORM tables. Import models from here; each submodule holds one area of the business."""

from .agreements import Agreement, AgreementEvent, TermsTemplate, TermsVersion
from .autopay import (
    AutopayEnrollment,
    AutopayOffer,
    AutopaySettings,
    LedgerAdjustment,
    OnboardingInvitation,
    RateLock,
    SavedPaymentMethod,
)
from .autopay_runs import AutopayCharge, AutopayNotice, DueLease, DueRun, DueRunSkip
from .base import Base, UTCDateTime
from .billing import Allocation, Invoice, InvoiceLine, Payment, Refund
from .collections import (
    ClientCollection,
    CollectionNote,
    CollectionSettings,
    DashboardFigures,
    DunningStep,
    DuplicateFlag,
    ForecastSnapshot,
    LateFee,
    PaymentPromise,
    ReminderSend,
)
from .core import Client, Contact, MspSettings, SignInLink, StaffUser
from .enforcement import (
    ChargeAuthorization,
    CreditLimit,
    Deliverable,
    EnforcementNotice,
    Equipment,
    EquipmentOrder,
)
from .links import InvoiceDelivery, InvoiceEvent, InvoiceLink
from .online import (
    ChargeAttempt,
    Dispute,
    GatewayCustomer,
    GatewayRefund,
    PaymentRequest,
    PaymentRequestItem,
    PaymentSettings,
    WebhookEvent,
)
from .plans import (
    Installment,
    InstallmentCharge,
    PaymentPlan,
    PlanEvent,
    PlanInvoice,
    PlanOffer,
    PlanOfferInvoice,
    PlanPolicy,
)
from .standing import (
    ApiToken,
    ClientStanding,
    OutboundEvent,
    StandingOverride,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "Allocation", "Base", "Client", "Contact", "Invoice", "InvoiceLine", "MspSettings", "Payment", "Refund",
    "SignInLink", "StaffUser", "UTCDateTime",
    "InvoiceDelivery", "InvoiceEvent", "InvoiceLink",
    "Agreement", "AgreementEvent", "TermsTemplate", "TermsVersion",
    "AutopayCharge", "AutopayNotice", "DueLease", "DueRun", "DueRunSkip",
    "ChargeAttempt", "Dispute", "GatewayCustomer", "GatewayRefund", "PaymentRequest", "PaymentRequestItem",
    "PaymentSettings", "WebhookEvent",
    "AutopayEnrollment", "AutopayOffer", "AutopaySettings", "LedgerAdjustment", "OnboardingInvitation", "RateLock",
    "SavedPaymentMethod",
    "Installment", "InstallmentCharge", "PaymentPlan", "PlanEvent", "PlanInvoice", "PlanOffer", "PlanOfferInvoice",
    "PlanPolicy",
    "ClientCollection", "CollectionNote", "CollectionSettings", "DashboardFigures", "DuplicateFlag", "DunningStep",
    "ForecastSnapshot", "LateFee", "PaymentPromise", "ReminderSend",
    "ApiToken", "ClientStanding", "OutboundEvent", "StandingOverride", "WebhookDelivery", "WebhookEndpoint",
    "ChargeAuthorization", "CreditLimit", "Deliverable", "EnforcementNotice", "Equipment", "EquipmentOrder",
]
