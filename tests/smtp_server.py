"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests of outgoing email.

The `smtp_server` fixture (tests/conftest.py) hands out one server per test run, emptied before each test.
Point the app at it by overriding `app_config` in the test module, before `app` is built (tests/smtp_fixtures.py
has that override, importable as `mail_through_smtp`):

    @pytest.fixture
    def app_config(app_config, smtp_server):
        app_config["SMTP_URL"] = smtp_server.url
        return app_config

    def test_reminder_is_emailed(app, smtp_server, ...):
        ...
        [received] = smtp_server.messages
        assert received.rcpt_tos == ["ap@client.test"]
        assert received.message["Subject"] == "..."
        body = received.message.get_body(("plain",)).get_content()

To imitate a struggling mail relay, script the replies to the next DATA commands:
`smtp_server.reply_next("451 4.3.0 Try again later")` (temporary) or `"550 5.7.1 Relay denied"` (permanent).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    """One message the server accepted, with the SMTP envelope (which may differ from the To/Cc headers)."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class _Handler:
    def __init__(self, server: SmtpServer):
        self.server = server

    async def handle_DATA(self, _smtp, _session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        return self.server._on_data(envelope)


class _LoopbackController(Controller):
    """aiosmtpd's Controller, listening on a port the OS picks (it cannot report port 0 itself)."""

    def _create_server(self):
        async def create():
            server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=0)
            self.port = server.sockets[0].getsockname()[1]
            return server

        return create()


class SmtpServer:
    def __init__(self, hostname: str = "127.0.0.1"):
        self.messages: list[Received] = []
        self.attempts = 0  # DATA commands seen, including the ones answered with a scripted failure
        self._replies: deque[str] = deque()
        self.while_receiving = None  # called (in the server's thread, no arguments) before a message is accepted
        self._lock = threading.Lock()
        self._controller = _LoopbackController(_Handler(self), hostname=hostname)

    @property
    def host(self) -> str:
        return self._controller.hostname

    @property
    def port(self) -> int:
        return self._controller.port

    @property
    def url(self) -> str:
        """For PORTAL_SMTP_URL / app_config["SMTP_URL"]."""
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()  # also closes its event loop

    def reset(self) -> None:
        with self._lock:
            self.messages.clear()
            self._replies.clear()
            self.attempts = 0
        self.while_receiving = None

    def reply_next(self, *replies: str) -> None:
        """Answer the next DATA commands with these replies (e.g. "451 ..." or "550 ..."), then accept again."""
        with self._lock:
            self._replies.extend(replies)

    def _on_data(self, envelope) -> str:
        if self.while_receiving is not None:
            self.while_receiving()
        with self._lock:
            self.attempts += 1
            if self._replies:
                return self._replies.popleft()
            # Line endings are CRLF on the wire; tests compare bodies with plain "\n" strings.
            raw = (envelope.original_content or envelope.content).replace(b"\r\n", b"\n")
            message = BytesParser(policy=policy.default).parsebytes(raw)
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"
