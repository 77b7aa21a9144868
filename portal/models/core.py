"""The MSP, its staff, its clients and their contacts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.clients import ClientStatus

from .base import Base
from .search import search_index


class MspSettings(Base):
    """The MSP's own details; a single row (id 1)."""

    __tablename__ = "msp_settings"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    legal_name: Mapped[str] = mapped_column(default="")
    address: Mapped[str] = mapped_column(Text, default="")
    email: Mapped[str] = mapped_column(default="")
    reply_to: Mapped[str] = mapped_column(default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    website: Mapped[str] = mapped_column(default="")
    logo_filename: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    default_net_days: Mapped[int] = mapped_column(Integer, default=30)
    payment_instructions: Mapped[str] = mapped_column(Text, default="")


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str]
    password_hash: Mapped[str]
    role: Mapped[str] = mapped_column(String(20), default="admin")
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    last_sign_in_at: Mapped[datetime | None]


class Client(Base):
    """A customer of the MSP (a company). Billing state lives here; people are Contacts."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    legal_name: Mapped[str] = mapped_column(index=True)  # the admin client list sorts and searches by name
    address_line1: Mapped[str] = mapped_column(default="")
    address_line2: Mapped[str] = mapped_column(default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    region: Mapped[str] = mapped_column(String(100), default="")  # state / province
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2), default="US")
    status: Mapped[str] = mapped_column(String(20), default=ClientStatus.ACTIVE)
    net_days: Mapped[int | None] = mapped_column(Integer)  # None: the MSP default
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]

    contacts: Mapped[list[Contact]] = relationship(back_populates="client", order_by="Contact.id")

    @property
    def address_lines(self) -> list[str]:
        city_line = " ".join(p for p in (self.city + ("," if self.city else ""), self.region, self.postal_code) if p)
        return [line for line in (self.address_line1, self.address_line2, city_line.strip()) if line]


# the client list's search, and the clients' names the invoice and payment lists search (PostgreSQL)
search_index(Client.__table__.c.legal_name)
search_index(Client.__table__.c.external_id)


class Contact(Base):
    """A person at a client. Email is unique across the portal because it is the sign-in identity."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    name: Mapped[str]
    email: Mapped[str] = mapped_column(String(320), unique=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    title: Mapped[str] = mapped_column(String(100), default="")
    is_billing: Mapped[bool] = mapped_column(default=True)
    portal_access: Mapped[bool] = mapped_column(default=True)
    password_hash: Mapped[str | None]
    # Bumped to sign the contact out of every browser: sessions carry the epoch they were issued under.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    last_sign_in_at: Mapped[datetime | None]

    client: Mapped[Client] = relationship(back_populates="contacts")


class SignInLink(Base):
    """A one-time, short-lived passwordless sign-in link for a contact. The emailed token names this row."""

    __tablename__ = "sign_in_links"
    __table_args__ = (UniqueConstraint("nonce"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    requested_ip: Mapped[str] = mapped_column(String(64), default="")
