"""The ASGI application: FastAPI with our middleware, error shape, routes and lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from replyhq import __version__
from replyhq.accounts.recovery_routes import router as recovery_router
from replyhq.accounts.routes import count_refused_login, team_router
from replyhq.accounts.routes import router as admin_auth_router
from replyhq.analytics.admin_routes import router as admin_analytics_router
from replyhq.analytics.routes import router as events_router
from replyhq.analytics.schemas import MAX_BATCH_BYTES
from replyhq.apps.admin_routes import router as admin_app_router
from replyhq.apps.routes import router as setup_router
from replyhq.attachments.routes import UPLOAD_PATH
from replyhq.attachments.routes import files_router as attachment_files_router
from replyhq.attachments.routes import sdk_router as attachments_router
from replyhq.attachments.routes import staff_router as admin_attachments_router
from replyhq.background import server_background
from replyhq.billing.routes import router as admin_billing_router
from replyhq.billing.routes import webhook_router as stripe_webhook_router
from replyhq.billing.stripe_api import close_clients as close_stripe_clients
from replyhq.billing.usage import UsageMeter
from replyhq.campaigns.routes import router as admin_campaigns_router
from replyhq.db.migrate import AUTOVACUUM_OFF, autovacuum_is_on
from replyhq.mail.dev import mailbox_dir as dev_mailbox
from replyhq.mail.routes import router as mailbox_router
from replyhq.messaging.admin_routes import router as admin_conversations_router
from replyhq.messaging.routes import router as conversations_router
from replyhq.messenger.admin_routes import conversation_router as admin_conversation_extras
from replyhq.messenger.admin_routes import router as admin_messenger_router
from replyhq.messenger.routes import router as messenger_router
from replyhq.observability.errors import configure_sentry
from replyhq.observability.http import AccessLogMiddleware
from replyhq.observability.logging import configure_logging
from replyhq.observability.routes import router as metrics_router
from replyhq.onboarding.console import Console, ConsoleRefusals
from replyhq.onboarding.live import Checklist
from replyhq.onboarding.routes import api_router as onboarding_router
from replyhq.onboarding.routes import router as signup_router
from replyhq.push.admin_routes import me_router as staff_notifications_router
from replyhq.push.admin_routes import router as admin_push_router
from replyhq.push.admin_routes import users_router as admin_push_users_router
from replyhq.push.routes import router as push_router
from replyhq.realtime.routes import router as admin_presence_router
from replyhq.realtime.server import RealtimeServer
from replyhq.reports.routes import router as admin_reports_router
from replyhq.runtime import Runtime
from replyhq.search.routes import router as search_router
from replyhq.segments.routes import router as admin_segments_router
from replyhq.segments.routes import users_router as admin_segment_users_router
from replyhq.settings import Settings, get_settings
from replyhq.triggered.routes import router as admin_triggered_router
from replyhq.users.admin_routes import router as admin_users_router
from replyhq.users.routes import router as identify_router
from replyhq.web.docs import install_docs
from replyhq.web.errors import install_error_handlers
from replyhq.web.health import router as health_router
from replyhq.web.hot import HotRoutes
from replyhq.web.middleware import BodyLimitMiddleware, RequestIdMiddleware
from replyhq.web.nul import NulRefusalMiddleware
from replyhq.web.openapi import install_error_shaped_openapi
from replyhq.web.origins import OriginGate, ReportingCORSMiddleware
from replyhq.web.static import router as static_router
from replyhq.workspace.routes import (
    assignment_router,
    conversation_labels_router,
    labels_router,
    notes_router,
    profile_router,
    replies_router,
)

log = structlog.get_logger(__name__)

EXPOSED_HEADERS = [
    "X-Request-Id",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Retry-After",
]


async def _warn_without_autovacuum(runtime: Runtime) -> None:
    """One log line at startup when PostgreSQL runs without autovacuum (docs/operations.md);
    a database not reachable yet is the readiness check's to report, not this one's."""
    try:
        async with runtime.db.engine.connect() as connection:
            on = await connection.run_sync(autovacuum_is_on)
    except DBAPIError:
        return
    if not on:
        log.warning("autovacuum_off", advice=AUTOVACUUM_OFF)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("DATABASE_URL and REDIS_URL must be set (`replyhq serve` sets them).")
    database_url, redis_url = settings.database_url, settings.redis_url
    configure_logging(settings.log_level)
    configure_sentry(settings, "web")

    body_limits: dict[str, Any] = {
        # An event batch may be larger than other bodies.
        "paths": {"/v1/events": max(MAX_BATCH_BYTES, settings.max_body_bytes)},
        # An upload streams to storage: its own limit, enforced as it arrives.
        "patterns": [(UPLOAD_PATH, settings.attachment_max_bytes)],
    }
    origins = OriginGate(settings.origins)  # one per process: each refused origin reported once
    realtime = RealtimeServer(settings, redis_url, origins)
    console = Console(settings.redis_prefix)  # the test console: SDK traffic, live, for staff
    realtime.console = console

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime.build(settings, database_url, redis_url)
        app.state.runtime = runtime
        await _warn_without_autovacuum(runtime)
        runtime.start()
        await realtime.start(runtime)
        # Reactions to committed events, each told only the events it names (events.Observers).
        realtime.observers.add(Checklist.EVENTS, Checklist(runtime.db))
        meter = None
        if settings.billing_enabled:  # usage counted from committed messages (billing/usage.py)
            meter = UsageMeter(runtime.db, settings.billing_usage_flush_seconds)
            realtime.observers.add(UsageMeter.EVENTS, meter.observe)
            meter.start()
        app.state.usage_meter = meter
        # Told only while somebody watches the event's app: a set lookup, no call, otherwise.
        realtime.observers.add(Console.EVENTS, console.observe, apps=console.watching)
        console.start(runtime.redis, realtime.sio.emit)
        try:
            async with server_background(settings, runtime):  # process metrics, jobs
                # What startup made lives as long as the process: out of the collector's sight,
                # a full collection scans only what came since (it paused sends 100-150 ms).
                gc.collect()
                gc.freeze()
                yield
        finally:
            if meter is not None:
                await meter.stop()
                await close_stripe_clients()
            await console.stop()
            await realtime.stop()
            await runtime.close()

    app = FastAPI(
        title="ReplyHQ",
        version=__version__,
        description="In-app customer messaging. Errors are `{error, code[, details]}`.",
        lifespan=lifespan,
        docs_url=None,  # /docs without a CDN: web/docs.py
        redoc_url=None,  # ReDoc needs a CDN
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(AccessLogMiddleware),
            Middleware(ConsoleRefusals, console=console),  # refused /v1 calls, when watched
            Middleware(
                ReportingCORSMiddleware,
                gate=origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=[
                    "Authorization",
                    "Content-Type",
                    "X-App-Id",
                    "X-Api-Key",
                    "X-Device-Id",
                    "X-Request-Id",
                ],
                expose_headers=EXPOSED_HEADERS,
                max_age=86400,
            ),
            Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, **body_limits),
            # Inside the body limit: it reads the (bounded) body to look for a NUL.
            Middleware(
                NulRefusalMiddleware,
                on_refused={"/admin/login": count_refused_login},
                binary=[UPLOAD_PATH],
            ),
            # Innermost: the message POST and /v1/events answered without FastAPI's
            # per-request work.
            Middleware(HotRoutes),
        ],
    )
    app.state.realtime = realtime
    app.state.body_limits = body_limits  # the Socket.IO wrapper's body limit takes them too
    install_error_handlers(app)
    install_docs(app)
    install_error_shaped_openapi(app)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(setup_router)
    app.include_router(identify_router)
    app.include_router(conversations_router)
    app.include_router(attachments_router)
    app.include_router(admin_attachments_router)
    app.include_router(attachment_files_router)
    app.include_router(admin_auth_router)
    app.include_router(recovery_router)
    app.include_router(team_router)
    app.include_router(admin_app_router)
    app.include_router(admin_conversations_router)
    app.include_router(notes_router)
    app.include_router(conversation_labels_router)
    app.include_router(labels_router)
    app.include_router(replies_router)
    app.include_router(search_router)
    app.include_router(assignment_router)
    app.include_router(profile_router)
    app.include_router(admin_users_router)
    app.include_router(admin_presence_router)
    app.include_router(signup_router)
    app.include_router(onboarding_router)
    app.include_router(events_router)
    app.include_router(admin_analytics_router)
    app.include_router(admin_billing_router)
    app.include_router(stripe_webhook_router)
    app.include_router(push_router)
    app.include_router(admin_push_router)
    app.include_router(admin_push_users_router)
    app.include_router(staff_notifications_router)
    app.include_router(messenger_router)
    app.include_router(admin_messenger_router)
    app.include_router(admin_conversation_extras)
    app.include_router(admin_segments_router)
    app.include_router(admin_campaigns_router)
    app.include_router(admin_triggered_router)
    app.include_router(admin_segment_users_router)
    app.include_router(admin_reports_router)
    app.include_router(static_router)  # /dashboard, /widget.js, /demo
    mailbox = dev_mailbox()
    if mailbox is not None and settings.environment == "development":
        app.include_router(mailbox_router(mailbox))  # /dev/mailbox: the local sink's mails
    return app


def create_asgi(settings: Settings | None = None) -> ASGIApp:
    """What `replyhq serve` runs: Socket.IO at /socket.io in front of the HTTP API."""
    app = create_app(settings)
    realtime: RealtimeServer = app.state.realtime
    asgi: ASGIApp = realtime.asgi(app)
    return asgi
