"""One redactor for logs, stored job errors and Sentry events: secrets never leave the process.

Two rules, applied at every depth of dicts, lists and tuples:
- a value under a sensitive name (`password`, `X-Api-Key`, `push_token`, `Authorization`, ...)
  is replaced whole, whatever it looks like;
- any string, wherever it sits, loses what looks like a credential: our keys (`rhq_sdk_...`,
  `rhq_sk_...`), bearer credentials, JWTs, passwords in URLs and `password=...` pairs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

REDACTED = "[REDACTED]"

# Matched against a whole key, case-insensitively, with `-` and `_` treated alike.
_SENSITIVE_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|apikey|sdk[_-]?key|master[_-]?key"
    r"|authorization|auth|cookie|set[_-]cookie|credentials?|private[_-]?key|user[_-]?hash"
    r"|jwt|dsn|signature|csrf)",
    re.IGNORECASE,
)
_SENSITIVE_PART = re.compile(
    r"pass(word|wd)|secret|token|api[_-]?key|sdk[_-]?key|master[_-]?key|authorization"
    r"|cookie|credential|private[_-]?key|user[_-]?hash"
    # The values bound to a SQL statement (SQLAlchemy's and psycopg's frames, as Sentry
    # captures their local variables): message bodies, e-mails, key digests.
    r"|params|parameters",
    re.IGNORECASE,
)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # PostgreSQL's error messages quote the values that failed: what a client sent.
    # DETAIL:  Key (email)=(alice@example.com) already exists.
    (re.compile(r"(\bKey \([^\n]*?\)=\().*"), r"\1" + REDACTED + ")"),
    # DETAIL:  Failing row contains (…, alice@example.com, …).
    (re.compile(r"(\bFailing row contains \().*"), r"\1" + REDACTED + ")"),
    # invalid input syntax for type uuid: "…"; invalid input value for enum role: "…"
    (
        re.compile(r'(\binvalid input (?:syntax|value) for [^:\n]*: )"[^\n]*'),
        r'\1"' + REDACTED + '"',
    ),
    # SQLAlchemy's "[parameters: {...}]" (the engine hides them; another engine might not)
    (re.compile(r"(\[parameters: )[^\n]*"), r"\1" + REDACTED + "]"),
    # Our keys: rhq_sdk_..., rhq_sk_..., and any other rhq_<kind>_ secret (master keys).
    (re.compile(r"\brhq_[a-z]+_[A-Za-z0-9_\-]{4,}"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), REDACTED),
    # scheme://user:password@host
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]+:)[^@/\s]+@"), r"\1" + REDACTED + "@"),
    # password=..., "api_key": "...", token: ... inside free text (messages, reprs, query strings)
    (
        re.compile(
            r"(?i)\b((?:[a-z_\-]*)(?:password|passwd|secret|token|api[_-]?key|apikey|sdk[_-]?key"
            r"|master[_-]?key|authorization|cookie|user[_-]?hash))(['\"]?\s*[:=]\s*['\"]?)"
            r"(?!(?i:bearer)\s|\[REDACTED\])([^\s'\",;&}]+)"
        ),
        r"\1\2" + REDACTED,
    ),
]


# Cheap pre-check so that most strings skip the patterns entirely (substring tests in C are
# several times faster than one regular expression with alternatives).
def _maybe_secret(text: str) -> bool:
    low = text.lower()
    return (
        "key" in low
        or "token" in low
        or "pass" in low
        or "secret" in low
        or "bearer" in low
        or "://" in low
        or "rhq_" in low
        or "eyj" in low
        or "cookie" in low
        or "authorization" in low
        or "hash" in low
        or "detail:" in low
        or "failing row" in low
        or "invalid input" in low
        or "[parameters" in low
    )


@lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    """A key whose value is a secret, whatever that value looks like (names repeat: cached)."""
    return bool(_SENSITIVE_NAME.fullmatch(name) or _SENSITIVE_PART.search(name))


def redact_text(text: str) -> str:
    if len(text) < 3 or not _maybe_secret(text):
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _name(key: object) -> str | None:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.decode("latin-1")
    return None


def _hide(value: Any) -> Any:
    # Absent credentials stay visible: "no key was sent" is useful and not a secret.
    if value is None or value == "" or isinstance(value, bool):
        return value
    return REDACTED


_PLAIN = frozenset({int, float, bool, type(None)})


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` with every secret replaced by [REDACTED]."""
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if kind in _PLAIN:  # the common cases first: every log line goes through here
        return value
    if _depth > 32:
        return REDACTED
    if kind is dict or isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = key if type(key) is str else _name(key)
            out[key] = (
                _hide(item)
                if name is not None and is_sensitive_name(name)
                else redact(item, _depth + 1)
            )
        return out
    if isinstance(value, (list, tuple)):
        # A header list: [("authorization", "Bearer ..."), ...]
        if len(value) == 2 and (name := _name(value[0])) is not None and is_sensitive_name(name):
            pair = [redact(value[0], _depth + 1), _hide(value[1])]
            return tuple(pair) if isinstance(value, tuple) else pair
        items = [redact(item, _depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, bytes):
        return redact_text(value.decode("latin-1"))
    if isinstance(value, str):  # a str subclass
        return redact_text(value)
    return value
