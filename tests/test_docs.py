"""The docs tell the truth: every setting is documented as it is, with its default."""

from __future__ import annotations

from pathlib import Path

from replyhq.settings import markdown_table

ROOT = Path(__file__).parent.parent


def test_configuration_doc_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert markdown_table() in doc, "run: python -m replyhq.settings and paste into the doc"


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:8]
    assert any("make dev" in line for line in head)
    assert any("make test" in line for line in head)
