"""The mailer: a mail is queued in the caller's transaction, delivered after commit by a job over
real SMTP in text and HTML, retried when the server refuses it, and never sent on rollback."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from replyhq.mail.render import templates
from replyhq.mail.service import InvalidRecipient, link, send_mail
from replyhq.runtime import Runtime
from replyhq.settings import Settings
from tests.mail_support import PUBLIC_URL, SmtpServer, html_of, text_of

RESET = {
    "app_name": "Acme <b>Support</b>",
    "email": "ann@example.test",
    "valid_for": "30 minutes",
    "link": PUBLIC_URL + "/dashboard/reset-password#token=abc",
}


def address() -> str:
    return f"to-{uuid.uuid4().hex[:8]}@example.test"


async def test_a_mail_goes_out_after_commit_in_text_and_html(
    mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    to = address()
    async with mail_runtime.db.system_session() as session:
        await send_mail(session, to, "password_reset", RESET)
        await asyncio.sleep(0.5)  # the worker is listening, yet cannot see the job
        assert smtp.to(to) == []

    [mail] = await smtp.wait_for(to)
    assert str(mail["From"]) == "Support <support@example.test>"
    assert mail["Subject"] == "Reset your ReplyHQ password for Acme <b>Support</b>"
    assert mail["Message-ID"].endswith("@example.test>")
    assert RESET["link"] in text_of(mail)
    assert "Acme <b>Support</b>" in text_of(mail)  # plain text is not escaped
    html = html_of(mail)
    assert f'href="{RESET["link"]}"' in html
    assert "Acme &lt;b&gt;Support&lt;/b&gt;" in html  # values are escaped in HTML
    assert "<b>Support</b>" not in html


async def test_a_rolled_back_transaction_sends_nothing(
    mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    lost, kept = address(), address()
    with pytest.raises(RuntimeError):
        async with mail_runtime.db.system_session() as session:
            await send_mail(session, lost, "password_reset", RESET)
            raise RuntimeError("the request failed after queueing the mail")
    async with mail_runtime.db.system_session() as session:
        await send_mail(session, kept, "password_reset", RESET)
    await smtp.wait_for(kept)
    await asyncio.sleep(0.3)  # time enough for a wrongly queued mail to arrive as well
    assert smtp.to(lost) == []


async def test_a_refused_delivery_is_retried_until_it_goes_out(
    mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    to = address()
    smtp.refused = 0
    smtp.refuse = 2
    async with mail_runtime.db.system_session() as session:
        await send_mail(session, to, "password_reset", RESET)
    [mail] = await smtp.wait_for(to)
    assert smtp.refused == 2
    assert RESET["link"] in text_of(mail)


async def test_a_missing_value_or_unknown_template_fails_the_caller_and_queues_nothing(
    mail_runtime: Runtime, smtp: SmtpServer
) -> None:
    to = address()
    async with mail_runtime.db.system_session() as session:
        with pytest.raises(Exception, match="link"):
            await send_mail(
                session, to, "password_reset", {k: v for k, v in RESET.items() if k != "link"}
            )
    with pytest.raises(Exception, match="no_such_mail"):
        async with mail_runtime.db.system_session() as session:
            await send_mail(session, to, "no_such_mail", RESET)
    with pytest.raises(InvalidRecipient):
        async with mail_runtime.db.system_session() as session:
            await send_mail(session, "a@example.test\r\nBcc: x@evil.test", "password_reset", RESET)
    await asyncio.sleep(0.3)
    assert smtp.to(to) == []


def test_every_template_has_a_subject_text_and_html_part() -> None:
    assert {"invite", "password_reset", "email_change", "email_changed"} <= set(templates())


def test_links_are_absolute_on_the_public_url(mail_settings: Settings) -> None:
    assert link(mail_settings, "/dashboard/x#token=1") == PUBLIC_URL + "/dashboard/x#token=1"


async def test_the_dev_mailbox_does_not_exist_without_the_local_sink(client: object) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    for path in ("/dev/mailbox", "/dev/mailbox.json"):
        assert (await client.get(path)).status_code == 404


def test_serve_starts_the_local_sink_only_in_development_without_smtp_host(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    from pathlib import Path

    from replyhq.mail import dev

    assert isinstance(tmp_path, Path)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "PUBLIC_"))}
    environment.pop(dev.MAILBOX_ENV, None)
    monkeypatch.setattr(os, "environ", environment)  # what prepare() exports stays in this test
    relay = Settings(smtp_host="smtp.example.test", data_dir=tmp_path)
    production = Settings(
        environment="production",
        data_dir=tmp_path,
        master_api_key="m" * 32,
        jwt_secret="j" * 32,
        jwt_refresh_secret="r" * 32,
    )
    for settings in (relay, production):
        assert dev.prepare(settings, "0.0.0.0", 8123, print_mails=True) is None
        assert dev.mailbox_dir() is None
    assert os.environ["PUBLIC_URL"] == "http://127.0.0.1:8123"  # links a laptop's browser opens

    sink = dev.prepare(Settings(data_dir=tmp_path), "127.0.0.1", 8123, print_mails=True)
    assert sink is not None
    try:
        assert os.environ["SMTP_HOST"] == "127.0.0.1"
        assert os.environ["SMTP_PORT"] == str(sink.port)
        assert dev.mailbox_dir() == tmp_path.resolve() / "mailbox"
    finally:
        sink.stop()


def test_link_lifetimes_read_as_people_say_them() -> None:
    from replyhq.accounts.mails import duration

    assert [duration(s) for s in (300, 1800, 3600, 86400, 5400)] == [
        "5 minutes",
        "30 minutes",
        "1 hour",
        "24 hours",
        "90 minutes",
    ]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_the_mailer_signs_in_to_a_relay_that_requires_it(
    mail_settings: Settings,
) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from replyhq.mail.mailer import build_message, deliver
    from tests.conftest import free_port
    from tests.mail_support import SmtpServer

    logins: list[tuple[bytes, bytes]] = []

    def authenticator(
        server: object, session: object, envelope: object, mechanism: str, data: object
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login, data.password))
        return AuthResult(success=data.password == b"s3cret")

    relay = SmtpServer()
    controller = Controller(
        relay,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,  # a test on loopback; production uses SMTP_TLS
    )
    controller.start()
    try:
        to = address()
        message = build_message(
            mail_settings, to=to, subject="Hi", text="text", html="<p>html</p>", message_id="x1"
        )
        signed = mail_settings.model_copy(
            update={
                "smtp_port": controller.port,
                "smtp_username": "mailer",
                "smtp_password": "s3cret",
            }
        )
        await deliver(signed, message)
        assert logins == [(b"mailer", b"s3cret")]
        assert [m["Subject"] for m in relay.to(to)] == ["Hi"]

        anonymous = mail_settings.model_copy(update={"smtp_port": controller.port})
        with pytest.raises(Exception, match=r"530|[Aa]uthentication"):
            await deliver(anonymous, message)  # refused: the job would be retried
    finally:
        controller.stop()
