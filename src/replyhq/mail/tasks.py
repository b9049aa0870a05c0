"""The job that sends one e-mail. A failed delivery is retried with backoff (JOB_MAX_ATTEMPTS);
a mail that never goes out is a dead job (`replyhq jobs failed`)."""

from __future__ import annotations

import structlog

from replyhq.jobs.registry import JobRun, job
from replyhq.mail.mailer import build_message, deliver

log = structlog.get_logger(__name__)


@job("mail.send", queue="mail")
async def send(
    run: JobRun,
    to: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    template: str,
    app_id: str | None = None,
) -> None:
    settings = run.runtime.settings
    message = build_message(
        settings, to=to, subject=subject, text=text, html=html, message_id=message_id
    )
    await deliver(settings, message)
    log.info("mail_sent", template=template, attempt=run.attempt)
