"""A real SMTP server (aiosmtpd) standing for the relay, and an app whose mailer and job worker
(on the `mail` queue) point at it, so tests read what actually arrived."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from replyhq.app import create_app
from replyhq.jobs.worker import JobWorker
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.conftest import Servers, free_port, make_settings
from tests.jobs_support import FAST

PUBLIC_URL = "https://support.example.test"


class SmtpServer:
    """Keeps every mail it accepts; `refuse` makes the next N deliveries fail with a 451."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[EmailMessage] = []
        self.refuse = 0
        self.refused = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return "451 4.3.0 Try again later"
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.mails.append(message)
        return "250 2.0.0 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.mails if str(m["To"]) == address]

    async def wait_for(
        self, address: str, count: int = 1, timeout: float = 15.0
    ) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            if time.monotonic() > deadline:
                got = [str(m["To"]) for m in self.mails]
                raise AssertionError(f"no mail to {address} arrived (got mail to {got})")
            await asyncio.sleep(0.05)
        return self.to(address)


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None, "the mail has no text part"
    return str(body.get_content())


def html_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("html",))
    assert body is not None, "the mail has no HTML part"
    return str(body.get_content())


def link_in(mail: EmailMessage) -> str:
    match = re.search(re.escape(PUBLIC_URL) + r"/\S+", text_of(mail))
    assert match, "no link in the mail"
    return match.group(0)


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


@pytest.fixture(scope="session")
def mail_settings(servers: Servers, smtp: SmtpServer) -> Settings:
    return make_settings(
        servers,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_tls="none",
        public_url=PUBLIC_URL,
        mail_from="Support <support@example.test>",
        **FAST,
    )


@pytest.fixture(scope="module")
async def mail_app(mail_settings: Settings) -> AsyncIterator[FastAPI]:
    """An app that sends mail to `smtp`, with a job worker on the mail queue. Per module: the
    worker must not outlive the tests that use it, or it would take the mail jobs of a later
    test's server (the browser tests' `replyhq serve` shares the database)."""
    application = create_app(mail_settings)
    async with LifespanManager(application):
        runtime: Runtime = application.state.runtime
        worker = JobWorker(mail_settings, runtime, queues=["mail"], concurrency=4)
        worker.start()
        yield application
        await worker.aclose()


@pytest.fixture(scope="module")
def mail_runtime(mail_app: FastAPI) -> Runtime:
    runtime: Runtime = mail_app.state.runtime
    return runtime


@pytest.fixture
async def mail_client(mail_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=mail_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
