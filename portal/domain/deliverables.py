"""Deliverable files released on payment: which files may be uploaded (by their content, not their name), how big,
and the name a download is offered under. Pure standard library.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from .errors import DomainError

#: 15 MiB: below the app's 16 MiB request limit, so the size message is ours rather than a bare 413.
DEFAULT_MAX_BYTES = 15 * 1024 * 1024
MAX_FILENAME = 120


@dataclass(frozen=True)
class FileType:
    extension: str
    content_type: str
    label: str


TYPES: dict[str, FileType] = {t.extension: t for t in (
    FileType("pdf", "application/pdf", "PDF"),
    FileType("zip", "application/zip", "ZIP archive"),
    FileType("txt", "text/plain", "text"),
    FileType("csv", "text/csv", "CSV"),
    FileType("png", "image/png", "PNG image"),
    FileType("jpg", "image/jpeg", "JPEG image"),
    FileType("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "Word document"),
    FileType("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "Excel workbook"),
)}
ALIASES = {"jpeg": "jpg"}
ALLOWED_LABEL = "PDF, ZIP, TXT, CSV, PNG, JPG, DOCX or XLSX"

_ZIP = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"
_EXECUTABLE = (b"MZ", b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"#!")


def extension(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return ALIASES.get(ext, ext)


def _looks_like_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(data) - 3  # only a character cut at the end of the sample
    return True


def _matches(ext: str, data: bytes) -> bool:
    if ext == "pdf":
        return data.startswith(b"%PDF-")
    if ext == "png":
        return data.startswith(b"\x89PNG\r\n\x1a\n")
    if ext == "jpg":
        return data.startswith(b"\xff\xd8\xff")
    if ext == "zip":
        return data.startswith((_ZIP, _EMPTY_ZIP))
    if ext == "docx":  # a ZIP whose parts are under word/
        return data.startswith(_ZIP) and b"word/" in data
    if ext == "xlsx":
        return data.startswith(_ZIP) and b"xl/" in data
    if ext in ("txt", "csv"):
        return not data.startswith(_EXECUTABLE) and _looks_like_text(data)
    return False


def check_file(filename: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> FileType:
    """The file's type, if its name and its content agree on an allowed one; a clear refusal otherwise."""
    if not data:
        raise DomainError("The file is empty.")
    if len(data) > max_bytes:
        raise DomainError(f"The file is {size_label(len(data))}; the limit is {size_label(max_bytes)}.")
    ext = extension(filename)
    if ext not in TYPES:
        raise DomainError(f"Files of this type cannot be attached. Allowed: {ALLOWED_LABEL}.")
    if not _matches(ext, data):
        raise DomainError(f"The file's content is not a {TYPES[ext].label} file, whatever its name says. "
                          f"Allowed: {ALLOWED_LABEL}.")
    return TYPES[ext]


def sanitize_filename(name: str, ext: str) -> str:
    """A name safe to show and to offer in Content-Disposition: no path, ASCII letters, digits, dot, dash,
    underscore and spaces, never hidden, ending in the checked extension."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = base.rsplit(".", 1)[0] if "." in base else base
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9 ._-]+", "_", base).strip(" ._")
    base = re.sub(r"[ ]{2,}", " ", base)[: MAX_FILENAME - len(ext) - 1] or "file"
    return f"{base}.{ext}"


def size_label(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


LOCKED_MESSAGE = ("This file is released once the invoice is paid. A bank payment counts once it has cleared.")
