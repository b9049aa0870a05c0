"""body_html: the shortcut for plain one-line messages renders exactly what the full Markdown
renderer and sanitiser would, and everything else takes the full path."""

from __future__ import annotations

import random
import string

import pytest

from replyhq.messaging.render import _PLAIN, render_body_html, render_markdown

ALPHABET = string.ascii_letters + string.digits + " ,.?!'():;/@#%$=+-"


def _plain_samples(count: int) -> list[str]:
    rng = random.Random(20261127)
    samples = []
    for _ in range(count):
        body = rng.choice(string.ascii_letters) + "".join(
            rng.choice(ALPHABET) for _ in range(rng.randint(0, 60))
        )
        samples.append(body.rstrip())
    return samples


TRICKY = [
    "How do I reset my password?",
    "A. not a list",
    "I paid $5 (50%) for it: is that right?",
    "Issue #2 still open; see a/b=c+d-e",
    "Email me at someone@example.com or http://example.com/x",
    "Hello  world, two spaces",
    "x",
]


def test_the_plain_shortcut_renders_what_markdown_would() -> None:
    for body in TRICKY + _plain_samples(3000):
        assert _PLAIN.fullmatch(body), body
        assert render_body_html(body) == render_markdown(body), body


@pytest.mark.parametrize(
    "body",
    [
        "1. a list",
        "- a list",
        "# heading",
        "> quote",
        "    code",
        "*bold*",
        "a_b_c",
        "<script>alert(1)</script>",
        "Tom & Jerry",
        'say "hi"',
        "line one\nline two",
        "trailing space ",
        " leading space",
        "back\\slash",
        "caf\u00e9",
        "[link](javascript:alert(1))",
    ],
)
def test_anything_else_takes_the_full_renderer(body: str) -> None:
    assert not _PLAIN.fullmatch(body)
    assert render_body_html(body) == render_markdown(body)
