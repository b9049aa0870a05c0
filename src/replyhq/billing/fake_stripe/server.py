"""The fake's HTTP side: Stripe's API routes (authorisation, unknown-parameter refusal,
`Idempotency-Key` replays), the hosted checkout and portal pages a customer clicks through, and
serving it in a loop or a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import secrets
import threading
from collections.abc import Callable
from typing import Any

from aiohttp import web

from replyhq.billing.fake_stripe.account import FakeStripe
from replyhq.billing.fake_stripe.wire import ALLOWED, StripeError, decode_form, public


class StripeHttp:
    """Routes of one fake account."""

    def __init__(self, fake: FakeStripe) -> None:
        self.fake = fake

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.add_routes(
            [
                web.post("/v1/customers", self._api("customers.create", self.fake.create_customer)),
                web.get("/v1/customers/{id}", self._retrieve("customer")),
                web.post("/v1/prices", self._api("prices.create", self.fake.create_price)),
                web.get("/v1/prices/{id}", self._retrieve("price")),
                web.post(
                    "/v1/checkout/sessions",
                    self._api("checkout.create", self.fake.create_checkout_session),
                ),
                web.get("/v1/checkout/sessions/{id}", self._retrieve("checkout.session")),
                web.post(
                    "/v1/billing_portal/sessions",
                    self._api("portal.create", self.fake.create_portal_session),
                ),
                web.get("/v1/subscriptions/{id}", self._retrieve("subscription")),
                web.post("/v1/subscriptions/{id}", self._update_subscription),
                web.delete("/v1/subscriptions/{id}", self._cancel_subscription),
                web.post(
                    "/v1/invoices/create_preview",
                    self._api("invoices.create_preview", self.fake.preview_invoice),
                ),
                web.get("/checkout/{id}", self._checkout_page),
                web.post("/checkout/{id}/pay", self._checkout_pay),
                web.get("/portal/{id}", self._portal_page),
                web.post("/portal/{id}/cancel", self._portal_cancel),
            ]
        )
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except StripeError as error:
            return web.json_response(
                error.body(),
                status=error.status,
                headers={"Request-Id": f"req_{secrets.token_hex(7)}"},
            )

    async def _authorise(self, request: web.Request, operation: str) -> dict[str, Any]:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:]:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth.",
            )
        if not hmac.compare_digest(header[7:], self.fake.api_key):
            raise StripeError(401, f"Invalid API Key provided: {header[7:12]}****")
        if self.fake.fail_next > 0:
            self.fake.fail_next -= 1
            raise StripeError(500, "An unknown error occurred", type="api_error")
        body = await request.text()
        if (
            request.method == "POST"
            and body
            and not request.content_type.startswith("application/x-www-form-urlencoded")
        ):
            raise StripeError(400, "Invalid request: expected a form-encoded body.")
        params = decode_form(body if request.method == "POST" else request.query_string)
        allowed = ALLOWED[operation]
        for name in params:
            if name not in allowed:
                raise StripeError(
                    400,
                    f"Received unknown parameter: {name}",
                    param=name,
                    code="parameter_unknown",
                )
        self.fake.requests.append((request.method, request.path, params))
        return params

    def _api(
        self, operation: str, create: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            params = await self._authorise(request, operation)
            key = request.headers.get("Idempotency-Key")
            if key and key in self.fake._idempotent:
                status, body = self.fake._idempotent[key]
                return web.json_response(
                    body, status=status, headers={"Idempotent-Replayed": "true"}
                )
            body = public(create(params))
            if key:
                self.fake._idempotent[key] = (200, body)
            return web.json_response(body)

        return handle

    def _retrieve(self, kind: str) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            await self._authorise(request, "retrieve")
            return web.json_response(public(self.fake.get(request.match_info["id"], kind)))

        return handle

    async def _update_subscription(self, request: web.Request) -> web.Response:
        params = await self._authorise(request, "subscriptions.update")
        return web.json_response(
            public(self.fake.update_subscription(request.match_info["id"], params))
        )

    async def _cancel_subscription(self, request: web.Request) -> web.Response:
        await self._authorise(request, "subscriptions.cancel")
        return web.json_response(public(self.fake.cancel_subscription(request.match_info["id"])))

    async def _checkout_page(self, request: web.Request) -> web.Response:
        session = self._page_object(request, "checkout.session")
        rows = "".join(
            f"<li>{html.escape(str(self.fake.objects[i['price']]['nickname']))}: "
            f"${self.fake.objects[i['price']]['unit_amount'] / 100:.2f} per month</li>"
            for i in session["_line_items"]
        )
        form = (
            f'<form method="post" action="/checkout/{session["id"]}/pay">'
            '<button type="submit">Subscribe</button></form>'
            if session["status"] == "open"
            else "<p>This session is complete.</p>"
        )
        return _page("Checkout (fake Stripe)", f"<ul>{rows}</ul>{form}")

    async def _checkout_pay(self, request: web.Request) -> web.Response:
        session = self._page_object(request, "checkout.session")
        self.fake.complete_checkout(session["id"])
        target = str(session["success_url"]).replace("{CHECKOUT_SESSION_ID}", session["id"])
        raise web.HTTPSeeOther(target)

    async def _portal_page(self, request: web.Request) -> web.Response:
        portal = self._page_object(request, "billing_portal.session")
        live = [
            o
            for o in self.fake.objects.values()
            if o["object"] == "subscription"
            and o["customer"] == portal["customer"]
            and o["status"] != "canceled"
        ]
        body = (
            "".join(
                f"<p>Subscription {html.escape(s['id'])}: {html.escape(s['status'])}"
                f"{' (cancels at period end)' if s['cancel_at_period_end'] else ''}</p>"
                for s in live
            )
            or "<p>No subscription.</p>"
        )
        if live and not live[0]["cancel_at_period_end"]:
            body += (
                f'<form method="post" action="/portal/{portal["id"]}/cancel">'
                '<button type="submit">Cancel plan</button></form>'
            )
        if portal["return_url"]:
            body += f'<p><a href="{html.escape(portal["return_url"])}">Return</a></p>'
        return _page("Billing portal (fake Stripe)", body)

    async def _portal_cancel(self, request: web.Request) -> web.Response:
        portal = self._page_object(request, "billing_portal.session")
        for obj in list(self.fake.objects.values()):
            if (
                obj["object"] == "subscription"
                and obj["customer"] == portal["customer"]
                and obj["status"] != "canceled"
            ):
                self.fake.update_subscription(obj["id"], {"cancel_at_period_end": "true"})
        raise web.HTTPSeeOther(portal["return_url"] or f"/portal/{portal['id']}")

    def _page_object(self, request: web.Request, kind: str) -> dict[str, Any]:
        try:
            return self.fake.get(request.match_info["id"], kind)
        except StripeError:
            raise web.HTTPNotFound() from None


def _page(title: str, body: str) -> web.Response:
    return web.Response(
        text=f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}",
        content_type="text/html",
    )


async def serve(
    fake: FakeStripe, host: str = "127.0.0.1", port: int = 0
) -> tuple[str, web.AppRunner]:
    """Serve `fake` on host:port (0: a free port) in the running loop; (its base URL, runner)."""
    runner = web.AppRunner(StripeHttp(fake).application(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    fake.base_url = f"http://{host}:{bound}"
    return fake.base_url, runner


class FakeStripeThread:
    """The fake in a thread of its own (its own event loop), for `make dev`."""

    def __init__(self, fake: FakeStripe, host: str = "127.0.0.1", port: int = 0) -> None:
        self.fake = fake
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True)
        self.url = ""

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(10)
        return self.url

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        self.url, runner = self._loop.run_until_complete(serve(self.fake, host, port))
        self._ready.set()
        with contextlib.suppress(Exception):
            self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
