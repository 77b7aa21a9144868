"""Clients and their contacts: create and edit."""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, joinedload

from portal.clock import now
from portal.domain.clients import CLIENT_STATUSES, ClientStatus
from portal.domain.errors import DomainError
from portal.domain.regions import normalize_region
from portal.models import Client, Contact

from .errors import Conflict

CLIENT_FIELDS = ("legal_name", "external_id", "address_line1", "address_line2", "city", "region", "postal_code",
                 "country", "status", "net_days", "notes")
CONTACT_FIELDS = ("name", "email", "phone", "title", "is_billing", "portal_access")


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def with_contacts(session: Session, client_id: int) -> Client | None:
    """A client with its contacts loaded in the same round trip (its admin overview lists them)."""
    return session.scalars(_WITH_CONTACTS, {"client_id": client_id}).unique().first()


_WITH_CONTACTS = select(Client).options(joinedload(Client.contacts)).where(Client.id == bindparam("client_id"))


def create_client(session: Session, *, legal_name: str, commit: bool = True, **fields) -> Client:
    client = Client(legal_name="", created_at=now())
    _apply_client(session, client, legal_name=legal_name, **fields)
    session.add(client)
    session.flush()
    if commit:
        session.commit()
    return client


def update_client(session: Session, client: Client, *, commit: bool = True, **fields) -> Client:
    _apply_client(session, client, **fields)
    if commit:
        session.commit()
    return client


def _apply_client(session: Session, client: Client, **fields) -> None:
    unknown = set(fields) - set(CLIENT_FIELDS)
    if unknown:
        raise TypeError(f"unknown client fields {sorted(unknown)}")
    if "legal_name" in fields:
        fields["legal_name"] = (fields["legal_name"] or "").strip()
        if not fields["legal_name"]:
            raise DomainError("A client needs a legal name.")
    if fields.get("status", client.status or ClientStatus.ACTIVE) not in CLIENT_STATUSES:
        raise DomainError("Unknown client status.")
    if "external_id" in fields:
        fields["external_id"] = (fields["external_id"] or "").strip() or None
        ext = fields["external_id"]
        if ext and session.scalar(select(Client.id).where(Client.external_id == ext, Client.id != client.id)):
            raise Conflict(f"Another client already has the external id {ext}.")
    if "region" in fields:  # one spelling per state: rules keyed on the billing state compare codes
        fields["region"] = normalize_region(fields["region"])
    if fields.get("net_days") is not None and not 0 <= int(fields["net_days"]) <= 365:
        raise DomainError("Net days must be between 0 and 365.")
    for key, value in fields.items():
        setattr(client, key, value)


def add_contact(session: Session, client: Client, *, name: str, email: str, commit: bool = True, **fields) -> Contact:
    contact = Contact(client_id=client.id, name="", email="", session_epoch=0, created_at=now())
    _apply_contact(session, contact, name=name, email=email, **fields)
    session.add(contact)
    session.flush()
    if commit:
        session.commit()
    return contact


def update_contact(session: Session, contact: Contact, **fields) -> Contact:
    _apply_contact(session, contact, **fields)
    session.commit()
    return contact


def _apply_contact(session: Session, contact: Contact, **fields) -> None:
    unknown = set(fields) - set(CONTACT_FIELDS)
    if unknown:
        raise TypeError(f"unknown contact fields {sorted(unknown)}")
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
        if not fields["name"]:
            raise DomainError("A contact needs a name.")
    if "email" in fields:
        fields["email"] = normalize_email(fields["email"])
        if "@" not in fields["email"]:
            raise DomainError("A contact needs a valid email address.")
        clash = session.scalar(
            select(Contact.id).where(func.lower(Contact.email) == fields["email"], Contact.id != contact.id)
        )
        if clash:
            raise Conflict(f"{fields['email']} is already a contact; an email can sign in for one client only.")
    if fields.get("portal_access") is False and contact.portal_access:
        contact.session_epoch += 1  # removing access also ends any open session
    for key, value in fields.items():
        setattr(contact, key, value)


def find_contact_by_email(session: Session, email: str) -> Contact | None:
    return session.scalar(select(Contact).where(Contact.email == normalize_email(email)))
