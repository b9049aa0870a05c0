"""Message bodies are Markdown; `body_html` is its rendering, sanitised so a page may insert it."""

from __future__ import annotations

import re

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


# One line of words and plain punctuation, starting with a letter: nothing in it is Markdown
# (no * _ ` [ < & \\ ~ |, no line start that opens a heading, list, quote or code block) nor
# needs escaping, so its rendering is one paragraph of the text itself. Most chat messages are
# such lines, and the full renderer costs some 0.1-0.2 ms a message. tests/test_render.py checks
# that both give the same HTML.
_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9 ,.?!'():;/@#%$=+-]*(?<! )")


def render_body_html(body: str) -> str:
    if _PLAIN.fullmatch(body):
        return f"<p>{body}</p>"
    return render_markdown(body)


def render_markdown(body: str) -> str:
    """The full rendering: Markdown, then sanitised."""
    html = _markdown.render(body)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow ugc",
    ).strip()
