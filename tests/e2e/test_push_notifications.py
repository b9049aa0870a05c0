"""Issue 17 in the browser: an agent's desktop notifications (the Notification API, permission
granted in the browser context) while the tab is hidden, and the person's push log with the
"Send test push" button showing the provider's answer verbatim (a fake APNs over HTTP/2)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from replyhq.runtime import Runtime
from tests.conftest import LiveServer, MakeTenant, Servers, Tenant, start_server
from tests.e2e.conftest import Demo, sign_in, staff_for
from tests.push_support import BUNDLE_ID, KEY_ID, TEAM_ID, FakeProviders, push_settings
from tests.staff import PASSWORD

# Records every Notification the page makes (and still makes the real one), and lets the test
# hide the tab: headless Chromium's tab is always "visible".
SPY = """
window.__notes = [];
const RealNotification = window.Notification;
class SpyNotification extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.__notes.push({ title, body: options && options.body, tag: options && options.tag });
  }
}
Object.defineProperty(SpyNotification, "permission", { get: () => RealNotification.permission });
SpyNotification.requestPermission = (...a) => RealNotification.requestPermission(...a);
window.Notification = SpyNotification;
window.__hidden = false;
Object.defineProperty(Document.prototype, "visibilityState", {
  get() { return window.__hidden ? "hidden" : "visible"; }, configurable: true,
});
Object.defineProperty(Document.prototype, "hidden", {
  get() { return window.__hidden; }, configurable: true,
});
"""


@pytest.fixture
async def granted(browser: Any, demo: Demo) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    await context.grant_permissions(["notifications"], origin=demo.url)
    await context.add_init_script(SPY)
    context.set_default_timeout(5000)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    await context.close()
    assert errors == []


def _device(base_url: str, tenant: Tenant, name: str) -> httpx.Client:
    device = f"{name.lower()}-{uuid.uuid4().hex[:6]}"
    client = httpx.Client(base_url=base_url, headers=tenant.sdk(device))
    assert client.post("/v1/identify", json={"platform": "web", "name": name}).is_success
    return client


def _start(client: httpx.Client, body: str) -> str:
    created = client.post(
        "/v1/conversations",
        json={"first_message": {"body": body, "client_msg_id": uuid.uuid4().hex}},
    )
    assert created.status_code == 201
    return str(created.json()["id"])


def _say(client: httpx.Client, conversation_id: str, body: str) -> None:
    sent = client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"body": body, "client_msg_id": uuid.uuid4().hex},
    )
    assert sent.status_code == 201


async def _notes(page: Any) -> list[dict[str, str]]:
    return list(await page.evaluate("window.__notes"))


async def _wait_notes(page: Any, count: int) -> list[dict[str, str]]:
    await page.wait_for_function("n => window.__notes.length >= n", arg=count)
    return await _notes(page)


async def _hide(page: Any, hidden: bool) -> None:
    await page.evaluate(
        "h => { window.__hidden = h; document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


async def test_an_agent_is_notified_of_new_conversations_and_messages_while_the_tab_is_hidden(
    demo: Demo, granted: Any, runtime: Runtime, make_tenant: MakeTenant
) -> None:
    tenant = await make_tenant("Notify Co")
    page = granted
    agent = await staff_for(runtime, tenant.id, "AGENT", name="Nadia")
    colleague = await staff_for(runtime, tenant.id, "AGENT", name="Colin")
    await sign_in(page, demo.url, agent)

    pia, omar = _device(demo.url, tenant, "Pia"), _device(demo.url, tenant, "Omar")
    # Visible tab: the agent sees the inbox; no notification.
    first = _start(pia, "Is anyone there?")
    await expect(page.locator(f"[data-testid=inbox-item][data-id='{first}']")).to_be_visible()
    assert await _notes(page) == []

    await _hide(page, True)
    second = _start(omar, "My order is late")
    (note,) = await _wait_notes(page, 1)
    assert note == {
        "title": "New conversation from Omar",
        "body": "My order is late",
        "tag": second,
    }
    chimes = await page.evaluate("document.documentElement.dataset.chimes || '0'")
    assert int(chimes) >= 1  # the sound played
    await expect(page).to_have_title("(2) ReplyHQ")  # the tab counts unread conversations

    # A colleague's conversation does not notify; an unassigned one does.
    tokens = httpx.post(
        f"{demo.url}/admin/login", json={"email": agent.email, "password": PASSWORD}
    ).json()
    assigned = httpx.patch(
        f"{demo.url}/admin/api/conversations/{second}",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        json={"assignee_id": str(colleague.id)},
    )
    assert assigned.status_code == 200, assigned.text
    await page.wait_for_timeout(300)  # the update reaches the desk
    _say(omar, second, "Hello?")
    _say(pia, first, "Still waiting")
    notes = await _wait_notes(page, 2)
    assert notes[1]["title"] == "New message from Pia"
    assert all(n["body"] != "Hello?" for n in await _notes(page))

    # Turned off in the account page: no more notifications.
    await _hide(page, False)
    await page.get_by_test_id("nav-account").click()
    await page.get_by_test_id("notify-desktop").uncheck()
    await expect(page.get_by_test_id("notify-desktop")).not_to_be_checked()
    await _hide(page, True)
    _say(pia, first, "Hello again")
    await page.wait_for_timeout(1000)
    assert len(await _notes(page)) == 2
    await page.reload()
    await page.get_by_test_id("nav-account").click()
    await expect(page.get_by_test_id("notify-desktop")).not_to_be_checked()  # kept per member


@pytest.fixture(scope="module")
def push_server(
    built: None,
    servers: Servers,
    providers: FakeProviders,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """`replyhq serve` whose providers are the fakes, with its job worker in process."""
    folder = tmp_path_factory.mktemp("push-server")
    env = {k.upper(): str(v) for k, v in push_settings(providers).items()}
    server = start_server(servers, folder, JOBS_IN_PROCESS="true", JOB_POLL_SECONDS="0.2", **env)
    yield server
    server.stop()


async def test_the_profile_shows_the_push_log_and_a_test_pushs_answer(
    push_server: LiveServer,
    browser: Any,
    providers: FakeProviders,
    runtime: Runtime,
    make_tenant: MakeTenant,
) -> None:
    tenant = await make_tenant("Log Co")
    owner = await staff_for(runtime, tenant.id, "OWNER", name="Olga")
    base = push_server.url
    tokens = httpx.post(f"{base}/admin/login", json={"email": owner.email, "password": PASSWORD})
    auth = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    apns = {"key_p8": providers.p8(), "key_id": KEY_ID, "team_id": TEAM_ID, "bundle_id": BUNDLE_ID}
    assert httpx.put(f"{base}/admin/api/push/credentials/apns", headers=auth, json=apns).is_success
    token = uuid.uuid4().hex * 2
    phone = httpx.Client(base_url=base, headers=tenant.sdk("phone-1"))
    assert phone.post("/v1/identify", json={"platform": "ios", "name": "Ivy"}).is_success
    assert phone.post("/v1/push-token", json={"provider": "apns", "token": token}).is_success
    conversation = _start(phone, "Hello")

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10000)
    page = await context.new_page()
    try:
        await sign_in(page, base, owner)
        await page.goto(f"{base}/dashboard/inbox/{conversation}")
        log = page.get_by_test_id("push-log")
        await expect(log).to_be_visible()
        await log.get_by_test_id("test-push").click()
        answer = log.get_by_test_id("provider-response")
        await expect(answer).to_contain_text("HTTP 200 apns-id: ")
        await expect(log.get_by_test_id("push-delivery")).to_have_attribute("data-status", "sent")
        (push,) = await providers.wait_for(token)
        assert push.payload["aps"]["alert"]["title"] == "Test notification"
    finally:
        await context.close()
