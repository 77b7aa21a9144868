"""The MSP's settings row."""

from __future__ import annotations

from sqlalchemy.orm import Session

from portal.models import MspSettings

EDITABLE = ("name", "legal_name", "address", "email", "reply_to", "phone", "website", "currency",
            "default_net_days", "payment_instructions")


def get_settings(session: Session) -> MspSettings:
    """The single settings row. Before the admin saves any, an unsaved placeholder: reading never writes, so a
    page view cannot hold a write lock."""
    row = session.get(MspSettings, 1)
    if row is None:
        row = MspSettings(id=1, name="Your MSP", legal_name="", address="", email="", reply_to="", phone="",
                          website="", currency="USD", default_net_days=30, payment_instructions="")
    return row


def update_settings(session: Session, **fields) -> MspSettings:
    row = get_settings(session)
    if row not in session:
        session.add(row)
    for key, value in fields.items():
        if key not in EDITABLE and key != "logo_filename":
            raise TypeError(f"unknown setting {key}")
        setattr(row, key, value)
    session.commit()
    return row
