"""Search within one app: messages by PostgreSQL full-text search (the `messages.search`
tsvector, GIN-indexed; migration 0050), ranked, with highlighted snippets and filters; end users
by name, e-mail or user id. Every query runs in the caller's tenant transaction, so row-level
security bounds it to the app even without its `app_id =`.

The text configuration is 'simple' (no stemming, no stop words): messages come in every
language, and a word matches as written. The query is `websearch_to_tsquery`'s syntax: words
(all must match), "a phrase", `or`, `-word`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from replyhq.search.schemas import MessageHit, SearchUser

# ts_headline's markers: control characters stripped from the body first, replaced by <mark>.
# The body is HTML-escaped in SQL before ts_headline (whose parser would drop anything that looks
# like a tag), so the passage holds no markup but the markers. A short message is shown whole.
_START, _STOP = "\x02", "\x03"
_SHORT = 280
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12, ShortWord=0"
_WHOLE = f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"

# The best matches are chosen first (rank, then newest), then only those get a headline, which
# re-parses the body and is the costly part.
_MESSAGES = """
WITH query AS (SELECT websearch_to_tsquery('simple', :q) AS q),
best AS (
    SELECT m.id, m.conversation_id, m.seq, m.sender, m.author_name, m.created_at, m.body,
           ts_rank_cd(m.search, query.q) AS rank, query.q
    FROM query, messages m
    JOIN conversations c ON c.id = m.conversation_id AND c.app_id = m.app_id
    WHERE m.app_id = :app_id AND m.search @@ query.q {filters}
    ORDER BY rank DESC, m.created_at DESC, m.id
    LIMIT :limit
)
SELECT b.id, b.conversation_id, b.seq, b.sender, b.author_name, b.created_at, b.rank,
       ts_headline(
           'simple',
           replace(replace(replace(translate(b.body, E'\\x02\\x03', ''),
               '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
           b.q,
           CASE WHEN length(b.body) <= :short THEN :whole ELSE :headline END
       ) AS snippet,
       c.status, c.assignee_id, u.id AS end_user_id, u.external_id, u.name, u.email
FROM best b
JOIN conversations c ON c.id = b.conversation_id AND c.app_id = :app_id
JOIN end_users u ON u.id = c.end_user_id AND u.app_id = c.app_id
ORDER BY b.rank DESC, b.created_at DESC, b.id
"""

_FILTERS = {
    "status": "AND c.status = :status",
    "assignee": "AND c.assignee_id = :assignee_id",
    "unassigned": "AND c.assignee_id IS NULL",
    "label": "AND EXISTS (SELECT FROM conversation_labels l "
    "WHERE l.conversation_id = c.id AND l.label_id = :label_id)",
    "since": "AND m.created_at >= :since",
    "until": "AND m.created_at < :until",
}


def _snippet(headline: str) -> str:
    return headline.replace(_START, "<mark>").replace(_STOP, "</mark>")


async def search_messages(
    session: AsyncSession,
    app_id: uuid.UUID,
    q: str,
    *,
    status: str | None = None,
    assignee_id: uuid.UUID | None = None,
    unassigned: bool = False,
    label_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 20,
) -> list[MessageHit]:
    """The app's messages matching `q`, best first, each with its conversation and end user."""
    params: dict[str, Any] = {
        "app_id": app_id,
        "q": q,
        "limit": limit,
        "headline": _HEADLINE,
        "whole": _WHOLE,
        "short": _SHORT,
    }
    used = []
    for name, value in (
        ("status", status),
        ("assignee", assignee_id),
        ("label", label_id),
        ("since", since),
        ("until", until),
    ):
        if value is not None:
            used.append(name)
    if unassigned:
        used.append("unassigned")
    params.update(
        status=status, assignee_id=assignee_id, label_id=label_id, since=since, until=until
    )
    sql = _MESSAGES.format(filters=" ".join(_FILTERS[name] for name in used))
    rows = (await session.execute(text(sql), params)).mappings().all()
    return [
        MessageHit(
            conversation_id=row["conversation_id"],
            message_id=row["id"],
            seq=row["seq"],
            sender=row["sender"],
            author_name=row["author_name"],
            created_at=row["created_at"],
            rank=row["rank"],
            snippet_html=_snippet(row["snippet"]),
            status=row["status"],
            assignee_id=row["assignee_id"],
            user=SearchUser(
                id=row["end_user_id"],
                user_id=row["external_id"],
                name=row["name"],
                email=row["email"],
            ),
        )
        for row in rows
    ]


def _like_prefix(value: str) -> str:
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


# Prefix matches by index (migration 0050's text_pattern_ops indexes); a word of the name
# matches too ("smi" finds "Anna Smith"), which the name index cannot serve alone.
_USERS = """
SELECT id, external_id, name, email FROM end_users
WHERE app_id = :app_id AND (
    external_id = :exact
    OR lower(email) LIKE :prefix
    OR lower(name) LIKE :prefix
    OR lower(name) LIKE :word
)
ORDER BY (external_id = :exact) DESC NULLS LAST, lower(name), id
LIMIT :limit
"""


async def search_users(
    session: AsyncSession, app_id: uuid.UUID, q: str, *, limit: int = 20
) -> list[SearchUser]:
    """End users whose user id is `q`, or whose e-mail or name (or a word of it) starts with it."""
    prefix = _like_prefix(q.strip())
    params = {"app_id": app_id, "exact": q.strip(), "prefix": prefix, "word": "% " + prefix}
    rows = (await session.execute(text(_USERS), {**params, "limit": limit})).mappings().all()
    return [
        SearchUser(id=r["id"], user_id=r["external_id"], name=r["name"], email=r["email"])
        for r in rows
    ]
