"""The segment DSL: parsing and validating a query into typed nodes.

A query is a group `{operator: AND|OR, conditions: [...]}` whose conditions are groups or
conditions on the user (`type: user_attribute`) or on what they did (`type: event`); see
docs/analytics.md for every field. Validation is complete before anything is compiled: depth at
most 5 groups, at most 50 conditions, only known operators on fields of a type they apply to,
values of that type. A refusal is 400 INVALID_SEGMENT whose `details` name the bad node by its
path (`query.conditions.1.conditions.0.operator`).

Nothing here ever becomes SQL text: field names resolve to a fixed set of columns or to a JSON
key, which the compiler (replyhq.segments.compile) binds as a parameter like every value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeGuard

from replyhq.errors import BadRequest

MAX_DEPTH = 5
MAX_CONDITIONS = 50
MAX_LIST = 100
MAX_TEXT = 1024
MAX_DAYS = 365
MAX_HOURS = MAX_DAYS * 24

Operator = Literal[
    "equals",
    "not_equals",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "not_contains",
    "in",
    "not_in",
    "exists",
    "not_exists",
]
# Each negative operator matches exactly what its positive one does not (missing values too).
NEGATIONS: dict[str, str] = {
    "not_equals": "equals",
    "not_contains": "contains",
    "not_in": "in",
    "not_exists": "exists",
}
COMPARISONS = ("equals", "not_equals", "gt", "gte", "lt", "lte")
OPERATORS: tuple[str, ...] = (
    *COMPARISONS,
    *("contains", "not_contains", "in", "not_in", "exists", "not_exists"),
)

Kind = Literal["json", "text", "time", "bool"]
KIND_OPERATORS: dict[str, frozenset[str]] = {
    "json": frozenset(OPERATORS),
    "text": frozenset(
        {"equals", "not_equals", "contains", "not_contains", "in", "not_in", "exists", "not_exists"}
    ),
    "time": frozenset({"gt", "gte", "lt", "lte", "exists", "not_exists"}),
    "bool": frozenset({"equals", "not_equals"}),
}

# Built-in fields of a user: name -> kind. `platform` and `locale` are any of their devices';
# `last_seen_at` the latest of their devices'.
USER_FIELDS: dict[str, Kind] = {
    "user_id": "text",
    "name": "text",
    "email": "text",
    "platform": "text",
    "locale": "text",
    "verified": "bool",
    "created_at": "time",
    "last_seen_at": "time",
}
EVENT_FIELDS: dict[str, Kind] = {"platform": "text", "app_version": "text"}
KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # as user attribute and event property keys

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Field:
    """A built-in column (`key` None) or a JSON key of attributes / properties (`kind` json)."""

    name: str
    kind: Kind
    key: str | None = None


@dataclass(frozen=True)
class Predicate:
    field: Field
    operator: str
    value: Any  # Scalar, list[Scalar], datetime, bool or None (exists)


@dataclass(frozen=True)
class AttributeCondition:
    predicate: Predicate


@dataclass(frozen=True)
class Timeframe:
    value: int
    unit: Literal["days", "hours"]


@dataclass(frozen=True)
class Count:
    operator: str
    value: int


@dataclass(frozen=True)
class EventCondition:
    event_name: str
    predicate: Predicate | None  # on each event (a field given)
    negated: bool  # no field, operator not_exists: did not do it
    timeframe: Timeframe | None
    count: Count | None


@dataclass(frozen=True)
class Group:
    operator: Literal["AND", "OR"]
    conditions: tuple[Node, ...]


Node = Group | AttributeCondition | EventCondition


class InvalidSegment(BadRequest):
    code = "INVALID_SEGMENT"


def _refuse(path: str, reason: str) -> InvalidSegment:
    return InvalidSegment(
        f"The segment query is invalid at {path}: {reason}.",
        details=[{"field": path, "reason": reason}],
    )


def parse(raw: Any, now: datetime | None = None, path: str = "query") -> Group:
    """The query as typed nodes; InvalidSegment (400) naming the first bad node otherwise.
    `now` resolves relative times (`{ago, unit}`)."""
    parser = _Parser(now or datetime.now(UTC))
    return parser.group(raw, path, 1)


class _Parser:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.conditions = 0

    def _object(self, raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise _refuse(path, "must be an object")
        for key in raw:
            if key not in allowed:
                raise _refuse(f"{path}.{key}" if KEY.match(str(key)) else path, "unknown field")
        return raw

    def node(self, raw: Any, path: str, depth: int) -> Node:
        if isinstance(raw, dict) and "conditions" in raw:
            return self.group(raw, path, depth + 1)
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise _refuse(path, f"a query has at most {MAX_CONDITIONS} conditions")
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind == "user_attribute":
            return self.attribute(raw, path)
        if kind == "event":
            return self.event(raw, path)
        if not isinstance(raw, dict):
            raise _refuse(path, "must be an object")
        raise _refuse(f"{path}.type", "must be user_attribute or event (or the node a group)")

    def group(self, raw: Any, path: str, depth: int) -> Group:
        if depth > MAX_DEPTH:
            raise _refuse(path, f"groups nest at most {MAX_DEPTH} deep")
        body = self._object(raw, path, {"operator", "conditions"})
        operator = body.get("operator")
        if operator not in ("AND", "OR"):
            raise _refuse(f"{path}.operator", "must be AND or OR")
        conditions = body.get("conditions")
        if not isinstance(conditions, list) or not conditions:
            raise _refuse(f"{path}.conditions", "must be a non-empty list")
        if len(conditions) > MAX_CONDITIONS:
            raise _refuse(f"{path}.conditions", f"at most {MAX_CONDITIONS} conditions")
        nodes = tuple(
            self.node(item, f"{path}.conditions.{index}", depth)
            for index, item in enumerate(conditions)
        )
        return Group(operator, nodes)

    def attribute(self, raw: dict[str, Any], path: str) -> AttributeCondition:
        body = self._object(raw, path, {"type", "field", "operator", "value"})
        field = self.field(body.get("field"), f"{path}.field", USER_FIELDS, "attributes.")
        return AttributeCondition(self.predicate(body, path, field))

    def event(self, raw: dict[str, Any], path: str) -> EventCondition:
        body = self._object(
            raw, path, {"type", "eventName", "field", "operator", "value", "timeframe", "count"}
        )
        name = body.get("eventName")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise _refuse(f"{path}.eventName", "must be an event name (1 to 100 characters)")
        timeframe = self.timeframe(body.get("timeframe"), f"{path}.timeframe")
        count = self.count(body.get("count"), f"{path}.count")
        predicate = None
        negated = False
        if body.get("field") is not None:
            field = self.field(body["field"], f"{path}.field", EVENT_FIELDS, "properties.")
            predicate = self.predicate(body, path, field)
        else:
            operator = body.get("operator", "exists")
            if operator not in ("exists", "not_exists"):
                raise _refuse(
                    f"{path}.operator", "without a field, must be exists or not_exists (or count)"
                )
            if body.get("value") is not None:
                raise _refuse(f"{path}.value", "takes no value without a field")
            negated = operator == "not_exists"
            if negated and count is not None:
                raise _refuse(f"{path}.count", "not with not_exists (use count equals 0)")
        return EventCondition(name, predicate, negated, timeframe, count)

    def field(self, raw: Any, path: str, builtins: dict[str, Kind], prefix: str) -> Field:
        if not isinstance(raw, str):
            raise _refuse(path, "must be a field name")
        if raw in builtins:
            return Field(raw, builtins[raw])
        key = raw[len(prefix) :] if raw.startswith(prefix) else raw
        if prefix == "properties." and not raw.startswith(prefix):
            raise _refuse(path, f"must be {', '.join(builtins)} or properties.<key>")
        if not KEY.match(key):
            raise _refuse(path, "a key is 1 to 64 letters, digits, _ . or -")
        return Field(raw, "json", key)

    def predicate(self, body: dict[str, Any], path: str, field: Field) -> Predicate:
        operator = body.get("operator")
        if operator not in OPERATORS:
            raise _refuse(f"{path}.operator", f"must be one of {', '.join(OPERATORS)}")
        if operator not in KIND_OPERATORS[field.kind]:
            raise _refuse(f"{path}.operator", f"does not apply to {field.name}")
        value = self.value(body.get("value"), f"{path}.value", field.kind, operator)
        return Predicate(field, operator, value)

    def value(self, raw: Any, path: str, kind: Kind, operator: str) -> Any:
        if operator in ("exists", "not_exists"):
            if raw is not None:
                raise _refuse(path, f"{operator} takes no value")
            return None
        if operator in ("in", "not_in"):
            if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LIST:
                raise _refuse(path, f"must be a list of 1 to {MAX_LIST} values")
            return [self.scalar(item, f"{path}.{i}", kind) for i, item in enumerate(raw)]
        if operator in ("contains", "not_contains"):
            if not isinstance(raw, str) or not 1 <= len(raw) <= MAX_TEXT:
                raise _refuse(path, f"must be text of 1 to {MAX_TEXT} characters")
            return raw
        if operator in ("gt", "gte", "lt", "lte"):
            if kind == "time":
                return self.time(raw, path)
            if not _number(raw):
                raise _refuse(path, "must be a number")
            return raw
        return self.scalar(raw, path, kind)

    def scalar(self, raw: Any, path: str, kind: Kind) -> Scalar:
        if kind == "bool":
            if not isinstance(raw, bool):
                raise _refuse(path, "must be true or false")
            return raw
        if kind == "text":
            if not isinstance(raw, str) or len(raw) > MAX_TEXT:
                raise _refuse(path, f"must be text of at most {MAX_TEXT} characters")
            return raw
        if isinstance(raw, str):
            if len(raw) > MAX_TEXT:
                raise _refuse(path, f"text of at most {MAX_TEXT} characters")
            return raw
        if isinstance(raw, bool) or _number(raw):
            return raw  # type: ignore[no-any-return]
        raise _refuse(path, "must be text, a number or true/false")

    def time(self, raw: Any, path: str) -> datetime:
        if isinstance(raw, dict):
            body = self._object(raw, path, {"ago", "unit"})
            ago, unit = body.get("ago"), body.get("unit")
            if unit not in ("days", "hours"):
                raise _refuse(f"{path}.unit", "must be days or hours")
            limit = MAX_DAYS if unit == "days" else MAX_HOURS
            if not _integer(ago) or not 0 <= ago <= limit:
                raise _refuse(f"{path}.ago", f"must be a whole number from 0 to {limit}")
            return self.now - timedelta(**{unit: ago})
        if isinstance(raw, str):
            try:
                parsed = datetime.fromisoformat(raw)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:
                return parsed
        raise _refuse(path, "must be an ISO 8601 time with an offset, or {ago, unit}")

    def timeframe(self, raw: Any, path: str) -> Timeframe | None:
        if raw is None:
            return None
        body = self._object(raw, path, {"type", "value", "unit"})
        if body.get("type", "relative") != "relative":
            raise _refuse(f"{path}.type", "must be relative")
        unit = body.get("unit")
        if unit not in ("days", "hours"):
            raise _refuse(f"{path}.unit", "must be days or hours")
        limit = MAX_DAYS if unit == "days" else MAX_HOURS
        value = body.get("value")
        if not _integer(value) or not 1 <= value <= limit:
            raise _refuse(f"{path}.value", f"must be a whole number from 1 to {limit}")
        return Timeframe(value, unit)

    def count(self, raw: Any, path: str) -> Count | None:
        if raw is None:
            return None
        body = self._object(raw, path, {"operator", "value"})
        operator = body.get("operator")
        if operator not in COMPARISONS:
            raise _refuse(f"{path}.operator", f"must be one of {', '.join(COMPARISONS)}")
        value = body.get("value")
        if not _integer(value) or not 0 <= value <= 1_000_000_000:
            raise _refuse(f"{path}.value", "must be a whole number from 0")
        return Count(operator, value)


def _number(raw: Any) -> bool:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return False
    return math.isfinite(raw) and abs(raw) < 1e300


def _integer(raw: Any) -> TypeGuard[int]:
    return isinstance(raw, int) and not isinstance(raw, bool)


def compare(operator: str, left: Any, right: Any) -> bool:
    """equals / not_equals / gt / gte / lt / lte on two comparable values."""
    if operator == "equals":
        return bool(left == right)
    if operator == "not_equals":
        return bool(left != right)
    if operator == "gt":
        return bool(left > right)
    if operator == "gte":
        return bool(left >= right)
    if operator == "lt":
        return bool(left < right)
    return bool(left <= right)
