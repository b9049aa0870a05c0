"""Sending e-mail: `send_mail(session, to, template, context)` renders the template now (a bad
template or a missing value fails the caller) and queues its delivery in the caller's
transaction: the mail goes out if and only if that transaction commits, after it, from a job
(retried on failure), never in the request.

Links in e-mails are absolute: `link(settings, path)` puts PUBLIC_URL in front.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.jobs.defer import enqueue
from replyhq.mail import tasks
from replyhq.mail.render import render
from replyhq.settings import Settings


class InvalidRecipient(ValueError):
    pass


def _check_address(to: str) -> str:
    address = to.strip()
    if not address or any(c in address for c in "\r\n<>,;\x00") or "@" not in address:
        raise InvalidRecipient(f"not one e-mail address: {to!r}")
    return address


async def send_mail(
    session: AsyncSession,
    to: str,
    template: str,
    context: dict[str, Any],
    *,
    app_id: uuid.UUID | None = None,
) -> int:
    """Queue the e-mail `template` (see replyhq/mail/templates/) to `to`; the job's id.

    `app_id` names the tenant the mail concerns, for the job's logs."""
    rendered = render(template, context)
    job_id = await enqueue(
        session,
        tasks.send,
        to=_check_address(to),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=uuid.uuid4().hex,
        template=template,
        app_id=str(app_id) if app_id is not None else None,
    )
    assert job_id is not None  # no queueing lock: always queued
    return job_id


def link(settings: Settings, path: str) -> str:
    """`path` (e.g. "/dashboard/reset-password#token=…") on this server's public address."""
    return settings.public_url.rstrip("/") + "/" + path.lstrip("/")
