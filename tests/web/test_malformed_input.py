"""Malformed input anywhere gives a clear 4xx or a form error, never a 5xx, and a refusal writes nothing.

The walk is generated, not listed: every route in the app's URL map, as an anonymous visitor, a signed-in client
contact and a signed-in staff user. What each route reads is observed, not guessed: a probe request records every
query parameter and form field the view (or its form class) looks up, and the GET page's forms give believable
values for the other fields, so the malformed value in one field meets otherwise valid input and gets as deep as
it can. Each of those names then gets every value of the corpus; path segments get their own.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from io import BytesIO
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from flask import Request
from sqlalchemy import text
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import HTTPException

from portal.domain.invoices import LineInput
from portal.models import Base, MspSettings
from portal.services import delivery
from portal.services.settings import update_settings
from portal.web.auth.identity import Identity
from tests.conftest import _empty_tables, sign_in

NUL = "nul byte"
FILE = "file where text is expected"
CORPUS = {
    NUL: "12\x0034",
    "lone surrogate": "\ud800",
    "id past 32 bits": "99999999999",
    "huge number": "9" * 40,
    "exponent": "1e20",
    "unicode digit": "²",
    "far past": "0001-01-01",
    "far future": "9999-12-31",
    "negative": "-1",
    "very long": "x" * 20_000,
    FILE: None,
}
# path segments: what a string segment (token, reference) or an id segment can be sent as
PATH_CORPUS = {"nul byte": "%00", "lone surrogate": "%ED%A0%80", "unicode digit": "%C2%B2",
               "id past 32 bits": "99999999999", "very long": "x" * 5_000}
IDENTITIES = ("anonymous", "contact", "staff")  # staff last: its actions (void, sign out everywhere) change the rest
SKIP_ENDPOINTS = {"static"}
PLAUSIBLE_DATE = "2026-03-16"


class ReadRecordingRequest(Request):
    """The real request, which also notes every query/form name the view looks up (how the walk learns what a
    route reads). Iterating (as the input check does) is not a lookup and is not noted."""

    reads: set[str] = set()

    @property
    def args(self):
        return _Recording(Request.args.__get__(self, Request), ReadRecordingRequest.reads)

    @property
    def form(self):
        return _Recording(Request.form.__get__(self, Request), ReadRecordingRequest.reads)


class _Recording(ImmutableMultiDict):
    def __init__(self, source, reads: set[str]):
        super().__init__(source)
        self._reads = reads

    def _note(self, key):
        if isinstance(key, str):
            self._reads.add(key)

    def __contains__(self, key):
        self._note(key)
        return super().__contains__(key)

    def __getitem__(self, key):
        self._note(key)
        return super().__getitem__(key)

    def get(self, key, default=None, type=None):  # noqa: A002 (MultiDict's own signature)
        self._note(key)
        return super().get(key, default, type)

    def getlist(self, key, type=None):  # noqa: A002
        self._note(key)
        return super().getlist(key, type)


@dataclass
class Walk:
    http: object
    session: object
    records: dict
    failures: list[str] = field(default_factory=list)
    known: dict[str, str] = field(default_factory=dict)  # string path arguments seen in links, emails, redirects
    forms: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # believable values by form action
    cookies: dict[str, str] = field(default_factory=dict)  # a signed-in session cookie per identity id
    requests: int = 0

    def counts(self) -> tuple[int, ...]:
        """Rows in every table, in one statement (taken around each of the walk's ~8,000 requests; built as a
        SQLAlchemy select it cost more to build and compile each time than the request it checked)."""
        self.session.rollback()
        return tuple(self.session.execute(_COUNTS).one())


_COUNTS = text("SELECT " + ", ".join(f'(SELECT count(*) FROM "{t.name}")' for t in Base.metadata.sorted_tables))


def _enc(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _encoded(pairs) -> str:
    return "&".join(f"{_enc(k)}={_enc(v)}" for k, v in pairs)


def _send(walk: Walk, identity: str, method: str, path: str, pairs=(), upload: str | None = None):
    """One request as ``identity``; ``pairs`` go in the query string (GET) or the form body (POST)."""
    _become(walk, identity)
    ReadRecordingRequest.reads = set()
    walk.requests += 1
    if method == "GET":
        response = walk.http.get(path, query_string=_encoded(pairs))
    elif upload is not None:
        data = {k: v for k, v in pairs if k != upload}
        data[upload] = (BytesIO(b"%PDF-1.4 not text"), "upload.pdf")
        response = walk.http.post(path, data=data, content_type="multipart/form-data")
    else:
        response = walk.http.post(path, data=_encoded(pairs), content_type="application/x-www-form-urlencoded")
    _learn(walk, response)
    return response


def _become(walk: Walk, identity: str) -> None:
    """A fresh session as ``identity`` for each request (a request before may have signed out, or staff may have
    signed a contact out everywhere: a new identity id). The signed-in cookie is made once per identity id: making
    it through a session transaction for each of the walk's requests was a tenth of the walk's time."""
    walk.http.delete_cookie("session")
    if identity == "anonymous":
        return
    walk.session.expire_all()
    record = walk.session.get(type(walk.records[identity]), walk.records[identity].id)
    key = Identity(record).get_id()
    if key not in walk.cookies:
        sign_in(walk.http, record)
        walk.cookies[key] = walk.http.get_cookie("session").value
    walk.http.set_cookie("session", walk.cookies[key])


_PATHS = re.compile(r"""(?:href|action)="([^"]+)"|(?:https?://localhost)(/[^\s"'<>]+)""")


