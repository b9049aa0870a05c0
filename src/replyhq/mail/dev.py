"""Mail in development: with SMTP_HOST unset, `replyhq serve` starts the local sink, points the
mailer at it (through the environment, which its server processes inherit) and prints each mail's
links; /dev/mailbox lists them (mail/routes.py)."""

from __future__ import annotations

import os
from pathlib import Path

from replyhq.mail import sink
from replyhq.settings import Settings

MAILBOX_ENV = "REPLYHQ_DEV_MAILBOX"  # the sink's folder; /dev/mailbox exists only when set


def mailbox_dir() -> Path | None:
    folder = os.environ.get(MAILBOX_ENV)
    return Path(folder) if folder else None


def prepare(settings: Settings, host: str, port: int, print_mails: bool) -> sink.Sink | None:
    """Before `serve` starts its processes: PUBLIC_URL defaults to where it listens, and in
    development with no SMTP_HOST the sink starts (returned, for the caller to stop). Each mail's
    links are printed only when `print_mails` (`make dev`'s console, beside its banner): a plain
    `serve` writes only JSON lines, and /dev/mailbox shows every mail either way."""
    public_url = settings.public_url or f"http://{_reachable(host)}:{port}"
    os.environ["PUBLIC_URL"] = public_url
    if settings.environment != "development" or settings.smtp_host:
        return None
    mailbox = f"{public_url.rstrip('/')}/dev/mailbox"

    def announce(mail: sink.Mail) -> None:
        if not print_mails:
            return
        lines = [f"mail to {mail.to}: {mail.subject}"]
        lines += [f"  link     {link}" for link in mail.links]
        lines.append(f"  mailbox  {mailbox}")
        print("\n".join(lines), flush=True)

    started = sink.start(Path(settings.data_dir).resolve() / "mailbox", announce)
    os.environ.update(
        {
            "SMTP_HOST": started.host,
            "SMTP_PORT": str(started.port),
            "SMTP_TLS": "none",
            MAILBOX_ENV: str(started.directory),
        }
    )
    return started


def _reachable(host: str) -> str:
    """An address a browser on this machine can open, for a server listening on `host`."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
