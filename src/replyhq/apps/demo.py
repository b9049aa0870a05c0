"""The demo app of `make dev`: its current keys in DATA_DIR/demo-app.json.

Keys are stored only hashed, so the plain keys the demo page embeds and the banner prints live in
this file (mode 0600) on the laptop that runs the demo, and nowhere else. Every rotation of the
demo app's keys (dashboard, admin API, /setup, CLI) rewrites it once the rotation has committed
(apps/service.py), and `serve --demo` replaces keys that no longer match the database (rotated
by another machine, or by a version before this file was kept current)."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

from replyhq.apps.keys import AppKeys

FILE_NAME = "demo-app.json"


def path(data_dir: Path | str) -> Path:
    return Path(data_dir) / FILE_NAME


def load(data_dir: Path | str) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        data: dict[str, Any] = json.loads(path(data_dir).read_text())
        return data
    return None


def save(data_dir: Path | str, demo: dict[str, Any]) -> None:
    """Write the whole file at once (a reader never sees half of it), readable by its owner only."""
    target = path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{FILE_NAME}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(json.dumps(demo, indent=2))
    partial.replace(target)


def with_keys(demo: dict[str, Any], keys: AppKeys) -> dict[str, Any]:
    return {
        **demo,
        "sdk_key": keys.sdk_key,
        "secret_key": keys.secret_key,
        "identity_secret": keys.identity_secret,
    }


def remember_rotation(data_dir: Path | str | None, app_id: uuid.UUID, keys: AppKeys) -> None:
    """After `app_id`'s keys were rotated: if it is this DATA_DIR's demo app, keep its file current
    (any other app: nothing to do)."""
    if data_dir is None:
        return
    demo = load(data_dir)
    if demo is not None and demo.get("id") == str(app_id):
        save(data_dir, with_keys(demo, keys))
