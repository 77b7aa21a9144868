"""End-to-end fixtures: the real app served over HTTP on loopback, driven by Debian's headless Chromium.

Fixtures (plus everything in tests/conftest.py: `make`, `session`, `clock`, `outbox`, `smtp_server` ...):

- `live_server`: the app (the test's own `app`, same database, same FrozenClock) served by werkzeug on
  127.0.0.1 with a free port, in a thread. `live_server.url` is e.g. "http://127.0.0.1:41234". In this folder
  `app_config["BASE_URL"]` is that URL, so links in emails point at the live server, and CSRF protection is ON
  (a real browser submits real forms).
- `page`: a Playwright (sync API) page in a fresh browser context, with `base_url` set to the live server, so
  `page.goto("/login")` works. Every console error (CSP violations included) and uncaught page error is collected
  in `browser_errors`; the test FAILS at teardown if any remain. A test that expects one asserts on it and then
  calls `browser_errors.clear()`.
- `browser_errors`: that list of strings.

Records made with `make` are committed by the services, so the server thread sees them. The browser and the
test share the clock: `clock.advance(minutes=20)` in the test is "20 minutes later" for the server too.

Reading an emailed link (e.g. contact sign-in):
- default: no SMTP_URL, so the app writes each email as an .eml file to the `outbox` folder:
      from email import policy
      from email.parser import BytesParser
      [eml] = sorted(outbox.glob("*.eml"))
      message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
      text = message.get_body(("plain",)).get_content()
- or through real SMTP: override `app_config` in the test module with `app_config["SMTP_URL"] = smtp_server.url`
  and read `smtp_server.messages[-1].message` (see tests/smtp_server.py).
Then `page.goto(link)` — the link starts with `live_server.url`.

Mark every test in this folder with `@pytest.mark.e2e` (or `pytestmark = pytest.mark.e2e`).

Chromium comes from Debian (`apt-get install chromium`; PORTAL_CHROMIUM overrides the path). Playwright only
drives it: never run `playwright install`. Without Chromium these tests fail with a message saying so.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

TIMEOUT_MS = 15_000  # for actions and expect(): generous, the CI machine has two busy cores
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync", "--disable-quic",
]


class _AppSlot:
    """The WSGI callable the server runs. The server socket must exist before the app (the app's BASE_URL needs
    the port), so the `live_server` fixture puts the app in later. At teardown the slot refuses new requests and
    waits for the ones in flight (a late favicon request, say), so none still holds a database connection when
    the test's engine is disposed and its tables emptied."""

    def __init__(self):
        self.app = None
        self._in_flight = 0
        self._changed = threading.Condition()

    def __call__(self, environ, start_response):
        with self._changed:
            app = self.app
            if app is not None:
                self._in_flight += 1
        if app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"The test server is not serving."]
        try:
            body = app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return self._tracked(body)  # a streamed body may still read the database

    def _tracked(self, body):
        # Counted done once the body is produced (or abandoned), not in close(): werkzeug skips close() when the
        # browser resets the connection after a redirect (its input drain raises ConnectionResetError).
        try:
            yield from body
        finally:
            try:
                if hasattr(body, "close"):
                    body.close()
            finally:
                self._done()

    def _done(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()

    def close(self, timeout: float = 10) -> None:
        with self._changed:
            self.app = None
            if not self._changed.wait_for(lambda: self._in_flight == 0, timeout):
                raise RuntimeError(f"{self._in_flight} request(s) still running on the live server")


@dataclass
class LiveServer:
    url: str
    server: BaseWSGIServer
    slot: _AppSlot


@pytest.fixture
def _live_http_server() -> Iterator[LiveServer]:
    slot = _AppSlot()
    server = make_server("127.0.0.1", 0, slot, threaded=True)
    yield LiveServer(f"http://127.0.0.1:{server.server_port}", server, slot)
    server.server_close()


@pytest.fixture
def app_config(app_config, _live_http_server):
    app_config["BASE_URL"] = _live_http_server.url
    app_config["WTF_CSRF_ENABLED"] = True
    return app_config


@pytest.fixture
def live_server(app, _live_http_server) -> Iterator[LiveServer]:
    _live_http_server.slot.app = app
    thread = threading.Thread(target=_live_http_server.server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="live-server", daemon=True)
    thread.start()
    yield _live_http_server
    _live_http_server.server.shutdown()
    thread.join(timeout=10)
    _live_http_server.slot.close()


def chromium_path() -> str:
    path = os.environ.get("PORTAL_CHROMIUM") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(f"Chromium not found at {path}. Install Debian's browser (`apt-get install chromium`) or set "
                    "PORTAL_CHROMIUM to its path. Never `playwright install`: the tests drive the system Chromium.",
                    pytrace=False)
    return path


@pytest.fixture(scope="package")  # one Chromium for this folder, closed before the rest of the suite runs
def _browser():
    from playwright.sync_api import expect, sync_playwright

    path = chromium_path()
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def _console(message, errors: list[str]) -> None:
    if message.type != "error":
        return
    url = message.location.get("url", "")
    if url.endswith("/favicon.ico"):  # Chromium asks for it on every page, even JSON; a 404 there is harmless
        return
    errors.append(f"console error: {message.text} ({url})")


@pytest.fixture
def browser_errors() -> list[str]:
    return []


@pytest.fixture
def page(_browser, live_server, browser_errors):
    context = _browser.new_context(base_url=live_server.url, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.on("console", lambda m: _console(m, browser_errors))
    tab.on("pageerror", lambda e: browser_errors.append(f"page error: {e}"))
    yield tab
    context.close()
    if browser_errors:
        pytest.fail("The browser reported errors:\n" + "\n".join(browser_errors), pytrace=False)
