"""A real SMTP server for the tests (aiosmtpd's Controller, in its own thread, on a free
port) that keeps every message it accepts, and can be taken down, brought back, made slow,
or made to answer 451 for a while."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        return str(body.get_content())


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sink = self._sink
        if sink.delay_s:
            await asyncio.sleep(sink.delay_s)
        with sink.lock:
            if sink.refuse_next > 0:
                sink.refuse_next -= 1
                sink.refused += 1
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(
                envelope.original_content, policy=email.policy.default
            )
            assert isinstance(message, EmailMessage)
            sink.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


class SmtpSink:
    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self._login = login
        self.logins: list[str] = []  # the user names that authenticated
        with socket.socket() as s:  # the Controller wants a concrete port to check it is up
            s.bind(("127.0.0.1", 0))
            self.port: int = s.getsockname()[1]
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.refuse_next = 0
        self.refused = 0
        self.delay_s = 0.0
        self._controller: Controller | None = None

    def start(self) -> None:
        auth: dict[str, Any] = {}
        if self._login is not None:
            # AUTH over plain text is refused by default; fine on the loopback here. (Not
            # auth_required: with that, aiosmtpd warns about AUTH without TLS.)
            auth = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **auth)
        self._controller.start()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and self._login == (
            data.login.decode(),
            data.password.decode(),
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)
