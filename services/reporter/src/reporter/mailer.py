"""The daily report as an email (HTML with a plain-text alternative) and its delivery over
SMTP with aiosmtplib: plain, STARTTLS (EMAIL_USE_TLS) or implicit TLS (EMAIL_USE_SSL)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

import aiosmtplib
from pydantic import SecretStr

from reporter.config import Settings
from reporter.report import DailyReport, render_html, render_text, subject

__all__ = ["Sent", "SmtpConfig", "build_message", "send"]


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    user: str | None
    password: SecretStr | None
    starttls: bool
    ssl: bool
    sender: str
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        assert settings.email_host is not None, "EMAIL_HOST is not set"
        return cls(
            host=settings.email_host,
            port=settings.smtp_port,
            user=settings.email_host_user,
            password=settings.email_host_password,
            starttls=settings.email_use_tls,
            ssl=settings.email_use_ssl,
            sender=settings.email_from,
            timeout_s=settings.email_timeout_s,
        )


def build_message(
    report: DailyReport, sender: str, recipients: Sequence[str], message_id: str
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = subject(report)
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(report.generated_at)
    msg["Message-ID"] = message_id
    msg.set_content(render_text(report))
    msg.add_alternative(render_html(report), subtype="html")
    return msg


@dataclass(frozen=True, slots=True)
class Sent:
    answer: str  # the server's reply to the message
    refused: int  # recipients the server refused while taking the others


async def send(config: SmtpConfig, message: EmailMessage, recipients: Sequence[str]) -> Sent:
    """Deliver ``message`` to ``recipients``. Raises an aiosmtplib error (or OSError,
    TimeoutError) if the server took it for nobody. A report taken for some recipients
    counts as sent: retrying it would repeat it to the others, and a recipient that is
    refused for good would hold back every later report."""
    refused, answer = await aiosmtplib.send(
        message,
        sender=parseaddr(config.sender)[1],  # the envelope takes the bare address
        recipients=list(recipients),
        hostname=config.host,
        port=config.port,
        username=config.user,
        password=config.password.get_secret_value() if config.password else None,
        use_tls=config.ssl,
        # Explicit either way: left to None, aiosmtplib upgrades whenever the server offers it.
        start_tls=config.starttls,
        timeout=config.timeout_s,
    )
    return Sent(answer, len(refused))
