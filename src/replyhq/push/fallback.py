"""E-mail fallback: a person with an e-mail address who has not read an agent's replies
`email_fallback_minutes` after the first of them gets one e-mail with every reply they have not
read (across their conversations), never one they have read, and never the same reply twice.

A drain (delivery.py) schedules `push.email_fallback` for the person (one waiting per person:
replies arriving meanwhile join the same e-mail); the job looks at read markers when it runs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.jobs.defer import enqueue_unique
from replyhq.jobs.registry import JobRun
from replyhq.mail.service import InvalidRecipient, send_mail
from replyhq.push.models import PushNotification

if TYPE_CHECKING:
    from replyhq.push.rules import Rules

# Replies not read and not e-mailed yet, per conversation of the person.
_UNREAD = text(
    """
    SELECT c.id AS conversation_id, m.seq, m.author_name, m.body
    FROM conversations c
    JOIN messages m ON m.app_id = c.app_id AND m.conversation_id = c.id
    WHERE c.app_id = :app_id AND c.end_user_id = :end_user_id AND m.sender = 'agent'
      AND m.seq > COALESCE((SELECT r.last_read_seq FROM read_markers r
                            WHERE r.conversation_id = c.id AND r.reader_type = 'user'
                              AND r.reader_id = c.end_user_id), 0)
      AND m.seq > COALESCE((SELECT max(p.seq_to) FROM push_notifications p
                            WHERE p.app_id = c.app_id AND p.conversation_id = c.id
                              AND p.channel = 'email' AND p.decision = 'sent'), 0)
    ORDER BY m.created_at
    LIMIT 50
    """
)


async def schedule_many(
    session: AsyncSession, rules: Rules, app_id: uuid.UUID, people: list[uuid.UUID]
) -> None:
    """Schedule the e-mail of each of these people (who have an e-mail address) unless one
    waits already, in one statement."""
    if not people or rules.email_fallback_minutes <= 0:
        return
    from replyhq.push import tasks

    await enqueue_unique(
        session,
        tasks.email_fallback,
        [(f"push-mail:{p}", {"app_id": app_id, "end_user_id": p}) for p in people],
        delay=dt.timedelta(minutes=rules.email_fallback_minutes),
    )


async def send_fallback(run: JobRun, app_id: uuid.UUID, end_user_id: uuid.UUID) -> None:
    from replyhq.push.delivery import app_rules

    async with run.tenant_session(app_id) as session:
        person = (
            await session.execute(
                text(
                    "SELECT u.email, u.name, a.name AS app_name FROM end_users u "
                    "JOIN apps a ON a.id = u.app_id WHERE u.app_id = :a AND u.id = :u"
                ),
                {"a": app_id, "u": end_user_id},
            )
        ).first()
        if person is None or not person.email:
            return
        rules = await app_rules(session, app_id)
        replies = list(
            await session.execute(_UNREAD, {"app_id": app_id, "end_user_id": end_user_id})
        )
        if not replies:
            return  # all read meanwhile: no e-mail
        link = None
        if rules.email_link:
            link = rules.email_link.replace("{conversation_id}", str(replies[-1].conversation_id))
        context = {
            "app_name": person.app_name,
            "name": person.name,
            "replies": [
                {"author": r.author_name or person.app_name, "body": r.body} for r in replies
            ],
            "link": link,
        }
        try:
            await send_mail(session, person.email, "unread_replies", context, app_id=app_id)
        except InvalidRecipient:
            return
        last: dict[uuid.UUID, tuple[int, int]] = {}
        for reply in replies:
            seq, count = last.get(reply.conversation_id, (0, 0))
            last[reply.conversation_id] = (max(seq, reply.seq), count + 1)
        for conversation_id, (seq, count) in last.items():
            session.add(
                PushNotification(
                    app_id=app_id,
                    end_user_id=end_user_id,
                    conversation_id=conversation_id,
                    channel="email",
                    decision="sent",
                    reason=f"unread {rules.email_fallback_minutes} min after the reply",
                    seq_to=seq,
                    message_count=count,
                    title="unread_replies",
                    status="queued",
                )
            )
