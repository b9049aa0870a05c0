"""A message send as one SQL statement (psycopg's `%(name)s` parameters): the sender, the
conversation's row lock, the idempotency check, the insert, the conversation's counters and the
sender's read marker, in one round trip instead of six.

How the guarantees hold (READ COMMITTED, as every transaction here):
- `seq`: the conversation's row is locked FOR UPDATE, and a locking read returns the row's latest
  committed version once the lock is granted, so `last_seq + 1` is taken under the lock and is
  written back in the same statement: 1, 2, 3... with no gap or repeat under concurrent senders.
- `client_msg_id`: a retry whose first attempt committed before this statement began finds it
  (`existing`). One that committed while this statement waited for the lock is invisible to the
  statement's snapshot, but the insert's ON CONFLICT sees it and stores nothing; the statement
  then answers with neither a stored nor an existing message, and the caller runs it again, with
  a new snapshot that sees the first attempt's message.
- The conversation's counters and the read marker are written only from the inserted row
  (`FROM stored`), so a send that stores nothing changes nothing.
"""

from __future__ import annotations

import re
from functools import cache

# Who sends: the end user behind a device (the SDK), or an author the caller names; `allowed`:
# whether the device may speak for its end user (replyhq.users.service.may_speak, in SQL).
_DEVICE_SENDER = """
    SELECT u.id, u.name,
           d.verified OR NOT (u.verified OR a.identity_verification_required) AS allowed
    FROM devices d
    JOIN end_users u ON u.id = d.end_user_id AND u.app_id = d.app_id
    JOIN apps a ON a.id = d.app_id
    WHERE d.app_id = %(app_id)s AND d.device_id = %(device_id)s"""
_GIVEN_SENDER = "SELECT %(author_id)s::uuid AS id, %(author_name)s::text AS name, true AS allowed"

# Whose conversation it must be (otherwise it is not found).
_OWNERS = {
    "sender": "AND c.end_user_id = (SELECT id FROM sender)",
    "given": "AND c.end_user_id = %(end_user_id)s",
    "any": "",
}

_SEND = """
WITH sender AS ({sender}
), conversation AS (
    SELECT c.id, c.end_user_id, c.subject, c.status, c.assignee_id, c.last_seq, c.created_at
    FROM conversations c
    WHERE c.app_id = %(app_id)s AND c.id = %(conversation_id)s {owner}
    FOR UPDATE
), existing AS (
    -- by the parameters, not a join to the CTE: the planner sees the unique index's key
    SELECT m.* FROM messages m
    WHERE m.app_id = %(app_id)s AND m.conversation_id = %(conversation_id)s
      AND m.client_msg_id = %(client_msg_id)s AND EXISTS (SELECT FROM conversation)
), stored AS (
    INSERT INTO messages (id, app_id, conversation_id, seq, client_msg_id, sender, author_id,
                          author_name, body, body_html, created_at)
    -- clock_timestamp(), not now(): taken under the lock, so time order follows seq order.
    SELECT %(message_id)s, %(app_id)s, c.id, c.last_seq + 1, %(client_msg_id)s, %(kind)s, s.id,
           s.name, %(body)s, %(body_html)s, clock_timestamp()
    FROM conversation c, sender s
    WHERE %(writable)s AND s.allowed AND NOT EXISTS (SELECT FROM existing)
    ON CONFLICT (conversation_id, client_msg_id) DO NOTHING
    RETURNING *
), bumped AS (
    UPDATE conversations c
    SET last_seq = m.seq, last_activity_at = m.created_at, updated_at = m.created_at,
        -- an end user writing again reopens the conversation
        status = CASE WHEN m.sender = 'user' THEN 'open' ELSE c.status END
    FROM stored m
    WHERE c.app_id = %(app_id)s AND c.id = %(conversation_id)s
), marked AS (
    INSERT INTO read_markers (app_id, conversation_id, reader_type, reader_id, last_read_seq)
    SELECT m.app_id, m.conversation_id, m.sender, m.author_id, m.seq FROM stored m
    ON CONFLICT (conversation_id, reader_type, reader_id) DO UPDATE
    SET last_read_seq = greatest(read_markers.last_read_seq, excluded.last_read_seq),
        updated_at = now()
)
SELECT s.id AS sender_id, s.name AS sender_name, s.allowed AS sender_allowed,
       c.id IS NOT NULL AS found,
       c.end_user_id, c.subject, c.status, c.assignee_id, c.created_at AS conversation_created_at,
       m.id IS NOT NULL AS created,
       COALESCE(m.id, e.id) AS id, COALESCE(m.seq, e.seq) AS seq,
       COALESCE(m.sender, e.sender) AS sender, COALESCE(m.author_id, e.author_id) AS author_id,
       COALESCE(m.author_name, e.author_name) AS author_name,
       COALESCE(m.body, e.body) AS body, COALESCE(m.body_html, e.body_html) AS body_html,
       COALESCE(m.created_at, e.created_at) AS created_at
FROM (VALUES (1)) AS one (x)
LEFT JOIN sender s ON true
LEFT JOIN conversation c ON true
LEFT JOIN stored m ON true
LEFT JOIN existing e ON true
"""


