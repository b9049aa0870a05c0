"""`/demo` and `make dev`'s banner always embed the demo app's current keys: after a rotation
through the dashboard's admin API, /setup or the CLI, and after a restart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from replyhq.settings import DEV_MASTER_KEY
from tests.test_embedded import Demo, _interrupt, _start, data_dir
from tests.test_embedded_shared import owner_login, replyhq

__all__ = ["data_dir"]


def demo_page_key(demo: Demo) -> str:
    page = httpx.get(demo.url + "/demo", timeout=10)
    assert page.status_code == 200, page.text
    found = re.search(r"rhq_sdk_[A-Za-z0-9_\-]+", page.text)
    assert found, page.text
    return found.group(0)


def works(demo: Demo, sdk_key: str) -> bool:
    response = httpx.post(
        demo.url + "/v1/identify",
        headers={"X-App-Id": demo.app_id, "X-Api-Key": sdk_key, "X-Device-Id": "tab"},
        json={"platform": "web"},
        timeout=10,
    )
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def assert_demo_embeds(demo: Demo, data: Path, keys: dict[str, str]) -> None:
    assert demo_page_key(demo) == keys["sdk_key"]
    assert works(demo, keys["sdk_key"])
    stored = json.loads((data / "demo-app.json").read_text())
    assert {k: stored[k] for k in keys} == keys


def test_the_demo_follows_every_key_rotation_and_restarts(tmp_path: Path, data_dir: Path) -> None:
    data = data_dir
    first = _start(tmp_path, data, 1)
    try:
        assert demo_page_key(first) == first.sdk_key
        old_key = first.sdk_key
        with httpx.Client(base_url=first.url, timeout=10) as http:
            token = http.post("/admin/login", json=owner_login(first)).json()["access_token"]
            rotated = http.post(
                "/admin/api/app/rotate-keys", headers={"Authorization": f"Bearer {token}"}
            )
            assert rotated.status_code == 200, rotated.text
            keys = {k: rotated.json()[k] for k in ("sdk_key", "secret_key", "identity_secret")}
            assert_demo_embeds(first, data, keys)
            assert not works(first, old_key)

            rotated = http.post(
                f"/setup/apps/{first.app_id}/rotate-keys", headers={"X-Master-Key": DEV_MASTER_KEY}
            )
            assert rotated.status_code == 200, rotated.text
            keys = {k: rotated.json()[k] for k in ("sdk_key", "secret_key", "identity_secret")}
            assert_demo_embeds(first, data, keys)

        by_cli = replyhq(data, tmp_path, "apps", "rotate-keys", first.app_id, "--json")
        assert by_cli.returncode == 0, by_cli.stderr
        keys = {
            k: json.loads(by_cli.stdout)[k] for k in ("sdk_key", "secret_key", "identity_secret")
        }
        assert_demo_embeds(first, data, keys)
    finally:
        assert _interrupt(first) == 0, first.log.read_text()[-3000:]

    again = _start(tmp_path, data, 2)
    try:
        assert (again.app_id, again.sdk_key) == (first.app_id, keys["sdk_key"])
        assert re.search(rf"secret key\s+{re.escape(keys['secret_key'])}", again.log.read_text())
        assert_demo_embeds(again, data, keys)
    finally:
        assert _interrupt(again) == 0, again.log.read_text()[-3000:]


def test_a_demo_file_left_stale_gets_working_keys_at_the_next_start(
    tmp_path: Path, data_dir: Path
) -> None:
    """A file made stale before it was kept current (or by a rotation on another machine)."""
    data = data_dir
    first = _start(tmp_path, data, 1)
    try:
        rotated = httpx.post(
            f"{first.url}/setup/apps/{first.app_id}/rotate-keys",
            headers={"X-Master-Key": DEV_MASTER_KEY},
            timeout=10,
        )
        assert rotated.status_code == 200, rotated.text
    finally:
        assert _interrupt(first) == 0, first.log.read_text()[-3000:]
    stale = json.loads((data / "demo-app.json").read_text())
    stale["sdk_key"] = first.sdk_key  # as the old code left it
    (data / "demo-app.json").write_text(json.dumps(stale))

    again = _start(tmp_path, data, 2)
    try:
        assert again.app_id == first.app_id
        assert again.sdk_key not in (first.sdk_key, rotated.json()["sdk_key"])
        assert demo_page_key(again) == again.sdk_key
        assert works(again, again.sdk_key)
    finally:
        assert _interrupt(again) == 0, again.log.read_text()[-3000:]