def _learn(walk: Walk, response) -> None:
    """String path arguments (tokens, references) from the page's links and forms and from redirects."""
    text = response.get_data(as_text=True) if response.mimetype == "text/html" else ""
    for action, pairs in _page_forms(text).items():
        walk.forms.setdefault(urlsplit(action).path or response.request.path, pairs)
    found = [a or b for a, b in _PATHS.findall(text)] + [response.headers.get("Location") or ""]
    for url in found:
        _learn_path(walk, html.unescape(url))


def _learn_path(walk: Walk, url: str) -> None:
    adapter = walk.http.application.url_map.bind("localhost")
    try:
        _endpoint, values = adapter.match(urlsplit(url).path)
    except HTTPException:
        return
    for name, value in values.items():
        if isinstance(value, str) and name != "filename":
            walk.known.setdefault(name, value)


def _learn_outbox(walk: Walk, outbox: Path) -> None:
    for message in sorted(outbox.glob("*.eml")):
        for match in re.findall(r"http://localhost(/[^\s\"'<>]+)", message.read_text(errors="replace")):
            _learn_path(walk, match)
        walk.known.setdefault("name", message.name)


_ARG = re.compile(r"<(?:[^>:]+:)?(\w+)>")


def _path(rule, walk: Walk, bad: tuple[str, str] | None = None) -> str:
    def segment(match):
        name = match[1]
        if bad and bad[0] == name:
            return bad[1]
        if rule._converters[name].regex == r"\d+":
            return "1"  # every seeded table starts at id 1
        return _enc(walk.known.get(name, "unknown"))
    return _ARG.sub(segment, rule.rule)


