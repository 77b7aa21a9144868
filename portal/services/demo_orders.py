"""Demo data for equipment and orders: each demo client's register holds a few items (the MSP's own until paid at
the client furthest behind, so a recovery notice has something to list), one client has a credit limit, and one has
signed the deposit agreement for an equipment order whose deposit awaits payment (not cleared to order yet)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.domain.orders import EquipmentFacts, OrderItem
from portal.models import Client, Contact, EquipmentOrder, StaffUser

from . import agreements
from .enforcement import credit, equipment, orders
from .runtime import Runtime

DEMO_AGENT = "Mozilla/5.0 (demo)"
# (item, serial prefix, value in cents, location, owned by the MSP until paid)
REGISTER = (
    ("Firewall, FortiGate 60F", "FGT60F", 79_500, "Server closet", True),
    ("Switch, 24 ports PoE", "SW24P", 42_000, "Server closet", True),
    ("Wireless access point", "AP650", 18_900, "Front office", False),
)
ORDER_ITEMS = (OrderItem("Business laptop, 14-inch", 3, 129_900), OrderItem("Docking station", 3, 24_900))


def seed(session: Session, rt: Runtime, clients: list[Client], admin: StaffUser, today: date) -> EquipmentOrder:
    """Returns the order whose deposit awaits payment."""
    for n, client in enumerate(clients):
        for item, prefix, value, location, owned in REGISTER[: 2 + n % 2]:
            equipment.add(session, client, EquipmentFacts(item, f"{prefix}-{client.id:03d}{n:02d}", value,
                                                          today - timedelta(days=90 + 30 * n), location, owned))
    client = clients[0]
    credit.set_limit(session, client.id, 2_500_000, staff=admin)
    order = orders.create_order(session, rt, client.id, items=list(ORDER_ITEMS), deposit_percent=Decimal(50),
                                quote_reference="Q-2026-031", staff=admin)
    contact: Contact = next(c for c in client.contacts if c.is_billing)
    document = orders.document(session, rt, order)
    meta = agreements.Meta(ip=f"203.0.113.{10 + client.id}", user_agent=DEMO_AGENT,
                           session_id=f"demo{client.id:04d}", contact_id=contact.id)
    done = orders.accept(session, rt, contact, order.public_id, orders.SignedBy(
        full_name=contact.name, title=contact.title or "Office Manager", authority_confirmed=True,
        consent_confirmed=True, signature=agreements.Signature("typed", typed=contact.name),
        shown_sha256=document.sha256), meta=meta)
    return done.order
