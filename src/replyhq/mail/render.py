"""Templates of every e-mail, in one folder: `<name>.subject.txt`, `<name>.txt` and
`<name>.html` (which extends `_layout.html`). HTML is autoescaped; text and subject are not."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("replyhq.mail", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,  # a missing value is a bug, found when the mail is queued
        keep_trailing_newline=True,
    )


def templates() -> list[str]:
    """The names of every e-mail there is."""
    names = _environment().list_templates(filter_func=lambda n: n.endswith(".subject.txt"))
    return sorted(n.removesuffix(".subject.txt") for n in names)


def render(name: str, context: dict[str, Any]) -> Rendered:
    env = _environment()
    subject = env.get_template(f"{name}.subject.txt").render(context)
    return Rendered(
        subject=" ".join(subject.split()),  # one line, whatever the template's layout
        text=env.get_template(f"{name}.txt").render(context),
        html=env.get_template(f"{name}.html").render(context),
    )
