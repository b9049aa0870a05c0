"""The local fake Stripe speaks Stripe's wire format to the real `stripe` library: it answers what
Stripe answers, refuses what Stripe refuses (with Stripe's error types, params and statuses), and
signs webhooks so that stripe.Webhook.construct_event accepts them."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import stripe
from aiohttp import web

from replyhq.billing.fake_stripe import FakeStripe, decode_form, serve, sign

KEY = "sk_test_fake_stripe_tests"


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[FakeStripe]:
    server = FakeStripe(api_key=KEY, webhook_secret="whsec_x")
    _, runner = await serve(server)
    server.add_price("price_growth", 9900, "Growth")
    server.add_price("price_business", 29900, "Business")
    yield server
    await runner.cleanup()


def sdk(fake: FakeStripe, key: str = KEY) -> stripe.StripeClient:
    return stripe.StripeClient(
        key,
        base_addresses={"api": fake.base_url},
        http_client=stripe.AIOHTTPClient(),
        max_network_retries=0,
    )


def test_form_decoding_follows_stripes_brackets() -> None:
    body = (
        "mode=subscription&line_items[0][price]=p1&line_items[0][quantity]=1"
        "&line_items[1][price]=p2&subscription_data[metadata][app_id]=a&expand[0]=x"
    )
    assert decode_form(body.replace("[", "%5B").replace("]", "%5D")) == {
        "mode": "subscription",
        "line_items": [{"price": "p1", "quantity": "1"}, {"price": "p2"}],
        "subscription_data": {"metadata": {"app_id": "a"}},
        "expand": ["x"],
    }


async def test_the_sdk_creates_and_reads_objects(fake: FakeStripe) -> None:
    api = sdk(fake)
    customer = await api.v1.customers.create_async(
        {"email": "ann@example.test", "metadata": {"app_id": "a1"}}
    )
    assert customer.id.startswith("cus_") and customer.object == "customer"
    assert customer.metadata["app_id"] == "a1"
    again = await api.v1.customers.retrieve_async(customer.id)
    assert again.email == "ann@example.test"
    price = await api.v1.prices.create_async(
        {
            "currency": "usd",
            "unit_amount": 500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Extra"},
        }
    )
    assert price.object == "price" and price.unit_amount == 500
    session = await api.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": "price_growth", "quantity": 1}],
            "success_url": "https://x.test/ok",
            "subscription_data": {"metadata": {"app_id": "a1"}},
        }
    )
    assert session.object == "checkout.session" and session.status == "open"
    assert session.url is not None and session.url.startswith(fake.base_url + "/checkout/cs_test_")
    portal = await api.v1.billing_portal.sessions.create_async(
        {"customer": customer.id, "return_url": "https://x.test/back"}
    )
    assert portal.object == "billing_portal.session" and portal.url.startswith(fake.base_url)


async def test_errors_have_stripes_types_params_and_statuses(fake: FakeStripe) -> None:
    api = sdk(fake)
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await api.v1.customers.create_async({"emial": "typo@example.test"})  # type: ignore[typeddict-unknown-key]
    assert unknown.value.http_status == 400
    assert unknown.value.param == "emial"
    assert unknown.value.code == "parameter_unknown"

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await api.v1.checkout.sessions.create_async(
            {"mode": "subscription", "success_url": "https://x.test/ok"}
        )
    assert missing.value.param == "line_items"

    with pytest.raises(stripe.InvalidRequestError) as gone:
        await api.v1.subscriptions.retrieve_async("sub_nope")
    assert gone.value.http_status == 404 and gone.value.code == "resource_missing"

    with pytest.raises(stripe.InvalidRequestError) as short_trial:
        await api.v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer_email": "a@example.test",
                "line_items": [{"price": "price_growth"}],
                "success_url": "https://x.test/ok",
                "subscription_data": {"trial_end": int(time.time()) + 3600},
            }
        )
    assert short_trial.value.param == "subscription_data[trial_end]"

    with pytest.raises(stripe.AuthenticationError) as wrong_key:
        await sdk(fake, "sk_test_wrong").v1.customers.create_async({})
    assert wrong_key.value.http_status == 401

    async with httpx.AsyncClient() as client:  # the raw shape on the wire
        response = await client.post(f"{fake.base_url}/v1/customers", data={"x": "1"})
    assert response.status_code == 401
    assert set(response.json()["error"]) >= {"type", "message"}


async def test_an_idempotency_key_replays_the_first_answer(fake: FakeStripe) -> None:
    api = sdk(fake)
    options: stripe.RequestOptions = {"idempotency_key": "same-key"}
    first = await api.v1.customers.create_async({"email": "i@example.test"}, options)
    second = await api.v1.customers.create_async({"email": "i@example.test"}, options)
    assert first.id == second.id


async def test_checkout_pays_on_the_hosted_page_and_signs_its_webhooks(fake: FakeStripe) -> None:
    received: list[tuple[bytes, str]] = []

    async def endpoint(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers["Stripe-Signature"]))
        return web.json_response({"received": True})

    app = web.Application()
    app.add_routes([web.post("/hook", endpoint)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.webhook_url = f"http://127.0.0.1:{port}/hook"
    try:
        api = sdk(fake)
        session = await api.v1.checkout.sessions.create_async(
            {
                "mode": "subscription",
                "customer_email": "pay@example.test",
                "line_items": [{"price": "price_growth", "quantity": 1}],
                "success_url": "https://x.test/ok?s={CHECKOUT_SESSION_ID}",
                "subscription_data": {"metadata": {"app_id": "a2"}},
            }
        )
        async with httpx.AsyncClient() as browser:
            page = await browser.get(session.url or "")
            assert "Subscribe" in page.text
            paid = await browser.post(f"{fake.base_url}/checkout/{session.id}/pay")
        assert paid.status_code == 303
        assert paid.headers["location"] == f"https://x.test/ok?s={session.id}"
        await fake.settle()
        types = []
        for payload, header in received:
            event = stripe.Webhook.construct_event(payload, header, "whsec_x")
            types.append(event.type)
        assert types == [
            "customer.subscription.created",
            "checkout.session.completed",
            "invoice.paid",
        ]
        subscription_id = json.loads(received[0][0])["data"]["object"]["id"]
        subscription = await api.v1.subscriptions.retrieve_async(subscription_id)
        assert subscription.status == "active" and subscription.metadata["app_id"] == "a2"
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(received[0][0], received[0][1], "whsec_other")
    finally:
        fake.webhook_url = None
        await runner.cleanup()


async def test_a_plan_change_is_previewed_prorated(fake: FakeStripe) -> None:
    api = sdk(fake)
    customer = await api.v1.customers.create_async({"email": "p@example.test"})
    session = await api.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer.id,
            "line_items": [{"price": "price_growth"}],
            "success_url": "https://x.test/ok",
        }
    )
    fake.complete_checkout(session.id)
    subscription_id = fake.objects[session.id]["subscription"]
    subscription = await api.v1.subscriptions.retrieve_async(subscription_id)
    item = subscription["items"]["data"][0]
    preview = await api.v1.invoices.create_preview_async(
        {
            "customer": customer.id,
            "subscription": subscription_id,
            "subscription_details": {"items": [{"id": item.id, "price": "price_business"}]},
        }
    )
    lines = preview.to_dict()["lines"]["data"]
    prorated = [
        line["amount"] for line in lines if line["parent"]["subscription_item_details"]["proration"]
    ]
    # Credit for Growth's unused time, charge for Business' remaining time: 20,000 cents (a
    # month almost whole), less a second's worth.
    assert len(prorated) == 2 and 19_900 < sum(prorated) <= 20_000
    assert preview.amount_due == sum(line["amount"] for line in lines)
    updated = await api.v1.subscriptions.update_async(
        subscription_id, {"items": [{"id": item.id, "price": "price_business"}]}
    )
    assert updated["items"]["data"][0]["price"]["id"] == "price_business"


def test_sign_is_stripes_scheme() -> None:
    header = sign('{"id": "evt_1"}', "whsec_s", timestamp=1_700_000_000)
    t, v1 = header.split(",")
    assert t == "t=1700000000" and v1.startswith("v1=") and len(v1) == 3 + 64
    stripe.WebhookSignature.verify_header(
        '{"id": "evt_1"}',
        header,
        "whsec_s",
        tolerance=None,  # type: ignore[arg-type]
    )
