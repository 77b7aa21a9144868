"""The MSP's logo: shown on sign-in pages, invoices and PDFs, so only small, real PNG or JPEG images are kept.

The type is decided by the file's first bytes, never by its name or the browser's claimed content type.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy.orm import Session

from portal.domain.errors import DomainError

from .settings import get_settings, update_settings

MAX_LOGO_BYTES = 1024 * 1024
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"))
MIMETYPES = {"png": "image/png", "jpg": "image/jpeg"}


def image_kind(data: bytes) -> str | None:
    for magic, kind in _SIGNATURES:
        if data.startswith(magic):
            return kind
    return None


def save_logo(session: Session, uploads: Path, data: bytes) -> str:
    """Store the logo under a content-derived name and point the settings at it; returns the file name."""
    if not data:
        raise DomainError("Choose an image file to upload.")
    if len(data) > MAX_LOGO_BYTES:
        raise DomainError("The logo must be 1 MB or smaller.")
    kind = image_kind(data)
    if kind is None:
        raise DomainError("The logo must be a PNG or JPEG image.")
    name = f"logo-{hashlib.sha256(data).hexdigest()[:16]}.{kind}"
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / name).write_bytes(data)
    previous = get_settings(session).logo_filename
    update_settings(session, logo_filename=name)
    if previous and previous != name:
        _remove(uploads, previous)
    return name


def remove_logo(session: Session, uploads: Path) -> None:
    previous = get_settings(session).logo_filename
    update_settings(session, logo_filename=None)
    if previous:
        _remove(uploads, previous)


def logo_path(session: Session, uploads: Path) -> Path | None:
    name = get_settings(session).logo_filename
    if not name:
        return None
    path = uploads / name
    # the name comes from our own database, but keep the file inside the uploads folder regardless
    if path.resolve().parent != uploads.resolve() or not path.is_file():
        return None
    return path


def _remove(uploads: Path, name: str) -> None:
    path = uploads / name
    if path.resolve().parent == uploads.resolve():
        path.unlink(missing_ok=True)
