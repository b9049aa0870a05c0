"""A plain Python evaluator of the segment DSL, written from docs/analytics.md and not from the
compiler: the property tests check that the SQL selects exactly the users this one does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from replyhq.segments.dsl import (
    NEGATIONS,
    AttributeCondition,
    EventCondition,
    Group,
    Node,
    Predicate,
    compare,
)


@dataclass
class Device:
    platform: str | None
    locale: str | None
    last_seen_at: datetime


@dataclass
class Event:
    name: str
    properties: dict[str, Any]
    occurred_at: datetime
    platform: str | None
    app_version: str | None


@dataclass
class User:
    id: uuid.UUID
    external_id: str | None
    name: str | None
    email: str | None
    verified: bool
    created_at: datetime
    attributes: dict[str, Any]
    devices: list[Device] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def selects(query: Group, user: User, now: datetime) -> bool:
    return _node(query, user, now)


def _node(node: Node, user: User, now: datetime) -> bool:
    if isinstance(node, Group):
        results = [_node(child, user, now) for child in node.conditions]
        return all(results) if node.operator == "AND" else any(results)
    if isinstance(node, AttributeCondition):
        return _attribute(node.predicate, user)
    return _event(node, user, now)


def _attribute(predicate: Predicate, user: User) -> bool:
    positive = NEGATIONS.get(predicate.operator)
    if positive is not None:
        return not _attribute(Predicate(predicate.field, positive, predicate.value), user)
    field, op, value = predicate.field, predicate.operator, predicate.value
    if field.key is not None:
        return _json(user.attributes, field.key, op, value)
    if field.name == "platform":
        return any(_plain(d.platform, op, value) for d in user.devices)
    if field.name == "locale":
        return any(_plain(d.locale, op, value) for d in user.devices)
    if field.name == "last_seen_at":
        latest = max((d.last_seen_at for d in user.devices), default=None)
        return _plain(latest, op, value)
    own = {
        "user_id": user.external_id,
        "name": user.name,
        "email": user.email,
        "verified": user.verified,
        "created_at": user.created_at,
    }[field.name]
    return _plain(own, op, value)


def _event(node: EventCondition, user: User, now: datetime) -> bool:
    start = None
    if node.timeframe is not None:
        if node.timeframe.unit == "hours":
            start = now - timedelta(hours=node.timeframe.value)
        else:
            day = now.astimezone(UTC).date() - timedelta(days=node.timeframe.value - 1)
            start = datetime.combine(day, time.min, UTC)
    matching = [
        e
        for e in user.events
        if e.name == node.event_name
        and (start is None or e.occurred_at >= start)
        and (node.predicate is None or _on_event(node.predicate, e))
    ]
    if node.count is not None:
        return compare(node.count.operator, len(matching), node.count.value)
    return not matching if node.negated else bool(matching)


def _on_event(predicate: Predicate, event: Event) -> bool:
    positive = NEGATIONS.get(predicate.operator)
    if positive is not None:
        return not _on_event(Predicate(predicate.field, positive, predicate.value), event)
    field = predicate.field
    if field.key is not None:
        return _json(event.properties, field.key, predicate.operator, predicate.value)
    own = event.platform if field.name == "platform" else event.app_version
    return _plain(own, predicate.operator, predicate.value)


def _same(stored: Any, value: Any) -> bool:
    """JSON equality: of one type (true is not 1), numbers by value."""
    if isinstance(value, bool) or isinstance(stored, bool):
        return isinstance(value, bool) and isinstance(stored, bool) and stored == value
    if isinstance(value, (int, float)):
        return isinstance(stored, (int, float)) and stored == value
    return isinstance(stored, str) and stored == value


def _json(document: dict[str, Any], key: str, op: str, value: Any) -> bool:
    stored = document.get(key)
    if op == "exists":
        return stored is not None
    if op == "equals":
        return key in document and _same(stored, value)
    if op == "in":
        return key in document and any(_same(stored, v) for v in value)
    if op == "contains":
        if isinstance(stored, str):
            return value.lower() in stored.lower()
        if isinstance(stored, list):
            return any(isinstance(e, str) and e == value for e in stored)
        return False
    if isinstance(stored, bool) or not isinstance(stored, (int, float)):
        return False
    return compare(op, stored, value)


def _plain(stored: Any, op: str, value: Any) -> bool:
    if stored is None:
        return False
    if op == "exists":
        return True
    if op == "in":
        return stored in value
    if op == "contains":
        return bool(value.lower() in stored.lower())
    return compare(op, stored, value)
