"""ORM tables. Import models from here; each submodule holds one area of the business."""

from .base import Base, UTCDateTime
from .billing import Allocation, Invoice, InvoiceLine, Payment, Refund
from .core import Client, Contact, MspSettings, SignInLink, StaffUser

__all__ = [
    "Allocation", "Base", "Client", "Contact", "Invoice", "InvoiceLine", "MspSettings", "Payment", "Refund",
    "SignInLink", "StaffUser", "UTCDateTime",
]
