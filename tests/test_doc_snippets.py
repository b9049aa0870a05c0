"""Every snippet in README.md and docs/*.md runs as written against a server like `make dev`.

Fenced blocks labelled `sh`, `bash`, `console` or `python` (or `shell`, `zsh`, `py`) are run, in
file order, each on its own: shell blocks with bash (`set -e -o pipefail`; in a `console` block
only the `$ ` lines), Python ones with this interpreter. They see what `make dev` prints as
environment variables: `APP_ID`, `SDK_KEY`, `SECRET_KEY`, `IDENTITY_SECRET` (the demo app's
current keys), `MASTER_KEY`, `OWNER_EMAIL`, `OWNER_PASSWORD` and `REPLYHQ_URL`; `localhost:8000`
and `127.0.0.1:8000` in a snippet are this server's address; `replyhq` is the CLI, on this
server's database. `curl` fails on an HTTP error (`--fail-with-body`): an example that is refused
is not one a reader can follow.
Output samples, JSON bodies and templates are labelled `text`, `json` or `http` and never run;
so is anything that never exits (`make dev`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LiveServer, Servers, server_env, start_server

ROOT = Path(__file__).resolve().parents[1]
SHELL = {"sh", "bash", "shell", "zsh", "console"}
RUN = SHELL | {"python", "py"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n`]*)$")
DEV_ADDRESSES = ("localhost:8000", "127.0.0.1:8000")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> Iterator[Snippet]:
    """Each fenced block of a Markdown file, with its language (the info string's first word)."""
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = (opening["info"].split() or [""])[0].lower()
        body: list[str] = []
        index += 1
        while index < len(lines) and not re.match(
            rf"^[ \t]*{re.escape(fence)}[ \t]*$", lines[index]
        ):
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        yield Snippet(path, index - len(body), language, "\n".join(body) + "\n")
        index += 1


def all_blocks() -> list[Snippet]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [block for path in files for block in fenced_blocks(path)]


SNIPPETS = [block for block in all_blocks() if block.language in RUN]
# Shown, never run: samples, bodies, templates, and code in languages this test cannot run.
NOT_RUN = {"", "text", "json", "http", "html", "js", "javascript", "ts", "typescript", "tsx"}
NOT_RUN |= {"yaml", "yml", "toml", "ini", "sql", "diff", "promql", "dockerfile", "nginx"}


def test_every_block_is_either_run_or_labelled_as_not_a_command() -> None:
    """A block labelled `shell-session` or `python3` would silently escape this test."""
    unknown = [f"{b.name} ({b.language})" for b in all_blocks() if b.language not in RUN | NOT_RUN]
    assert unknown == [], "label each sh/bash/console/python (run) or text/json/http (not run)"


def test_the_snippets_that_must_run_are_found() -> None:
    names = {(s.path.name, s.language) for s in SNIPPETS}
    assert ("README.md", "sh") in names  # the quick try with curl
    assert ("realtime.md", "python") in names  # the Python SDK


@pytest.fixture(scope="module")
def dev(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("doc-snippets")
    server = start_server(servers, data_dir, "--demo", DATA_DIR=str(data_dir))
    server.data_dir = data_dir  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder put first on PATH: `curl` that fails on HTTP errors, and this venv's `replyhq`."""
    folder = tmp_path_factory.mktemp("snippet-bin")
    real_curl = shutil.which("curl")
    assert real_curl, "curl is missing"
    curl = folder / "curl"
    curl.write_text(f'#!/bin/sh\nexec {real_curl} --fail-with-body --silent --show-error "$@"\n')
    curl.chmod(0o755)
    (folder / "replyhq").symlink_to(Path(sys.executable).parent / "replyhq")
    return folder


def snippet_env(servers: Servers, dev: LiveServer, tools: Path) -> dict[str, str]:
    data_dir: Path = dev.data_dir  # type: ignore[attr-defined]
    demo = json.loads((data_dir / "demo-app.json").read_text())  # current after any rotation
    env = server_env(servers, DATA_DIR=str(data_dir))
    env["PATH"] = f"{tools}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        APP_ID=demo["id"],
        SDK_KEY=demo["sdk_key"],
        SECRET_KEY=demo["secret_key"],
        IDENTITY_SECRET=demo["identity_secret"],
        MASTER_KEY="rhq_master_dev_only",
        OWNER_EMAIL=demo["owner_email"],
        OWNER_PASSWORD=demo["owner_password"],
        REPLYHQ_URL=dev.url,
    )
    return env


def as_run(snippet: Snippet, url: str) -> tuple[list[str], str]:
    """The command and the input that run `snippet` against the server at `url`."""
    code = snippet.code
    for address in DEV_ADDRESSES:
        code = code.replace(f"http://{address}", url).replace(address, url.split("//", 1)[1])
    if snippet.language not in SHELL:
        return [sys.executable, "-"], code
    if snippet.language == "console":
        code = console_commands(code)
    return ["bash", "-e", "-o", "pipefail", "-s"], code


def console_commands(transcript: str) -> str:
    """The commands of a terminal transcript: `$ ` lines and their `\\` continuations."""
    commands: list[str] = []
    continued = False
    for line in transcript.splitlines():
        if continued or line.startswith("$ "):
            commands.append(line if continued else line[2:])
            continued = line.endswith("\\")
    return "\n".join(commands) + "\n"


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_runs(
    snippet: Snippet, servers: Servers, dev: LiveServer, tools: Path, tmp_path: Path
) -> None:
    command, script = as_run(snippet, dev.url)
    result = subprocess.run(
        command,
        input=script,
        env=snippet_env(servers, dev, tools),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (
        f"{snippet.name} ({snippet.language}) exited {result.returncode}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