@cache
def send(*, from_device: bool, owner: str) -> str:
    """The statement for a sender (`from_device`: the end user behind %(device_id)s; else
    %(author_id)s / %(author_name)s) and an `owner` rule: "sender", "given" (%(end_user_id)s)
    or "any" (an agent's reply). One row: see the columns of the final SELECT."""
    sender = _DEVICE_SENDER if from_device else _GIVEN_SENDER
    return _SEND.format(sender=sender, owner=_OWNERS[owner])


# The SDK's send (a device's end user, their own conversation) as one server-side function that
# binds its tenant first (migration 0180): one command instead of tenant_statement's pipeline of
# two, which cost the hot path psycopg's pipeline machinery (Database.tenant_function). plpgsql
# caches the statement's plan per connection as a prepared statement would.
SEND_FROM_DEVICE = "replyhq_send_from_device"
_PARAMETERS = (
    ("app_id", "uuid"),
    ("conversation_id", "uuid"),
    ("device_id", "text"),
    ("message_id", "uuid"),
    ("client_msg_id", "text"),
    ("kind", "text"),
    ("body", "text"),
    ("body_html", "text"),
    ("writable", "boolean"),
)
# The final SELECT's columns (the function's row type, `replyhq_sent`), with their types.
SENT_COLUMNS = (
    ("sender_id", "uuid"),
    ("sender_name", "varchar"),
    ("sender_allowed", "boolean"),
    ("found", "boolean"),
    ("end_user_id", "uuid"),
    ("subject", "varchar"),
    ("status", "varchar"),
    ("assignee_id", "uuid"),
    ("conversation_created_at", "timestamptz"),
    ("created", "boolean"),
    ("id", "uuid"),
    ("seq", "integer"),
    ("sender", "varchar"),
    ("author_id", "uuid"),
    ("author_name", "varchar"),
    ("body", "text"),
    ("body_html", "text"),
    ("created_at", "timestamptz"),
)
_ARGUMENTS = ", ".join(f"%({name})s" for name, _ in _PARAMETERS)
SEND_FROM_DEVICE_CALL = f"SELECT * FROM {SEND_FROM_DEVICE}({_ARGUMENTS})"  # noqa: S608 (constant)


def send_from_device_body() -> str:
    """The function's body: send(from_device=True, owner="sender") after the tenant binding,
    its parameters `p_<name>`. tests/test_tenancy.py checks the database's function against
    this text, so a changed statement needs a migration that runs send_from_device_function()
    again."""
    statement = re.sub(r"%\((\w+)\)s", r"p_\1", send(from_device=True, owner="sender"))
    return (
        "\nBEGIN\n"
        "PERFORM set_config('app.current_tenant', p_app_id::text, true);\n"
        f"RETURN QUERY {statement.strip()};\n"
        "END\n"
    )


def send_from_device_function() -> str:
    """CREATE OR REPLACE FUNCTION for SEND_FROM_DEVICE (not SECURITY DEFINER: it runs as the
    caller, so RLS applies with the tenant it binds)."""
    arguments = ", ".join(f"p_{name} {kind}" for name, kind in _PARAMETERS)
    return (
        f"CREATE OR REPLACE FUNCTION {SEND_FROM_DEVICE}({arguments}) "
        f"RETURNS SETOF replyhq_sent LANGUAGE plpgsql VOLATILE AS $send$"
        f"{send_from_device_body()}$send$"
    )


def sent_type() -> str:
    columns = ", ".join(f"{name} {kind}" for name, kind in SENT_COLUMNS)
    return f"CREATE TYPE replyhq_sent AS ({columns})"
