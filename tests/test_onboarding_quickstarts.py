"""The quickstarts as the dashboard shows them (GET /admin/api/onboarding/quickstarts), run
verbatim against a live server with the SDK key the newcomer was shown: the Python, curl and
headless web SDK (@replyhq/sdk, by Node) ones here, the script tag in the browser
(tests/e2e/test_onboarding.py). Each completes the checklist
steps it says it waits for. iOS, Android, React Native and Flutter are marked not run."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from replyhq.onboarding.quickstarts import KEY
from replyhq.web.static import python_sdk_wheel
from tests.conftest import SocketServer
from tests.newcomers import Newcomer, sign_up
from tests.test_sdk_js import built_sdk
from tests.test_sdk_quickstarts import app_project


async def quickstart(http: httpx.AsyncClient, owner: Newcomer, platform: str) -> dict[str, object]:
    response = await http.get("/admin/api/onboarding/quickstarts", headers=owner.auth())
    assert response.status_code == 200, response.text
    by_platform = {q["platform"]: q for q in response.json()}
    found: dict[str, object] = by_platform[platform]
    return found


def filled(code: str, owner: Newcomer) -> str:
    """What the dashboard's copy button puts on the clipboard: the key in place of YOUR_SDK_KEY."""
    return code.replace(KEY, owner.tenant.sdk_key)


async def steps(http: httpx.AsyncClient, owner: Newcomer) -> dict[str, bool]:
    state = (await http.get("/admin/api/onboarding", headers=owner.auth())).json()
    return {s["key"]: s["done"] for s in state["steps"]}


async def test_the_survey_platform_comes_first_and_only_some_are_run(
    http: httpx.AsyncClient,
) -> None:
    owner = await sign_up(http)
    await http.patch(
        "/admin/api/onboarding/survey", headers=owner.auth(), json={"platform": "flutter"}
    )
    listed = (await http.get("/admin/api/onboarding/quickstarts", headers=owner.auth())).json()
    assert listed[0]["platform"] == "flutter"
    assert {q["platform"]: q["executed"] for q in listed} == {
        "flutter": False,
        "web": True,
        "web-sdk": True,
        "python": True,
        "curl": True,
        "ios": False,
        "android": False,
        "react-native": False,
    }
    for q in listed:
        text = "\n".join(s["code"] for s in q["steps"])
        assert owner.app_id in text, q["platform"]
        assert owner.tenant.sdk_key not in text  # the server never knows it


async def test_the_python_quickstart_runs_verbatim(
    socket_server: SocketServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    if python_sdk_wheel() is None:
        pytest.fail("the Python SDK's wheel is not built: `make test` builds it (make dev too)")
    owner = await sign_up(http)
    python = await quickstart(http, owner, "python")
    [install, run] = python["steps"]  # type: ignore[misc]
    # The install step fetches the wheel from this server; its dependencies are the tests' own
    # (no network here), and it goes to a directory of its own, which the run then imports from.
    pip, verb, wheel_url = shlex.split(install["code"])
    assert (pip, verb) == ("pip", "install") and wheel_url.startswith(socket_server.url)
    target = tmp_path / "site"
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            target,
            wheel_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert run["language"] == "python" and run["waits_for"] == "first_message"
    code = filled(run["code"], owner)
    assert socket_server.url in code and owner.app_id in code
    installed = {**os.environ, "PYTHONPATH": str(target)}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", f"{code}\nimport replyhq_sdk; print(replyhq_sdk.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=installed,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(str(target))  # the SDK the server handed out ran
    reached = await steps(http, owner)
    assert reached["sdk_installed"] and reached["first_message"]


async def test_the_python_sdk_wheel_is_only_the_one_built(http: httpx.AsyncClient) -> None:
    wheel = python_sdk_wheel()
    if wheel is None:
        pytest.fail("the Python SDK's wheel is not built: `make test` builds it (make dev too)")
    served = await http.get(f"/sdk/python/{wheel}")
    assert served.status_code == 200 and served.content[:2] == b"PK"  # a zip, as wheels are
    for other in ("replyhq_sdk-0.0.1-py3-none-any.whl", "..%2F..%2Fsettings.py", ".built"):
        missing = await http.get(f"/sdk/python/{other}")
        assert missing.status_code == 404, other
        assert missing.json()["code"] == "NOT_FOUND"


async def test_the_curl_quickstart_runs_verbatim(
    socket_server: SocketServer, http: httpx.AsyncClient
) -> None:
    owner = await sign_up(http)
    curl = await quickstart(http, owner, "curl")
    waits = []
    for step in curl["steps"]:  # type: ignore[attr-defined]
        assert step["language"] == "sh"
        done = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euo", "pipefail", "-c", filled(step["code"], owner)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        waits.append(step["waits_for"])
        assert (await steps(http, owner))[step["waits_for"]] is True
    assert waits == ["sdk_installed", "first_message"]


async def test_the_headless_web_sdk_quickstart_runs_verbatim(
    socket_server: SocketServer, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    owner = await sign_up(http)
    sdk = await quickstart(http, owner, "web-sdk")
    [install, run] = sdk["steps"]  # type: ignore[misc]
    assert install["code"] == "npm install /path/to/replyhq/sdk/js"  # app_project's stand-in
    assert run["language"] == "javascript" and run["waits_for"] == "first_message"
    node = await asyncio.to_thread(built_sdk)
    project = app_project(tmp_path)  # node_modules/@replyhq/sdk: this checkout's sdk/js
    (project / "quickstart.mjs").write_text(filled(run["code"], owner))
    done = await asyncio.to_thread(
        subprocess.run,
        [node, "quickstart.mjs"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("conversation ")
    reached = await steps(http, owner)
    assert reached["sdk_installed"] and reached["first_message"]
