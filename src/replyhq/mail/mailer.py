"""Delivery over SMTP (aiosmtplib): one multipart message, plain text and HTML."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses

import aiosmtplib

from replyhq.settings import Settings


class MailNotConfigured(RuntimeError):
    """No SMTP server is set: the job fails (and is retried) until SMTP_HOST is set."""


def _domain(sender: str) -> str:
    address = getaddresses([sender])[0][1]
    return address.rpartition("@")[2] or "replyhq.local"


def build_message(
    settings: Settings, *, to: str, subject: str, text: str, html: str, message_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = Address(addr_spec=to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    # The same for every run of the job, so a retried mail can be recognised as a duplicate.
    message["Message-ID"] = f"<{message_id}@{_domain(settings.mail_from)}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


async def deliver(settings: Settings, message: EmailMessage) -> None:
    """Hand `message` to SMTP_HOST; raises on any failure (the job is then retried)."""
    if not settings.smtp_host:
        raise MailNotConfigured("SMTP_HOST is not set: no e-mail can be sent")
    await aiosmtplib.send(
        message,
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        use_tls=settings.smtp_tls == "tls",
        start_tls=settings.smtp_tls == "starttls",
        timeout=settings.smtp_timeout_seconds,
    )
