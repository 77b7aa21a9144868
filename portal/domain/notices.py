"""Formal notices before remote disable or equipment recovery: when the signed terms allow one, the earliest date
remote disable may occur, and the clause quoted from the document the client signed. Pure standard library.

Why the thresholds come from the signed agreement's merged variables and never from the current template: the
client is bound by the version it signed (portal.domain.terms), so a notice relies on exactly those numbers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from . import terms as T
from .errors import DomainError
from .evidence import merge


class NoticeKind(StrEnum):
    REMOTE_DISABLE = "remote_disable"
    EQUIPMENT_RECOVERY = "equipment_recovery"


class NoticeStatus(StrEnum):
    ISSUED = "issued"  # live: the banner shows, the date stands
    WITHDRAWN = "withdrawn"  # paid, or withdrawn by the MSP


class WithdrawReason(StrEnum):
    PAID = "paid"
    STAFF = "staff"


KIND_TITLES = {NoticeKind.REMOTE_DISABLE: "Notice of remote disabling of systems",
               NoticeKind.EQUIPMENT_RECOVERY: "Notice of equipment recovery"}

#: Events on the client's terms agreement (its evidence chain).
ISSUED_EVENT, DELIVERED_EVENT, DELIVERY_FAILED_EVENT = "notice_issued", "notice_delivered", "notice_delivery_failed"
OPENED_EVENT, WITHDRAWN_EVENT = "notice_opened", "notice_withdrawn"

#: The section of the default terms each kind relies on (its heading), and the acknowledged clause behind it.
_SECTION_HEADINGS = {NoticeKind.REMOTE_DISABLE: "Remote disabling of systems",
                     NoticeKind.EQUIPMENT_RECOVERY: "Equipment ownership and recovery"}

NO_SIGNED_TERMS = ("This client has not signed your payment terms, so they give no right to remote disable or "
                   "recover equipment. Ask the client to sign the terms first.")


def parse_kind(value: str) -> NoticeKind:
    try:
        return NoticeKind(value)
    except ValueError:
        raise DomainError("Choose remote disable or equipment recovery.") from None


@dataclass(frozen=True)
class NoticeTerms:
    """The two numbers of the signed terms a notice relies on."""

    remote_disable_days: int  # N: days past due after which remote disable is allowed
    notice_days: int  # M: written notice before remote disable


def _days(variables: Mapping[str, str], name: str) -> int | None:
    try:
        value = int(str(variables.get(name, "")).strip())
    except ValueError:
        return None
    return value if value >= 1 else None


def terms_from(variables: Mapping[str, str] | None) -> NoticeTerms:
    if variables is None:
        raise DomainError(NO_SIGNED_TERMS)
    n, m = _days(variables, "remote_disable_days"), _days(variables, "remote_disable_notice_days")
    if n is None or m is None:
        raise DomainError("The terms this client signed do not set a remote-disable threshold and notice period, "
                          "so no notice can rely on them.")
    return NoticeTerms(n, m)


def parse_variables(raw: str | None) -> dict[str, str] | None:
    try:
        found = json.loads(raw or "")
    except ValueError:
        return None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None


@dataclass(frozen=True)
class PastDue:
    days: int  # of the oldest unpaid past-due invoice (0: nothing past due)
    cents: int  # everything past due


def past_due(items: Iterable[tuple[date, int]], today: date) -> PastDue:
    """(due date, balance) of open invoices -> how late the oldest is and what is past due. Money on its way (a
    bank payment still clearing) is not in these balances: only settled money pays."""
    late = [(due, cents) for due, cents in items if due < today and cents > 0]
    if not late:
        return PastDue(0, 0)
    return PastDue((today - min(due for due, _ in late)).days, sum(cents for _, cents in late))


def check_may_issue(terms: NoticeTerms, late: PastDue) -> None:
    if late.cents <= 0:
        raise DomainError("Nothing is past due, so there is nothing to give notice of.")
    if late.days < terms.remote_disable_days:
        raise DomainError(f"Not yet: the oldest invoice is {late.days} days past due and the signed terms allow this "
                          f"notice only from {terms.remote_disable_days} days past due "
                          f"({terms.remote_disable_days - late.days} more day"
                          f"{'s' if terms.remote_disable_days - late.days != 1 else ''}).")


def check_equipment(kind: NoticeKind, equipment: Sequence[EquipmentLine]) -> None:
    """An equipment-recovery notice names what is to be recovered: none without equipment the MSP still owns."""
    if kind == NoticeKind.EQUIPMENT_RECOVERY and not equipment:
        raise DomainError("No equipment owned by you until paid is in this client's register, so there is nothing "
                          "to recover: add it to the register first (Equipment, orders and credit limit).")


def grounds_remain(terms: NoticeTerms, late: PastDue) -> bool:
    """A live notice stands while an invoice is still past the threshold; once that is paid it is withdrawn."""
    return late.cents > 0 and late.days >= terms.remote_disable_days


def disable_permitted_on(issued_on: date, terms: NoticeTerms) -> date:
    """The earliest date remote disable may occur: the full notice period after the day the notice is given."""
    return issued_on + timedelta(days=terms.notice_days)


def open_key(client_id: int, kind: NoticeKind) -> str:
    return f"{client_id}:{kind.value}"


def quote_clause(document_text: str, kind: NoticeKind, variables: Mapping[str, str]) -> str:
    """The section of the signed document the notice relies on, word for word; when the MSP rewrote its terms
    without that heading, the high-risk clause statement the signer acknowledged, merged with the same values."""
    heading = _SECTION_HEADINGS[kind]
    lines = (document_text or "").splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#") and heading.lower() in line.lower():
            body: list[str] = []
            for following in lines[i + 1:]:
                if following.startswith("#"):
                    break
                body.append(following)
            title = re.sub(r"^#+\s*", "", line).strip()
            text = "\n".join(body).strip()
            if text:
                return f"{title}\n\n{_plain(text)}"
    clause = next(c for c in T.HIGH_RISK_CLAUSES if c.key == kind.value)
    return f"{clause.title}\n\n{merge(clause.statement, dict(variables))}"


def _plain(markdown: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"\1", markdown)


@dataclass(frozen=True)
class EquipmentLine:
    item: str
    serial_number: str
    location: str
    value_cents: int


def equipment_json(lines: Iterable[EquipmentLine]) -> str:
    return json.dumps([{"item": e.item, "serial_number": e.serial_number, "location": e.location,
                        "value_cents": e.value_cents} for e in lines], sort_keys=True)


def equipment_from_json(raw: str) -> list[EquipmentLine]:
    try:
        rows = json.loads(raw or "[]")
    except ValueError:
        return []
    return [EquipmentLine(str(r.get("item", "")), str(r.get("serial_number", "")), str(r.get("location", "")),
                          int(r.get("value_cents", 0))) for r in rows if isinstance(r, dict)]
