"""Segment DSL -> one SQLAlchemy boolean expression over `end_users`.

Only SQLAlchemy constructs over a fixed set of columns; every value, JSON key and event name is
a bound parameter. Nothing is ever formatted into SQL text. What a person's devices say of
them (the latest `last_seen_at`, every platform and locale) are columns of `end_users`, kept by a
trigger on `devices` (migration 0250), so that no segment reads the devices.

Event conditions without a property field (a timeframe in days or none) never read raw events:
"did / did not do X in D days" reads each user's latest occurrence of X (event_latest: one row
per user, not one per day they did it), "did X N times in D days" for D up to 31 the counts of
the 32 days up to it that the same row holds, and longer windows the per-user daily counts.
Conditions on an event's properties, or within hours, read `events`. A timeframe of D days means
the UTC calendar days from D-1 days ago to today (what the daily counts can answer exactly), one
of H hours the last H hours. Every "the user is one of these" is a subquery hashed once and
probed per user (`_member`), whatever the planner estimates; or, compiled `correlated` for a
query that reads a few users (a preview's sample from the newest ones), a correlated EXISTS
that looks each of them up by index where an index allows it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    DateTime,
    Select,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from replyhq.analytics.models import event_daily_counts, event_latest, events
from replyhq.segments.dsl import (
    NEGATIONS,
    AttributeCondition,
    EventCondition,
    Group,
    Node,
    Predicate,
    Timeframe,
    compare,
)
from replyhq.users.models import EndUser

Condition = ColumnElement[bool]


def compile_query(
    query: Group, app_id: uuid.UUID, now: datetime, *, correlated: bool = False
) -> Condition:
    """The condition `end_users` rows of the segment meet (with `EndUser.app_id == app_id`).
    `correlated`: the same condition (the same rows, the same parameters) with every membership
    a correlated EXISTS rather than a hashed IN, for a statement that reads a few users."""
    return _Compiler(app_id, now, correlated).node(query)


def window_start(timeframe: Timeframe, now: datetime) -> datetime:
    """The earliest `occurred_at` a timeframe includes."""
    if timeframe.unit == "hours":
        return now - timedelta(hours=timeframe.value)
    return datetime.combine(first_day(timeframe, now), time.min, UTC)


def first_day(timeframe: Timeframe, now: datetime) -> date:
    return now.astimezone(UTC).date() - timedelta(days=timeframe.value - 1)


class _Compiler:
    def __init__(self, app_id: uuid.UUID, now: datetime, correlated: bool) -> None:
        self.app_id = app_id
        self.now = now
        self.correlated = correlated

    def member(self, people: Select[Any]) -> Condition:
        """The user is one of `people` (a subquery of NOT NULL end user ids)."""
        if self.correlated and people.get_final_froms()[0] is not event_daily_counts:
            return _exists(people)
        return _member(people)

    def node(self, node: Node) -> Condition:
        if isinstance(node, Group):
            parts = [self.node(child) for child in node.conditions]
            return and_(*parts) if node.operator == "AND" else or_(*parts)
        if isinstance(node, AttributeCondition):
            return self.attribute(node.predicate)
        return self.event(node)

    # --- on the user -------------------------------------------------------------------------

    def attribute(self, predicate: Predicate) -> Condition:
        positive = NEGATIONS.get(predicate.operator)
        if positive is not None:
            return not_(self.attribute(Predicate(predicate.field, positive, predicate.value)))
        field = predicate.field
        if field.key is not None:
            return _json(EndUser.attributes, field.key, predicate.operator, predicate.value)
        if field.name in ("platform", "locale"):  # any of their devices' (migration 0250)
            column = EndUser.platforms if field.name == "platform" else EndUser.locales
            return _any(column, predicate.operator, predicate.value)
        own: Any = {
            "user_id": EndUser.external_id,
            "name": EndUser.name,
            "email": EndUser.email,
            "verified": EndUser.verified,
            "created_at": EndUser.created_at,
            "last_seen_at": EndUser.last_seen_at,  # their devices' latest (NULL: none)
        }[field.name]
        return _column(own, predicate.operator, predicate.value)

    # --- on what they did --------------------------------------------------------------------

    def event(self, node: EventCondition) -> Condition:
        count = node.count
        if count is None and _from_counts(node):
            # Did / did not: one hash of the users whose latest X is in the window, built from a
            # row per user rather than one per day they did it.
            member = self.member(self.latest_users(node))
            return not_(member) if node.negated else member
        if count is not None and _from_recent(node):
            # How many in the window: one subscript of each person's recent counts rather than
            # grouping their daily counts (a row per day they did it).
            total = self.recent_total(node)
            if _holds(count.operator, 0, count.value):
                failing = self.latest_users(node).where(
                    not_(_compare(count.operator, total, count.value))
                )
                return not_(self.member(failing))
            return self.member(
                self.latest_users(node).where(_compare(count.operator, total, count.value))
            )
        people = self.event_users(node)
        if count is None:
            member = self.member(people)
            return not_(member) if node.negated else member
        if _holds(count.operator, 0, count.value):
            # Zero matches too: everyone but those whose (non-zero) total fails.
            failing = people.having(not_(_compare(count.operator, _total(node), count.value)))
            return not_(self.member(failing))
        return self.member(people.having(_compare(count.operator, _total(node), count.value)))

    def event_users(self, node: EventCondition) -> Select[Any]:
        """End users with at least one matching event (grouped by user when counted)."""
        timeframe = node.timeframe
        if _from_counts(node):
            stmt = select(event_daily_counts.c.end_user_id).where(
                event_daily_counts.c.app_id == self.app_id,
                event_daily_counts.c.name == node.event_name,
            )
            if timeframe is not None:
                stmt = stmt.where(event_daily_counts.c.day >= first_day(timeframe, self.now))
        else:
            stmt = select(events.c.end_user_id).where(
                events.c.app_id == self.app_id, events.c.name == node.event_name
            )
            if timeframe is not None:
                stmt = stmt.where(events.c.occurred_at >= window_start(timeframe, self.now))
            if node.predicate is not None:
                stmt = stmt.where(_event_predicate(node.predicate))
        if node.count is not None:
            column = (
                event_daily_counts.c.end_user_id if _from_counts(node) else events.c.end_user_id
            )
            stmt = stmt.group_by(column)
        return stmt

    def oldest_kept(self, node: EventCondition) -> Any:
        """The first day of the daily counts of `eventName` still kept (NULL: none is)."""
        counts = event_daily_counts.c
        return (
            select(func.min(counts.day))
            .where(counts.app_id == self.app_id, counts.name == node.event_name)
            .scalar_subquery()
        )

    def latest_users(self, node: EventCondition) -> Select[Any]:
        """End users whose latest `eventName` is in the timeframe and in a day still kept: the
        users with a daily count of it in the timeframe (the days kept are contiguous up to
        today, retention dropping the oldest, so the latest is kept exactly when any is)."""
        latest = event_latest.c
        stmt = select(latest.end_user_id).where(
            latest.app_id == self.app_id,
            latest.name == node.event_name,
            latest.last_at >= func.timezone("UTC", cast(self.oldest_kept(node), DateTime())),
        )
        if node.timeframe is not None:
            stmt = stmt.where(latest.last_at >= window_start(node.timeframe, self.now))
        return stmt

    def recent_total(self, node: EventCondition) -> ColumnElement[Any]:
        """For a row of latest_users(node), how many `eventName` its user did in the timeframe
        and the days kept: `recent[k]` counts the anchor (the UTC day of `last_at`) and the k-1
        days before it, its last element everything further back it holds (migration 0210)."""
        assert node.timeframe is not None
        latest = event_latest.c
        first = first_day(node.timeframe, self.now)
        start = func.greatest(first, self.oldest_kept(node), type_=Date)
        anchor = cast(func.timezone("UTC", latest.last_at), Date)
        days = anchor - start + 1
        return latest.recent[func.least(days, func.cardinality(latest.recent))]


def _member(people: Select[Any]) -> Condition:
    """The user is one of `people` (a subquery of NOT NULL end user ids), as a subquery that
    PostgreSQL hashes once and probes for each user, whatever it estimates: `(id IN (...)) IS
    TRUE`, the same truth, is never pulled up into a join. Pulled up (a bare IN at the top of
    the query), the join's shape followed the planner's estimates: on event_latest's unique key
    it probed the key once per user in created_at order (100,000 probes, 540 ms where the hash
    takes 30), and a correlated EXISTS on devices (which segments read before migration 0250),
    misestimated under an OR, was probed once per user read through an index in key order.
    Negated, NOT of it is a hashed NOT IN."""
    return EndUser.id.in_(people).is_(true())


def _exists(people: Select[Any]) -> Condition:
    """The user is one of `people`, looked up for this user: a correlated EXISTS of `people`
    restricted to them (the same truth as _member's: neither side is ever NULL), for a
    statement that reads a few users. Every such lookup has an index that starts with the app
    and the user (event_latest's key, events' (app_id, end_user_id, occurred_at)); the daily
    counts, whose key has the day before the user, are never looked up so (compiled as
    _member). OFFSET 0 keeps it a subquery run for each user, whatever the planner estimates:
    without it, an EXISTS at the top of a query is pulled up into a semi-join shaped by the
    estimates (one that read the whole of `events` for 24 hours first, having expected 260
    matches of a property where there were 12,644), and one under OR or NOT may be hashed."""
    return exists(people.where(people.selected_columns[0] == EndUser.id).offset(0))


def _from_counts(node: EventCondition) -> bool:
    return node.predicate is None and (node.timeframe is None or node.timeframe.unit == "days")


# The longest timeframe (days) event_latest.recent answers: it holds 32 days counted back from
# its anchor, which may be tomorrow (an event's timestamp may be a day ahead).
RECENT_DAYS = 31


def _from_recent(node: EventCondition) -> bool:
    timeframe = node.timeframe
    return (
        node.predicate is None
        and timeframe is not None
        and timeframe.unit == "days"
        and timeframe.value <= RECENT_DAYS
    )


def _total(node: EventCondition) -> ColumnElement[Any]:
    if _from_counts(node):
        return func.sum(event_daily_counts.c.count)
    return func.count()


def _event_predicate(predicate: Predicate) -> Condition:
    positive = NEGATIONS.get(predicate.operator)
    if positive is not None:
        return not_(_event_predicate(Predicate(predicate.field, positive, predicate.value)))
    field = predicate.field
    if field.key is not None:
        return _json(events.c.properties, field.key, predicate.operator, predicate.value)
    column = events.c.platform if field.name == "platform" else events.c.app_version
    return _column(column, predicate.operator, predicate.value)


# --- predicates (positive operators only; negations are NOT of these) --------------------------


def _json(document: Any, key: str, operator: str, value: Any) -> Condition:
    """`operator` on the JSON value under `key` of a NOT NULL JSONB column (missing: matches
    nothing). Never NULL, so that NOT of it (the negative operators) matches the missing values:
    containment (equals, in) of a non-null document never is, and stays bare; the others are
    wrapped in coalesce. (The GIN index on attributes answers containment for the owner only:
    under row-level security PostgreSQL puts no operator that is not leakproof, as @> is not,
    into an index scan below the policy.)"""
    positive = _json_positive(document, key, operator, value)
    return positive if operator in ("equals", "in") else func.coalesce(positive, false())


def _json_positive(document: Any, key: str, operator: str, value: Any) -> Condition:
    item = document[key]  # document -> :key, the key bound
    kind = func.jsonb_typeof(item)
    if operator == "equals":
        return _json_equals(document, key, value)
    if operator == "in":
        return or_(*[_json_equals(document, key, v) for v in value])
    if operator == "exists":
        return func.coalesce(kind, "null") != "null"
    if operator == "contains":
        text = item.astext  # document ->> :key
        as_text = and_(kind == "string", func.strpos(func.lower(text), func.lower(value)) > 0)
        as_element = and_(kind == "array", item.contains(_jsonb([value])))
        return or_(as_text, as_element)
    # gt, gte, lt, lte: numbers only (jsonb compares numbers numerically)
    return and_(kind == "number", _compare(operator, item, _jsonb(value)))


def _json_equals(document: Any, key: str, value: Any) -> Condition:
    # Containment of {key: value}: true exactly when the value under key is that scalar (a
    # number equal numerically, never a boolean for 1), and it can use a GIN index.
    return document.contains(_jsonb({key: value}))  # type: ignore[no-any-return]


def _jsonb(value: Any) -> Any:
    return bindparam(None, value, type_=JSONB)


def _any(values: Any, operator: str, value: Any) -> Condition:
    """`operator` on some element of a NOT NULL text array without NULL elements (the person's
    platforms or locales); never NULL itself."""
    if operator == "exists":
        return func.cardinality(values) > 0
    if operator == "equals":
        return bindparam(None, value, type_=Text) == any_(values)
    if operator == "in":
        return values.overlap(bindparam(None, list(value), type_=ARRAY(Text)))  # type: ignore[no-any-return]
    element = func.unnest(values).column_valued("element")
    return exists(select(element).where(_column(element, operator, value)))


def _column(column: Any, operator: str, value: Any) -> Condition:
    """`operator` on a plain column (NULL: matches nothing); never NULL itself."""
    if operator == "exists":
        return column.is_not(None)  # type: ignore[no-any-return]
    if operator == "in":
        matched = column.in_(value)
    elif operator == "contains":
        matched = func.strpos(func.lower(column), func.lower(value)) > 0
    else:
        matched = _compare(operator, column, value)
    return func.coalesce(matched, false())


def _compare(operator: str, left: Any, right: Any) -> Condition:
    if operator == "equals":
        return left == right  # type: ignore[no-any-return]
    if operator == "not_equals":
        return left != right  # type: ignore[no-any-return]
    if operator == "gt":
        return left > right  # type: ignore[no-any-return]
    if operator == "gte":
        return left >= right  # type: ignore[no-any-return]
    if operator == "lt":
        return left < right  # type: ignore[no-any-return]
    return left <= right  # type: ignore[no-any-return]


def _holds(operator: str, left: int, right: int) -> bool:
    return compare(operator, left, right)
