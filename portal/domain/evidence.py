"""Tamper-evident evidence for signed agreements, pure standard library.

- Every agreement event is reduced to a canonical JSON body; its hash covers the previous event's hash, so the
  events of one agreement form a chain: editing, removing or reordering any stored event breaks verification.
- Documents are merged from a template with ``{{ variable }}`` placeholders and turned into a small, fully escaped
  HTML fragment. That fragment is what the signer sees, what is hashed and what is stored.
- A readable line diff shows a client what changed between two versions of its terms.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import hmac
import html
import json
import re
import secrets
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import DomainError

GENESIS = "0" * 64  # the "previous hash" of an agreement's first event


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no whitespace, UTF-8. Floats are refused (they do not round-trip
    reliably between databases); evidence stores numbers as integers and amounts or rates as strings."""
    return json.dumps(_no_floats(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _no_floats(value: Any) -> Any:
    if isinstance(value, float):
        raise TypeError("evidence data must not contain floats")
    if isinstance(value, Mapping):
        return {str(k): _no_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_floats(v) for v in value]
    return value


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


# ---------------------------------------------------------------------------------------------------- hash chain

@dataclass(frozen=True)
class EventFacts:
    """Everything an event's hash covers. ``agreement_reference`` ties the event to its agreement, so an event
    moved to another agreement's chain no longer verifies."""

    agreement_reference: str
    seq: int
    kind: str
    occurred_at: datetime
    ip: str = ""
    user_agent: str = ""
    session_id: str = ""
    contact_id: int | None = None
    staff_id: int | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


def utc_stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("evidence times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(facts: EventFacts) -> dict[str, Any]:
    return {
        "agreement": facts.agreement_reference,
        "seq": facts.seq,
        "kind": facts.kind,
        "occurred_at": utc_stamp(facts.occurred_at),
        "ip": facts.ip,
        "user_agent": facts.user_agent,
        "session_id": facts.session_id,
        "contact_id": facts.contact_id,
        "staff_id": facts.staff_id,
        "data": dict(facts.data),
    }


def event_hash(prev_hash: str, facts: EventFacts) -> str:
    return sha256_hex(prev_hash.encode("ascii") + b"\n" + canonical_json(event_body(facts)))


@dataclass(frozen=True)
class Link:
    """One stored event as read back from the database."""

    facts: EventFacts
    prev_hash: str
    hash: str


def build_chain(events: Sequence[EventFacts]) -> list[Link]:
    links: list[Link] = []
    prev = GENESIS
    for facts in events:
        digest = event_hash(prev, facts)
        links.append(Link(facts, prev, digest))
        prev = digest
    return links


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    count: int
    head: str  # hash of the last event that verified (GENESIS for an empty chain)
    problem: str = ""
    bad_seq: int | None = None


def verify_chain(links: Iterable[Link], *, expected_head: str | None = None,
                 expected_count: int | None = None) -> ChainReport:
    """Recompute every hash from the stored facts. ``expected_head``/``expected_count`` (kept on the agreement)
    catch a chain whose last events were deleted, which a chain alone cannot notice."""
    prev = GENESIS
    count = 0
    for link in sorted(links, key=lambda li: li.facts.seq):
        seq = link.facts.seq
        if seq != count + 1:
            return ChainReport(False, count, prev, f"event {count + 1} is missing", count + 1)
        if link.prev_hash != prev:
            return ChainReport(False, count, prev, f"event {seq} does not point to the event before it", seq)
        if event_hash(prev, link.facts) != link.hash:
            return ChainReport(False, count, prev, f"event {seq} was changed after it was recorded", seq)
        prev = link.hash
        count += 1
    if expected_count is not None and count != expected_count:
        return ChainReport(False, count, prev, f"{expected_count} events were recorded but {count} remain", None)
    if expected_head is not None and prev != expected_head:
        return ChainReport(False, count, prev, "the last event is not the one recorded on the agreement", None)
    return ChainReport(True, count, prev)


def anchor(key: bytes, reference: str, count: int, head: str) -> str:
    """The chain head authenticated with a key kept outside the database (HMAC-SHA-256). Whoever can write the
    database can rebuild a whole chain with fresh hashes, but cannot compute this without the key."""
    message = canonical_json({"agreement": reference, "count": count, "head": head})
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def anchor_matches(key: bytes, reference: str, count: int, head: str, stored: str) -> bool:
    return bool(stored) and hmac.compare_digest(anchor(key, reference, count, head), stored)


# ---------------------------------------------------------------------------------------------------- the record

# The status each event leaves an agreement in; other events ("opened", "outdated", emails) leave it as it was.
class AgreementStatus(StrEnum):
    """An agreement row: invited -> signed | declined | void, or superseded once a newer version is signed (or,
    for an invitation, once a newer version is sent)."""

    INVITED = "invited"
    SIGNED = "signed"
    DECLINED = "declined"
    VOID = "void"
    SUPERSEDED = "superseded"


STATUS_AFTER = {"invited": AgreementStatus.INVITED, "signed": AgreementStatus.SIGNED,
                "declined": AgreementStatus.DECLINED, "voided": AgreementStatus.VOID,
                "superseded": AgreementStatus.SUPERSEDED}


@dataclass(frozen=True)
class SignedRecord:
    """What the chain itself says about a signature: the source of truth a verifier shows, never the row."""

    signed_at: datetime
    ip: str
    contact_id: int | None
    head: str  # the hash of the "signed" event
    data: Mapping[str, Any]  # the signed event's data: signer, title, authority, signature and document hashes
    consent: EventFacts | None  # the signer's consent to electronic records, before signing
    acknowledgments: tuple[Mapping[str, Any], ...]  # the signer's clause acknowledgments, before signing

    def __getitem__(self, name: str) -> Any:
        return self.data.get(name)


def chain_status(links: Sequence[Link]) -> str:
    status = ""
    for link in links:
        status = STATUS_AFTER.get(link.facts.kind, status)
    return status


def signed_record(links: Sequence[Link]) -> SignedRecord | None:
    """Rebuild the signature from the chain (``links`` in order, already verified). None: never signed."""
    signed_at = next((i for i, link in enumerate(links) if link.facts.kind == "signed"), None)
    if signed_at is None:
        return None
    signed = links[signed_at]
    before = [link.facts for link in links[:signed_at] if link.facts.contact_id == signed.facts.contact_id]
    consent = next((f for f in reversed(before) if f.kind == "consented"), None)
    acknowledgments = tuple(f.data for f in before if f.kind == "clause_acknowledged")
    return SignedRecord(signed.facts.occurred_at, signed.facts.ip, signed.facts.contact_id, signed.hash,
                        signed.facts.data, consent, acknowledgments)


# ---------------------------------------------------------------------------------------------------- references

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U to misread
_REFERENCE = re.compile(r"^AGR-([0-9A-Z]{4})-([0-9A-Z]{4})-([0-9A-Z]{4})$")


def new_reference() -> str:
    """A public, unguessable agreement reference (60 random bits), e.g. AGR-7K3M-Q9TD-2XWB."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"AGR-{chars[:4]}-{chars[4:8]}-{chars[8:]}"


def normalize_reference(text: str) -> str | None:
    """What a person typed → a reference, or None. Tolerates case, spaces, missing dashes and look-alikes."""
    raw = re.sub(r"[\s\-_]", "", (text or "").upper())
    raw = raw.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    if raw.startswith("AGR"):
        raw = raw[3:]
    if len(raw) != 12 or any(c not in _ALPHABET for c in raw):
        return None
    reference = f"AGR-{raw[:4]}-{raw[4:8]}-{raw[8:]}"
    return reference if _REFERENCE.match(reference) else None


# ---------------------------------------------------------------------------------------------------- documents

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def check_placeholders(text: str, known: Iterable[str]) -> None:
    unknown = sorted(placeholders(text) - set(known))
    if unknown:
        names = ", ".join("{{ " + n + " }}" for n in unknown)
        raise DomainError(f"The text uses unknown merge variables: {names}.")


def merge(text: str, variables: Mapping[str, str]) -> str:
    """Replace every ``{{ name }}``; an unknown name is an error, never a silently blank clause."""
    check_placeholders(text, variables)
    return _PLACEHOLDER.sub(lambda m: str(variables[m.group(1)]), text)


_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    return _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=True))


def to_html(text: str) -> str:
    """A tiny, deterministic subset of Markdown: ``# title``, ``## clause``, ``### sub-heading``, ``- item``
    lists, ``**bold**`` and paragraphs separated by blank lines. Everything else is escaped text."""
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>\n".join(_inline(line) for line in paragraph) + "</p>")
            paragraph.clear()
        if items:
            out.append("<ul>\n" + "\n".join(f"<li>{_inline(i)}</li>" for i in items) + "\n</ul>")
            items.clear()

    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        stripped = line.strip()
        heading = re.match(r"^(#{1,3})\s+(.*)$", stripped)
        if not stripped:
            flush()
        elif heading:
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif stripped.startswith("- "):
            if paragraph:
                flush()
            items.append(stripped[2:])
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------------- diff

@dataclass(frozen=True)
class DiffLine:
    op: str  # same | added | removed | skipped
    text: str


def line_diff(old: str, new: str, *, context: int = 2) -> list[DiffLine]:
    """Changed lines with a little context; long unchanged stretches collapse into one "skipped" line.
    Blank lines are ignored: they only separate paragraphs and would make the diff noisy."""
    a = [line.rstrip() for line in old.splitlines() if line.strip()]
    b = [line.rstrip() for line in new.splitlines() if line.strip()]
    rows: list[DiffLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            same = a[i1:i2]
            first, last = i1 == 0, i2 == len(a)
            head = [] if first else same[:context]
            tail = [] if last else same[-context:]
            if len(same) <= len(head) + len(tail):
                rows += [DiffLine("same", s) for s in same]
                continue
            hidden = len(same) - len(head) - len(tail)
            rows += [DiffLine("same", s) for s in head]
            rows.append(DiffLine("skipped", f"{hidden} unchanged line{'s' if hidden != 1 else ''}"))
            rows += [DiffLine("same", s) for s in tail]
        else:
            rows += [DiffLine("removed", s) for s in a[i1:i2]]
            rows += [DiffLine("added", s) for s in b[j1:j2]]
    return rows


def has_changes(rows: Sequence[DiffLine]) -> bool:
    return any(r.op in ("added", "removed") for r in rows)


# ---------------------------------------------------------------------------------------------------- signatures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_SIGNATURE_BYTES = 400_000


def decode_signature_png(data_url: str) -> bytes:
    """The drawn signature as PNG bytes, from the canvas's ``data:image/png;base64,...`` URL."""
    bad = DomainError("The drawn signature could not be read. Clear it and draw it again.")
    prefix = "data:image/png;base64,"
    if not data_url or not data_url.startswith(prefix):
        raise bad
    encoded = data_url[len(prefix):]
    if len(encoded) > MAX_SIGNATURE_BYTES * 4 // 3 + 4:
        raise DomainError("The drawn signature is too large. Clear it and draw it again.")
    try:
        png = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise bad from None
    if len(png) < 33 or not png.startswith(PNG_MAGIC) or png[12:16] != b"IHDR":
        raise bad
    width, height = struct.unpack(">II", png[16:24])
    if not (20 <= width <= 4000 and 10 <= height <= 2000):
        raise bad
    return png
