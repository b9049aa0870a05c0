"""The local SMTP sink of development (`make dev` with SMTP_HOST unset): an aiosmtpd server on
loopback that keeps every mail it receives as an .eml file in a folder, prints who it is for and
its links on the console, and lets /dev/mailbox list them. Nothing leaves the machine."""

from __future__ import annotations

import logging
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class Mail:
    id: str
    received_at: datetime
    sender: str
    to: str
    subject: str
    text: str
    html: str

    @property
    def links(self) -> list[str]:
        return LINK.findall(self.text)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "from": self.sender,
            "to": self.to,
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "links": self.links,
        }


def parse(mail_id: str, raw: bytes) -> Mail:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    stamp = int(mail_id.split("-", 1)[0]) / 1e9
    return Mail(
        id=mail_id,
        received_at=datetime.fromtimestamp(stamp, UTC),
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        text=text.get_content() if text is not None else "",
        html=html.get_content() if html is not None else "",
    )


def read_mailbox(directory: Path, limit: int = 100) -> list[Mail]:
    """The newest `limit` mails in the folder, newest first."""
    files = sorted(directory.glob("*.eml"), reverse=True)[:limit]
    return [parse(path.stem, path.read_bytes()) for path in files]


class _Keeper:
    def __init__(self, directory: Path, announce: Callable[[Mail], None]) -> None:
        self.directory = directory
        self.announce = announce

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail_id = f"{time.time_ns()}-{uuid.uuid4().hex[:8]}"
        raw: bytes = envelope.original_content or envelope.content
        path = self.directory / f"{mail_id}.eml"
        path.write_bytes(raw)
        self.announce(parse(mail_id, raw))
        return "250 Message accepted for delivery"


@dataclass
class Sink:
    host: str
    port: int
    directory: Path
    _controller: Controller

    def stop(self) -> None:
        self._controller.stop()


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def start(directory: Path, announce: Callable[[Mail], None], host: str = "127.0.0.1") -> Sink:
    """An SMTP server on a free loopback port, in a thread of its own (whatever event loop the
    web server runs), keeping mails in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    # aiosmtpd logs every SMTP command at INFO: the console shows our one line per mail instead.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(_Keeper(directory, announce), hostname=host, port=_free_port(host))
    controller.start()
    return Sink(host, controller.port, directory, controller)
