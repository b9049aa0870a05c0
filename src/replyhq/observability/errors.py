"""Error tracking: Sentry when SENTRY_DSN is set, with the same redaction as the logs."""

from __future__ import annotations

from typing import Any

import sentry_sdk
import structlog
from sentry_sdk.integrations.logging import ignore_logger

from replyhq import __version__
from replyhq.observability.redact import redact
from replyhq.settings import Settings

# Context fields copied from the log context onto every event, as tags.
_TAGS = ("request_id", "app_id", "job_id", "task")


def _scrub(event: Any, _hint: Any = None) -> Any:
    """before_send: strip secrets wherever they sit (headers, bodies, locals, messages,
    breadcrumbs), and tag the event with the request/app/job it happened in."""
    cleaned = redact(event)
    if isinstance(cleaned, dict):
        context = structlog.contextvars.get_contextvars()
        tags = cleaned.setdefault("tags", {})
        if isinstance(tags, dict):
            for name in _TAGS:
                if name in context and name not in tags:
                    tags[name] = str(context[name])
    return cleaned


def configure_sentry(settings: Settings, component: str) -> bool:
    """Start reporting errors (and 10% of traces by default); False when no DSN is set."""
    if not settings.sentry_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn,
        environment=settings.sentry_environment or settings.environment,
        release=settings.sentry_release or f"replyhq@{__version__}",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        before_send=_scrub,
        before_send_transaction=_scrub,
        # A frame's local variables and the request body hold what clients sent (message
        # bodies, e-mails, the values bound to a failed statement) under any name, where the
        # redactor can only catch secrets by their name or shape: events carry neither.
        include_local_variables=False,
        max_request_body_size="never",
    )
    # Our own lines are structlog dicts, and what they report as errors we capture ourselves
    # (with the exception and its context); as Sentry log events they would be duplicates.
    ignore_logger("replyhq")
    ignore_logger("replyhq.*")
    sentry_sdk.set_tag("component", component)
    return True


def identify(*, app_id: object = None, staff_id: object = None, role: str | None = None) -> None:
    """Who the current request, socket event or job concerns: on every later log line and on
    any error reported to Sentry. Call it as soon as authentication knows."""
    fields: dict[str, str] = {}
    if app_id is not None:
        fields["app_id"] = str(app_id)
        sentry_sdk.set_tag("app_id", str(app_id))
    if staff_id is not None:
        fields["staff_id"] = str(staff_id)
        sentry_sdk.set_user({"id": str(staff_id), **({"role": role} if role else {})})
    if fields:
        structlog.contextvars.bind_contextvars(**fields)
