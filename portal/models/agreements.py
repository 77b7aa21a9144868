"""Agreements a client signs (payment terms now; autopay authorizations and installment plans later), the
template versions they are signed against, and the append-only, hash-chained evidence of every step.

Published versions and events are insert-only. The guards at the bottom refuse an UPDATE or DELETE of either
through the ORM, so a code path that tries is a loud bug rather than silently rewritten evidence.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.domain.evidence import AgreementStatus

from .base import Base
from .core import Client, Contact


class TermsTemplate(Base):
    """The editable draft of one kind of document (payment terms, the E-SIGN disclosure). One row per kind."""

    __tablename__ = "terms_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), unique=True)
    title: Mapped[str]
    draft_text: Mapped[str] = mapped_column(Text)
    draft_parameters: Mapped[str] = mapped_column(Text, default="{}")  # JSON object of strings
    updated_at: Mapped[datetime]
    updated_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    versions: Mapped[list[TermsVersion]] = relationship(back_populates="template", order_by="TermsVersion.number")


class TermsVersion(Base):
    """A published, immutable version: its text, parameters and the SHA-256 covering both."""

    __tablename__ = "terms_versions"
    __table_args__ = (UniqueConstraint("template_id", "number", name="template_number"),
                      Index("ix_terms_versions_kind_number", "kind", "number"))

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("terms_templates.id"))
    kind: Mapped[str] = mapped_column(String(30))  # copied from the template so "current version" is one query
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str]
    text: Mapped[str] = mapped_column(Text)
    parameters: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text, default="")  # what changed, in the admin's words
    published_at: Mapped[datetime]
    published_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))

    template: Mapped[TermsTemplate] = relationship(back_populates="versions")


class Agreement(Base):
    """One client's signature (or pending invitation) on one version of a document.

    status: invited → signed | declined | void | superseded (an invitation overtaken by a newer version),
    and signed → superseded once the client signs a newer version (it stays readable and downloadable).
    """

    __tablename__ = "agreements"
    __table_args__ = (
        Index("ix_agreements_client_version_status", "client_id", "version_id", "status"),
        Index("ix_agreements_pdf_sha256", "pdf_sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("terms_versions.id"))
    version_sha256: Mapped[str] = mapped_column(String(64))  # the version hash this signature binds to
    status: Mapped[str] = mapped_column(String(12), default=AgreementStatus.INVITED)
    # "<client>:<kind>:<version>" while invited, NULL otherwise: at most one open invitation per client/version.
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    # Exactly what the signer sees: the merged text, the HTML fragment shown (and hashed) and its SHA-256.
    merged_variables: Mapped[str] = mapped_column(Text)  # canonical JSON
    document_text: Mapped[str] = mapped_column(Text, deferred=True)  # large: loaded only when read
    document_html: Mapped[str] = mapped_column(Text, deferred=True)
    document_sha256: Mapped[str] = mapped_column(String(64))

    invited_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    invited_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime]
    last_emailed_at: Mapped[datetime | None]

    disclosure_version_id: Mapped[int | None] = mapped_column(ForeignKey("terms_versions.id"))
    signer_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    signer_name: Mapped[str] = mapped_column(default="")
    signer_title: Mapped[str] = mapped_column(default="")
    signer_email: Mapped[str] = mapped_column(String(320), default="")
    authority_statement: Mapped[str] = mapped_column(Text, default="")
    signature_kind: Mapped[str] = mapped_column(String(10), default="")  # typed | drawn
    signature_text: Mapped[str] = mapped_column(default="")
    signature_png: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    signed_at: Mapped[datetime | None]
    signed_ip: Mapped[str] = mapped_column(String(64), default="")
    signed_chain_head: Mapped[str] = mapped_column(String(64), default="")  # printed on the certificate page

    signed_pdf: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    pdf_sha256: Mapped[str | None] = mapped_column(String(64))

    declined_at: Mapped[datetime | None]
    decline_reason: Mapped[str] = mapped_column(Text, default="")
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str] = mapped_column(Text, default="")
    superseded_at: Mapped[datetime | None]
    outdated_at: Mapped[datetime | None]  # a newer version was published after this one was signed

    # The chain's head and length, so deleting the newest events is detected too.
    chain_head: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    # HMAC of (reference, event_count, chain_head) under the install's evidence key, which is not in the database:
    # a chain rewritten whole with fresh hashes no longer matches it (portal.domain.evidence.anchor).
    chain_anchor: Mapped[str] = mapped_column(String(64), default="")

    client: Mapped[Client] = relationship()
    version: Mapped[TermsVersion] = relationship(foreign_keys=[version_id])
    disclosure_version: Mapped[TermsVersion | None] = relationship(foreign_keys=[disclosure_version_id])
    invited_contact: Mapped[Contact | None] = relationship(foreign_keys=[invited_contact_id])
    signer_contact: Mapped[Contact | None] = relationship(foreign_keys=[signer_contact_id])


class AgreementEvent(Base):
    """One step of the evidence trail. ``hash`` covers ``prev_hash`` and every other column (see
    portal.domain.evidence); the unique (agreement, seq) stops two writers from forking the chain."""

    __tablename__ = "agreement_events"
    __table_args__ = (UniqueConstraint("agreement_id", "seq", name="agreement_seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(500), default="")
    session_id: Mapped[str] = mapped_column(String(64), default="")
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    data: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class ImmutableRecord(RuntimeError):
    """Code tried to change evidence or a published version. A bug, not a user error."""


def _refuse_change(_mapper, _connection, target) -> None:
    raise ImmutableRecord(f"{type(target).__name__} rows are insert-only")


for _model in (TermsVersion, AgreementEvent):
    event.listen(_model, "before_update", _refuse_change)
    event.listen(_model, "before_delete", _refuse_change)
