"""The JavaScript, React Native and Python quickstarts of docs/sdk.md run as written against a
server like `make dev`, and do what they say. The JavaScript ones, by Node, import
`@replyhq/sdk` as an app would: a project folder whose node_modules holds the built package, and
for React Native, `@react-native-async-storage/async-storage` as an in-memory module with
AsyncStorage's API (React Native itself cannot run here) and the app's own `config.js`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, Servers
from tests.test_doc_snippets import ROOT, as_run, dev, fenced_blocks, snippet_env, tools
from tests.test_sdk_js import SDK, built_sdk

__all__ = ["dev", "tools"]  # fixtures

DOC = ROOT / "docs" / "sdk.md"
BLOCKS = [b for b in fenced_blocks(DOC) if b.language in {"js", "javascript"}]
PYTHON = [b for b in fenced_blocks(DOC) if b.language in {"python", "py"}]

ASYNC_STORAGE = """
const items = new Map();
const AsyncStorage = {
  getItem: async (key) => (items.has(key) ? items.get(key) : null),
  setItem: async (key, value) => {
    items.set(key, value);
    process.stderr.write(`stored ${key}\\n`);
  },
  removeItem: async (key) => { items.delete(key); },
};
export default AsyncStorage;
"""

CONFIG = """
import { createHmac } from "node:crypto";
export const SUPPORT_URL = process.env.REPLYHQ_URL;
export const APP_ID = process.env.APP_ID;
export const SDK_KEY = process.env.SDK_KEY;
// The test's stand-in for the app's backend.
export async function userHashFromYourBackend(userId) {
  return createHmac("sha256", process.env.IDENTITY_SECRET).update(userId).digest("hex");
}
"""


def app_project(folder: Path) -> Path:
    modules = folder / "node_modules"
    (modules / "@replyhq").mkdir(parents=True)
    (modules / "@replyhq" / "sdk").symlink_to(SDK)
    storage = modules / "@react-native-async-storage" / "async-storage"
    storage.mkdir(parents=True)
    (storage / "package.json").write_text(
        json.dumps(
            {
                "name": "@react-native-async-storage/async-storage",
                "type": "module",
                "exports": "./index.js",
            }
        )
    )
    (storage / "index.js").write_text(ASYNC_STORAGE)
    (folder / "config.js").write_text(CONFIG)
    (folder / "package.json").write_text(json.dumps({"type": "module", "private": True}))
    return folder


def test_both_quickstarts_are_found() -> None:
    assert len(BLOCKS) == 2
    assert "process.env" in BLOCKS[0].code and "AsyncStorage" in BLOCKS[1].code


@pytest.mark.parametrize("snippet", BLOCKS, ids=["node", "react_native"])
def test_the_quickstart_runs_as_written(
    snippet: object, servers: Servers, dev: LiveServer, tools: Path, tmp_path: Path
) -> None:
    node = built_sdk()
    project = app_project(tmp_path)
    (project / "quickstart.mjs").write_text(snippet.code)  # type: ignore[attr-defined]
    env = snippet_env(servers, dev, tools)
    done = subprocess.run(
        [node, "quickstart.mjs"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    secret = {"X-App-Id": env["APP_ID"], "X-Api-Key": env["SECRET_KEY"]}
    conversations = httpx.get(f"{dev.url}/admin/api/conversations", headers=secret).json()
    last = {c["last_message"]["body"] for c in conversations["items"] if c["last_message"]}
    if "AsyncStorage" in snippet.code:  # type: ignore[attr-defined]
        assert "Sent from React Native" in last
        assert "stored replyhq:" in done.stderr  # the device and queue went to AsyncStorage
    else:
        assert "1 user Hello!" in done.stdout
        assert "2 user Where is my parcel?" in done.stdout
        assert "refused: VALIDATION_ERROR" in done.stdout
        assert "Where is my parcel?" in last


def _conversations(dev: LiveServer, env: dict[str, str]) -> dict[str, list[str]]:
    """Each conversation's subject -> its messages' bodies, as the server holds them."""
    secret = {"X-App-Id": env["APP_ID"], "X-Api-Key": env["SECRET_KEY"]}
    listed = httpx.get(f"{dev.url}/admin/api/conversations?limit=100", headers=secret).json()
    found: dict[str, list[str]] = {}
    for conversation in listed["items"]:
        messages = httpx.get(
            f"{dev.url}/admin/api/conversations/{conversation['id']}/messages",
            headers=secret,
        ).json()
        found[conversation["subject"] or ""] = [m["body"] for m in messages["items"]]
    return found


def test_the_python_quickstarts_run_as_written(
    servers: Servers, dev: LiveServer, tools: Path, tmp_path: Path
) -> None:
    assert len(PYTHON) == 2
    env = snippet_env(servers, dev, tools)
    outputs = []
    for snippet in PYTHON:
        command, script = as_run(snippet, dev.url)
        done = subprocess.run(
            command, input=script, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    asyncio_run, blocking = outputs
    for line in (
        "1 user Hello from Python",
        "2 user Is my invoice paid?",
        "unread: 0",
        "tracked: True",
        "refused: VALIDATION_ERROR",
    ):
        assert line in asyncio_run.splitlines(), asyncio_run
    assert "stored as seq 1 unread 0" in blocking
    held = _conversations(dev, env)
    assert held["Billing"] == ["Hello from Python", "Is my invoice paid?"]
    assert held["Nightly report"] == ["The nightly import failed twice."]
    # The blocking script kept its device id and (empty) queue in its file.
    stored = json.loads((tmp_path / "replyhq-nightly.json").read_text())
    assert any(key.endswith(":device") for key in stored)
