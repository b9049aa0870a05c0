"""Every snippet in README.md and docs/*.md runs as written against a server like `make dev`.

Fenced blocks labelled `sh`, `bash`, `console` or `python` are run, in file order, each on its own:
shell blocks with bash (`set -e -o pipefail`; in a `console` block only the `$ ` lines), Python ones
with this interpreter. They see what `make dev` prints as environment variables: `APP_ID`,
`SDK_KEY`, `SECRET_KEY`, `IDENTITY_SECRET` (the demo app's current keys), `MASTER_KEY`,
`OWNER_EMAIL`, `OWNER_PASSWORD` and `REPLYHQ_URL`; `localhost:8000` and `127.0.0.1:8000` in a
snippet are this server's address; `replyhq` is the CLI, on this server's database. `curl` fails
on an HTTP error (`--fail-with-body`): an example that is refused is not one a reader can follow.
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
RUN = {"sh", "bash", "console", "python"}
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


def documented() -> list[Snippet]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [s for path in files for s in fenced_blocks(path) if s.language in RUN]


SNIPPETS = documented()


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
    if snippet.language == "python":
        return [sys.executable, "-"], code
    if snippet.language == "console":
        commands = [line[2:] for line in code.splitlines() if line.startswith("$ ")]
        code = "\n".join(commands) + "\n"
    return ["bash", "-e", "-o", "pipefail", "-s"], code


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