def _page_forms(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each POST form on a page: its action path and believable values for its fields (as a browser would send)."""
    forms = {}
    for form in re.finditer(r"<form\b([^>]*)>(.*?)</form>", text, re.S):
        attrs, body = form.group(1), form.group(2)
        if 'method="post"' not in attrs.lower():
            continue
        action = re.search(r'action="([^"]*)"', attrs)
        pairs = []
        for tag in re.finditer(r"<(input|select|textarea)\b([^>]*)>", body):
            name = re.search(r'\bname="([^"]+)"', tag.group(2))
            if not name:
                continue
            kind = (re.search(r'\btype="([^"]+)"', tag.group(2)) or [None, "text"])[1]
            value = re.search(r'\bvalue="([^"]*)"', tag.group(2))
            if tag.group(1) == "select":
                rest = body[tag.end():]
                chosen = re.search(r'<option[^>]*\bselected[^>]*value="([^"]*)"|<option[^>]*value="([^"]*)"', rest)
                pairs.append((name[1], html.unescape((chosen[1] or chosen[2]) if chosen else "")))
            elif kind in ("checkbox", "radio"):
                if "checked" in tag.group(2) or kind == "checkbox":
                    pairs.append((name[1], html.unescape(value[1] if value else "y")))
            elif kind not in ("submit", "button", "file"):
                pairs.append((name[1], html.unescape(value[1]) if value and value[1] else _plausible(name[1], kind)))
        forms.setdefault(html.unescape(action[1]) if action else "", pairs)
    return forms


def _plausible(name: str, kind: str) -> str:
    """A value a person would type into an empty field of this name and type."""
    if kind == "email" or "email" in name:
        return "someone@example.com"
    if kind == "date" or "date" in name or name.endswith("_on"):
        return PLAUSIBLE_DATE
    if kind == "password" or "password" in name:
        return "a long enough passphrase 42"
    return "1"


def _representative(name: str) -> bool:
    """Rows of a repeated group (invoice lines) behave alike: the first row stands for all of them."""
    return not re.search(r"-[1-9]\d*-", name)


def _check(walk: Walk, response, before: tuple[int, ...], where: str, method: str) -> None:
    if response.status_code >= 500:
        walk.failures.append(f"{response.status_code}: {where}")
        return
    refused = response.status_code >= 400 or (method == "POST" and response.status_code == 200)
    if refused and walk.counts() != before:
        walk.failures.append(f"refused ({response.status_code}) but rows were written: {where}")


def _walk_route(walk: Walk, rule, method: str, identity: str) -> None:
    path = _path(rule, walk)
    base = walk.forms.get(path, []) if method == "POST" else []
    probe = _send(walk, identity, method, path, [*base, ("_probe", "1")])
    names = {n for n in ReadRecordingRequest.reads | {k for k, _ in base}
             if n not in ("_probe", "csrf_token") and _representative(n)}
    if probe.status_code >= 500:
        walk.failures.append(f"{probe.status_code}: {identity} {method} {path} (believable values)")
    for name in sorted(names):
        for label, value in CORPUS.items():
            if value is None and method == "GET":
                continue
            before = walk.counts()
            others = [(k, v) for k, v in base if k != name]
            if value is None:
                response = _send(walk, identity, method, path, [*others, (name, "")], upload=name)
            else:
                response = _send(walk, identity, method, path, [*others, (name, value)])
            _check(walk, response, before, f"{identity} {method} {path} {name}={label}", method)
    for arg in rule.arguments:
        for label, segment in PATH_CORPUS.items():
            before = walk.counts()
            bad_path = _path(rule, walk, (arg, segment))
            response = _send(walk, identity, method, bad_path, base)
            _check(walk, response, before, f"{identity} {method} {rule.rule} <{arg}>={label}", method)


@pytest.fixture
def walk(app, session, make, http, outbox) -> Walk:
    app.request_class = ReadRecordingRequest
    update_settings(session, name="Acme IT", email="billing@acme.test")
    staff = make.staff()
    client = make.client("Harbor Dental Group LLC")
    contact = make.contact(client, email="dana@harbor.test", name="Dana Whitfield")
    lines = [LineInput("Managed endpoints", Decimal(12), 4_150), LineInput("Backup storage", Decimal(1), 7_120)]
    invoice = make.invoice(client, lines=lines, due_date=date(2026, 4, 15))
    make.invoice(client, issue=False)
    make.payment(client, 2_500)
    delivery.send_invoice(session, app.extensions["runtime"], invoice, contacts=[contact], actor=None)
    session.commit()
    result = Walk(http, session, {"staff": staff, "contact": contact})
    _learn_outbox(result, outbox)
    return result


def test_no_route_fails_on_malformed_input(app, walk, outbox):
    rules = [r for r in app.url_map.iter_rules() if r.endpoint not in SKIP_ENDPOINTS]
    for identity in IDENTITIES:
        for rule in rules:  # a first look at every page, to learn tokens and references from links and redirects
            if "GET" in rule.methods:
                _send(walk, identity, "GET", _path(rule, walk))
        _learn_outbox(walk, outbox)
        for rule in rules:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                _walk_route(walk, rule, method, identity)
    assert not walk.failures, "\n".join(walk.failures)
    assert walk.requests > 1_000  # the walk really ran: routes were found and fields were discovered


def test_refused_text_and_numbers_say_why_and_write_nothing(walk):
    """Spot checks of what the walk only counts: the message a person sees."""
    before = walk.counts()
    nul = _send(walk, "anonymous", "POST", "/login", [("email", "dana@harbor.test\x00")])
    assert nul.status_code == 400
    assert "cannot be saved" in nul.get_data(as_text=True)
    upload = _send(walk, "anonymous", "POST", "/login", [("email", "")], upload="email")
    assert upload.status_code == 200
    assert "This field takes text, not a file." in upload.get_data(as_text=True)
    assert walk.counts() == before


def test_error_page_after_a_database_error_is_the_portals_own(app_config, _schema, clock):
    """A statement that fails inside a request must not also break the error page (which reads the MSP's name)."""
    from portal import create_app, db

    application = create_app({**app_config, "PROPAGATE_EXCEPTIONS": False})
    application.extensions["clock"] = clock

    @application.get("/_test/broken-write")
    def broken_write():
        session = db.session()
        session.add(MspSettings(id=1, name=None))  # NOT NULL: the flush fails and the session needs a rollback
        session.flush()

    try:
        with application.app_context():
            update_settings(db.session(), name="Acme IT")
        response = application.test_client().get("/_test/broken-write")
        body = response.get_data(as_text=True)
        assert response.status_code == 500
        assert "Something went wrong on our side" in body
        assert "Acme IT" in body  # the portal's own page, rendered with the MSP's settings from a fresh session
    finally:
        application.extensions["db_engine"].dispose()
        _empty_tables(_schema)


def test_invoice_quantity_and_dates_beyond_bounds_are_form_errors(walk):
    new_invoice = "/admin/clients/1/invoices/new"
    line = [("lines-0-description", "Servers"), ("lines-0-unit_price", "999999999999.99"), ("save_issue", "y")]
    before = walk.counts()
    too_many = _send(walk, "staff", "POST", new_invoice, [*line, ("lines-0-quantity", "1e20")])
    assert too_many.status_code == 200
    assert "A quantity cannot be more than 1,000,000." in too_many.get_data(as_text=True)
    too_much = _send(walk, "staff", "POST", new_invoice, [*line, ("lines-0-quantity", "1000")])
    assert "A line amount cannot be more than $999,999,999,999.99." in html.unescape(too_much.get_data(as_text=True))
    far = _send(walk, "staff", "POST", new_invoice, [*line, ("lines-0-quantity", "1"), ("issue_date", "9999-12-31")])
    assert "The date must be between 1900 and 2199." in far.get_data(as_text=True)
    assert walk.counts() == before
