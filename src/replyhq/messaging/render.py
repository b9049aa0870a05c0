"""Message bodies are Markdown; `body_html` is its rendering, sanitised so a page may insert it."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

# Raw HTML in a body is shown as text, never interpreted; nh3 then removes anything unsafe the
# Markdown could still produce (links to javascript: or data: URLs, for instance).
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).disable(
    "image"
)

_TAGS = {"p", "br", "strong", "em", "code", "pre", "a", "ul", "ol", "li", "blockquote", "hr"}
_ATTRIBUTES = {"a": {"href", "title"}}
_SCHEMES = {"http", "https", "mailto"}


def render_body_html(body: str) -> str:
    html = _markdown.render(body)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow ugc",
    ).strip()
