"""Jobs of staff accounts."""

from __future__ import annotations

import structlog

from replyhq.accounts import recovery
from replyhq.jobs.registry import JobRun, job

log = structlog.get_logger(__name__)


@job("accounts.password_reset", queue="mail")
async def send_password_reset(run: JobRun, email: str) -> None:
    """Look the address up and mail each of its accounts a link: done here rather than in the
    request, so that the request does the same work whether or not the address exists."""
    runtime = run.runtime
    sent = await recovery.request_password_reset(runtime.db, runtime.settings, email)
    log.info("password_reset_requested", accounts=sent)
