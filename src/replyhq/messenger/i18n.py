"""The server's side of the messenger's catalogue (web/src/widget/i18n.ts holds the messenger's):
the languages a messenger may speak and the automatic away reply's own words."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

Language = Literal["en", "fr"]
LANGUAGES: tuple[Language, ...] = ("en", "fr")

_CATALOGUE: dict[Language, dict[str, str]] = {
    "en": {
        "back_at": "We'll be back on {day} at {time} ({zone}).",
        "back_unknown": "We'll get back to you as soon as we can.",
    },
    "fr": {
        "back_at": "Nous serons de retour {day} à {time} ({zone}).",
        "back_unknown": "Nous vous répondrons dès que possible.",
    },
}

_DAYS: dict[Language, tuple[str, ...]] = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}


def back_line(language: Language, back_at: datetime | None, zone_name: str) -> str:
    """When the team is back, in the messenger's language and the app's time zone."""
    words = _CATALOGUE[language]
    if back_at is None:
        return words["back_unknown"]
    local = back_at.astimezone(ZoneInfo(zone_name))
    return words["back_at"].format(
        day=_DAYS[language][local.weekday()], time=local.strftime("%H:%M"), zone=zone_name
    )
