"""Staff e-mail flows, read from a real SMTP server: invitations are mailed; a forgotten password
is reset with a single-use, short-lived link that ends every sign-in (tokens and live sockets);
an e-mail change takes effect only once the link sent to the new address is followed, and the
old address is told."""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import update

from replyhq.accounts.models import StaffToken
from replyhq.runtime import Runtime
from tests.conftest import MakeTenant, SocketServer, Tenant, make_settings
from tests.mail_support import PUBLIC_URL, SmtpServer, html_of, link_in, text_of
from tests.realtime_clients import Recorder
from tests.staff import Staff, add_staff, login

NEW_PASSWORD = "a brand new passphrase"


def fresh_address(kind: str = "staff") -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}@example.test"


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).fragment)["token"][0]


async def reset_link(client: httpx.AsyncClient, smtp: SmtpServer, email: str, n: int = 1) -> str:
    asked = await client.post("/admin/password-reset", json={"email": email})
    assert asked.status_code == 202, asked.text
    mails = await smtp.wait_for(email, n)
    return link_in(mails[-1])


@pytest.fixture
async def acme(make_tenant: MakeTenant) -> Tenant:
    return await make_tenant("Acme")


# --- invitations ---------------------------------------------------------------------------------


async def test_an_invitation_is_mailed_and_its_link_joins_the_team(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, smtp: SmtpServer, acme: Tenant
) -> None:
    owner = await login(mail_client, await add_staff(mail_runtime, acme, "OWNER", name="Olive"))
    invitee = fresh_address("invitee")
    smtp.refuse = 1  # the relay is briefly unwell: the request does not care, the job retries
    created = await mail_client.post(
        "/admin/api/team/invites", headers=owner.auth(), json={"email": invitee, "role": "AGENT"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["invite_url"].endswith("/invite#token=" + created.json()["token"])

    [mail] = await smtp.wait_for(invitee)
    assert mail["Subject"] == "Olive invited you to Acme on ReplyHQ"
    link = link_in(mail)
    assert link == f"{PUBLIC_URL}/dashboard/invite#token={created.json()['token']}"
    assert f'href="{link}"' in html_of(mail)
    joined = await mail_client.post(
        "/admin/invites/accept",
        json={"token": token_of(link), "name": "New Person", "password": NEW_PASSWORD},
    )
    assert joined.status_code == 201, joined.text


# --- password reset ------------------------------------------------------------------------------


async def test_a_reset_link_sets_a_new_password_once_and_ends_every_sign_in(
    mail_client: httpx.AsyncClient,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    acme: Tenant,
    socket_server: SocketServer,
    recorders: list[Recorder],
) -> None:
    staff = await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    laptop = dict((await login(mail_client, staff)).tokens)
    phone = dict((await login(mail_client, staff)).tokens)
    socket = Recorder()
    await socket.connect(socket_server.url, {"token": phone["access_token"]}, namespace="/admin")
    recorders.append(socket)

    link = await reset_link(mail_client, smtp, staff.email)
    assert link.startswith(f"{PUBLIC_URL}/dashboard/reset-password#token=rhq_pwr_")
    [mail] = smtp.to(staff.email)
    assert mail["Subject"] == "Reset your ReplyHQ password for Acme"
    assert "30 minutes" in text_of(mail)

    reset = await mail_client.post(
        "/admin/password-reset/confirm", json={"token": token_of(link), "password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text

    await asyncio.wait_for(socket.disconnected.wait(), 5)  # the live socket is cut
    for tokens in (laptop, phone):
        me = await mail_client.get(
            "/admin/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 401, me.text
        again = await mail_client.post(
            "/admin/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert again.status_code == 401, again.text
    old = await mail_client.post(
        "/admin/login", json={"email": staff.email, "password": staff.password}
    )
    assert old.status_code == 401
    staff.password = NEW_PASSWORD
    await login(mail_client, staff)

    reused = await mail_client.post(
        "/admin/password-reset/confirm", json={"token": token_of(link), "password": "another one!"}
    )
    assert reused.status_code == 400
    assert reused.json()["code"] == "RESET_TOKEN_INVALID"
    await login(mail_client, staff)  # the reused link changed nothing


async def test_the_answer_is_the_same_whether_or_not_the_address_exists(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, smtp: SmtpServer, acme: Tenant
) -> None:
    staff = await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    nobody = fresh_address("nobody")
    known = await mail_client.post("/admin/password-reset", json={"email": staff.email.upper()})
    unknown = await mail_client.post("/admin/password-reset", json={"email": nobody})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    await smtp.wait_for(staff.email)
    await asyncio.sleep(0.5)  # time enough for a mail to the unknown address to arrive
    assert smtp.to(nobody) == []


async def test_an_address_on_two_teams_gets_a_link_per_app_and_a_deactivated_one_none(
    mail_client: httpx.AsyncClient,
    mail_runtime: Runtime,
    smtp: SmtpServer,
    acme: Tenant,
    make_tenant: MakeTenant,
) -> None:
    other = await make_tenant("Globex")
    email, gone = fresh_address("two-teams"), fresh_address("deactivated")
    await add_staff(mail_runtime, acme, "AGENT", email=email)
    await add_staff(mail_runtime, other, "ADMIN", email=email)
    owner = await login(mail_client, await add_staff(mail_runtime, acme, "OWNER"))
    leaver = await add_staff(mail_runtime, acme, "AGENT", email=gone)
    removed = await mail_client.delete(f"/admin/api/team/{leaver.id}", headers=owner.auth())
    assert removed.status_code == 204

    for address in (email, gone):
        asked = await mail_client.post("/admin/password-reset", json={"email": address})
        assert asked.status_code == 202
    mails = await smtp.wait_for(email, 2)
    assert sorted(str(m["Subject"]) for m in mails) == [
        "Reset your ReplyHQ password for Acme",
        "Reset your ReplyHQ password for Globex",
    ]
    await asyncio.sleep(0.5)
    assert smtp.to(gone) == []


async def test_a_reset_link_expires_and_only_the_newest_works(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, smtp: SmtpServer, acme: Tenant
) -> None:
    staff = await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    first = await reset_link(mail_client, smtp, staff.email, 1)
    second = await reset_link(mail_client, smtp, staff.email, 2)
    replaced = await mail_client.post(
        "/admin/password-reset/confirm", json={"token": token_of(first), "password": NEW_PASSWORD}
    )
    assert replaced.status_code == 400
    async with mail_runtime.db.tenant_session(acme.id) as session:  # its lifetime passes
        await session.execute(
            update(StaffToken)
            .where(StaffToken.app_id == acme.id, StaffToken.staff_id == staff.id)
            .values(expires_at=StaffToken.created_at)
        )
    expired = await mail_client.post(
        "/admin/password-reset/confirm", json={"token": token_of(second), "password": NEW_PASSWORD}
    )
    assert expired.status_code == 400
    assert expired.json()["code"] == "RESET_TOKEN_INVALID"
    await login(mail_client, staff)  # the old password still works


async def test_reset_requests_are_rate_limited_per_address(
    servers: object, smtp: SmtpServer, mail_runtime: Runtime
) -> None:
    from asgi_lifespan import LifespanManager

    from replyhq.app import create_app

    settings = make_settings(
        servers,  # type: ignore[arg-type]
        rate_limit_password_reset="2/hour",
        redis_prefix=f"rhqtest:limits-{uuid.uuid4().hex[:8]}:",
    )
    application = create_app(settings)
    async with (
        LifespanManager(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://testserver"
        ) as client,
    ):
        email = fresh_address()
        codes = [
            (await client.post("/admin/password-reset", json={"email": email})).status_code
            for _ in range(3)
        ]
        assert codes == [202, 202, 429]
        other = await client.post("/admin/password-reset", json={"email": fresh_address()})
        assert other.status_code == 202


async def test_bad_reset_input_is_refused_and_changes_nothing(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, smtp: SmtpServer, acme: Tenant
) -> None:
    staff = await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    link = await reset_link(mail_client, smtp, staff.email)
    for body, code in (
        ({"token": token_of(link), "password": "short"}, "VALIDATION_ERROR"),
        ({"token": "rhq_pwr_nonsense", "password": NEW_PASSWORD}, "RESET_TOKEN_INVALID"),
        ({"token": token_of(link)[:-2] + "xx", "password": NEW_PASSWORD}, "RESET_TOKEN_INVALID"),
    ):
        refused = await mail_client.post("/admin/password-reset/confirm", json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["code"] == code
    bad_email = await mail_client.post("/admin/password-reset", json={"email": "not-an-address"})
    assert bad_email.status_code == 400
    await login(mail_client, staff)
    ok = await mail_client.post(
        "/admin/password-reset/confirm", json={"token": token_of(link), "password": NEW_PASSWORD}
    )
    assert ok.status_code == 204  # the link still works after the failed attempts


# --- e-mail change -------------------------------------------------------------------------------


async def test_an_email_change_takes_effect_only_once_the_new_address_confirms(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, smtp: SmtpServer, acme: Tenant
) -> None:
    staff = await login(
        mail_client, await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    )
    old, new = staff.email, fresh_address("new")
    wrong = await mail_client.post(
        "/admin/me/email", headers=staff.auth(), json={"email": new, "password": "wrong!"}
    )
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "WRONG_PASSWORD"

    asked = await mail_client.post(
        "/admin/me/email", headers=staff.auth(), json={"email": new, "password": staff.password}
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["email"] == new
    [mail] = await smtp.wait_for(new)
    link = link_in(mail)
    assert link.startswith(f"{PUBLIC_URL}/dashboard/confirm-email#token=rhq_eml_")
    assert "24 hours" in text_of(mail)
    # Nothing has changed yet: the old address still signs in, the new one does not.
    me = await mail_client.get("/admin/me", headers=staff.auth())
    assert me.json()["staff"]["email"] == old
    await login(mail_client, staff)

    confirmed = await mail_client.post(
        "/admin/email-change/confirm", json={"token": token_of(link)}
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["email"] == new
    [told] = await smtp.wait_for(old)
    assert new in text_of(told)
    assert told["Subject"] == "Your ReplyHQ e-mail address was changed"

    gone = await mail_client.post("/admin/login", json={"email": old, "password": staff.password})
    assert gone.status_code == 401
    staff.email = new
    signed = await login(mail_client, staff)
    me = await mail_client.get("/admin/me", headers=signed.auth())
    assert me.json()["staff"]["email"] == new
    again = await mail_client.post("/admin/email-change/confirm", json={"token": token_of(link)})
    assert again.status_code == 400
    assert again.json()["code"] == "EMAIL_CHANGE_TOKEN_INVALID"


async def test_an_email_change_to_a_taken_address_is_a_conflict(
    mail_client: httpx.AsyncClient, mail_runtime: Runtime, acme: Tenant
) -> None:
    colleague = await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    staff: Staff = await login(
        mail_client, await add_staff(mail_runtime, acme, "AGENT", email=fresh_address())
    )
    for email, status, code in (
        (colleague.email, 409, "STAFF_EXISTS"),
        (staff.email, 400, "SAME_EMAIL"),
        ("no-at-sign", 400, "VALIDATION_ERROR"),
    ):
        refused = await mail_client.post(
            "/admin/me/email",
            headers=staff.auth(),
            json={"email": email, "password": staff.password},
        )
        assert refused.status_code == status, refused.text
        assert refused.json()["code"] == code
