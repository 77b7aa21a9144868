"""Reading the outbox folder: emails written as .eml files when no SMTP server is configured.

A message is named only by a file that is in the folder listing, so a crafted name (``../portal.db``) can
never reach the filesystem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

from .errors import NotFound

SUFFIX = ".eml"
MAX_BODY_CHARS = 200_000  # a page, not a download: keep a runaway message from flooding the browser


@dataclass(frozen=True)
class MessageSummary:
    name: str
    date: datetime | None
    to: str
    subject: str


@dataclass(frozen=True)
class MessageDetail:
    name: str
    subject: str
    headers: list[tuple[str, str]]
    text: str
    html_only: bool
    attachments: list[str]


def message_names(folder: Path) -> list[str]:
    """Every .eml file, newest first. The outbox names files by their UTC timestamp, so name order is time order."""
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(SUFFIX)), reverse=True)


def summaries(folder: Path, names: list[str]) -> list[MessageSummary]:
    result = []
    for name in names:
        message = _parse(folder / name, headers_only=True)
        result.append(MessageSummary(name, _date(message), str(message["To"] or ""), str(message["Subject"] or "")))
    return result


def read_message(folder: Path, name: str) -> MessageDetail:
    if name not in message_names(folder):
        raise NotFound()
    message = _parse(folder / name)
    headers = [(key, str(value)) for key, value in message.items()]
    body = message.get_body(preferencelist=("plain",))
    html_only = body is None and message.get_body(preferencelist=("html",)) is not None
    text = body.get_content() if body is not None else ""
    attachments = [part.get_filename() or "(unnamed)" for part in message.iter_attachments()]
    return MessageDetail(name, str(message["Subject"] or ""), headers, text[:MAX_BODY_CHARS], html_only, attachments)


def _parse(path: Path, *, headers_only: bool = False) -> EmailMessage:
    with path.open("rb") as fh:
        return BytesParser(policy=policy.default).parse(fh, headersonly=headers_only)  # type: ignore[return-value]


def _date(message: EmailMessage) -> datetime | None:
    raw = message["Date"]
    if not raw:
        return None
    try:
        return parsedate_to_datetime(str(raw))
    except (TypeError, ValueError):
        return None
