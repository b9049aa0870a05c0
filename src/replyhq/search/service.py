"""Search within one app: messages by PostgreSQL full-text search (the `messages.search`
tsvector, GIN-indexed; migration 0050), ranked, with highlighted snippets and filters; end users
by name, e-mail or user id. Every query runs in a transaction bound to the app (the message
search in one of its own, Database.tenant_statements; the user search in the caller's), so
row-level security bounds it to the app even without its `app_id =`.

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

from replyhq.db import Database
from replyhq.search.schemas import MessageHit, SearchUser

# ts_headline's markers: control characters stripped from the body first, replaced by <mark>.
# The body is HTML-escaped in SQL before ts_headline (whose parser would drop anything that looks
# like a tag), so the passage holds no markup but the markers. A short message is shown whole.
_START, _STOP = "\x02", "\x03"
_SHORT = 280
_HEADLINE = f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12, ShortWord=0"
_WHOLE = f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true"

# Which matches are ranked: the newest POOL of them, each kind's branch walking its own index
# (migration 0120). A message of at most SHORT bytes is found in `ix_messages_search_recent`,
# newest first, with its words in the index entry: `search @@ q` is checked there and the walk
# stops after POOL matches (a common word stops early), or, for a rare word, the GIN index finds
# them all and only those rows are read. Long messages (rare) and notes have their own branches.
# Only the chosen `limit` rows are then read from the table, and get a headline (re-parsing the
# body: the costly part). The app id and the index predicates are repeated in every branch so
# that the planner can use the partial indexes, bounded by the app.
POOL = 100
SHORT = 400  # bytes; migration 0120's indexes say the same

_CUSTOM_PLAN = "SELECT set_config('plan_cache_mode', 'force_custom_plan', true)"
_TSQUERY = "websearch_to_tsquery('simple', %(q)s)"

_BRANCH = """
    (SELECT '{kind}'::text AS kind, x.id, x.conversation_id, x.created_at, x.search
     FROM {table} x {join}
     WHERE x.app_id = %(app_id)s AND x.kind = '{kind}' AND octet_length(x.body) {size}
       AND x.search @@ {tsquery} {filters}
     ORDER BY x.created_at DESC
     LIMIT %(pool)s)"""

_MESSAGES = """
WITH hits AS ({branches}),
best AS (
    SELECT h.kind, h.id, h.conversation_id, h.created_at, ts_rank_cd(h.search, {tsquery}) AS rank
    FROM (SELECT * FROM hits ORDER BY created_at DESC LIMIT %(pool)s) h
    ORDER BY rank DESC, h.created_at DESC, h.id
    LIMIT %(limit)s
)
SELECT b.kind, b.id, b.conversation_id, b.created_at, b.rank,
       coalesce(m.seq, t.after_seq) AS seq,
       coalesce(m.sender, 'agent') AS sender,
       coalesce(m.author_name, t.author_name) AS author_name,
       ts_headline(
           'simple',
           replace(replace(replace(translate(coalesce(m.body, t.body), E'\\x02\\x03', ''),
               '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
           {tsquery},
           CASE WHEN length(coalesce(m.body, t.body)) <= %(short)s
                THEN %(whole)s ELSE %(headline)s END
       ) AS snippet,
       c.status, c.assignee_id, u.id AS end_user_id, u.external_id, u.name, u.email
FROM best b
LEFT JOIN messages m ON b.kind = 'message' AND m.id = b.id AND m.app_id = %(app_id)s
LEFT JOIN timeline_items t ON b.kind = 'note' AND t.id = b.id AND t.app_id = %(app_id)s
JOIN conversations c ON c.id = b.conversation_id AND c.app_id = %(app_id)s
JOIN end_users u ON u.id = c.end_user_id AND u.app_id = c.app_id
ORDER BY b.rank DESC, b.created_at DESC, b.id
"""

_JOIN = "JOIN conversations c ON c.id = x.conversation_id AND c.app_id = x.app_id"

_FILTERS = {
    "status": "AND c.status = %(status)s",
    "assignee": "AND c.assignee_id = %(assignee_id)s",
    "unassigned": "AND c.assignee_id IS NULL",
    "label": "AND EXISTS (SELECT FROM conversation_labels l "
    "WHERE l.conversation_id = c.id AND l.label_id = %(label_id)s)",
    "since": "AND x.created_at >= %(since)s",
    "until": "AND x.created_at < %(until)s",
}
_ON_CONVERSATION = frozenset({"status", "assignee", "unassigned", "label"})


_TABLES = {"message": "messages", "note": "timeline_items"}


def _sql(used: list[str], kinds: tuple[str, ...]) -> str:
    filters = " ".join(_FILTERS[name] for name in used)
    join = _JOIN if _ON_CONVERSATION.intersection(used) else ""
    branches = [
        _BRANCH.format(
            kind=kind, table=_TABLES[kind], join=join, size=size, tsquery=_TSQUERY, filters=filters
        )
        for kind in kinds
        for size in (f"<= {SHORT}", f"> {SHORT}")
    ]
    return _MESSAGES.format(branches="\n    UNION ALL".join(branches), tsquery=_TSQUERY)


def _snippet(headline: str) -> str:
    return headline.replace(_START, "<mark>").replace(_STOP, "</mark>")


async def search_messages(
    db: Database,
    app_id: uuid.UUID,
    q: str,
    *,
    status: str | None = None,
    assignee_id: uuid.UUID | None = None,
    unassigned: bool = False,
    label_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: tuple[str, ...] = ("message", "note"),
    limit: int = 20,
) -> list[MessageHit]:
    """The app's messages and private notes (`kinds`; notes are for its staff only) matching
    `q`: the best `limit` of the newest POOL matches, each with its conversation and end user.
    One statement, as a transaction of its own bound to the app (one round trip)."""
    params: dict[str, Any] = {
        "app_id": app_id,
        "q": q,
        "limit": limit,
        "pool": POOL,
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
    # Planned with the words' own frequencies every time (a common word walks the newest-first
    # index, a rare one takes the GIN index), also once the driver has prepared the statement:
    # a generic plan would guess one frequency for every query. The setting lasts for the
    # transaction, which is this one round trip.
    _, rows = await db.tenant_statements(app_id, [(_CUSTOM_PLAN, {}), (_sql(used, kinds), params)])
    return [
        MessageHit(
            kind=row["kind"],
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
