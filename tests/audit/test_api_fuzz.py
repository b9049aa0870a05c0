"""Schemathesis against a live `replyhq serve`: every operation of the served OpenAPI schema, with
valid credentials of the caller kind it is meant for, answers bad and odd input without a 5xx.

Run by `make audit` (marked `audit`, so `make test` leaves it out). Examples per operation are
bounded by AUDIT_FUZZ_EXAMPLES (default 25).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from replyhq.app import create_app
from replyhq.settings import DEV_MASTER_KEY, Settings
from tests.conftest import LiveServer, Servers, server_env, start_server

pytestmark = pytest.mark.audit

PASSWORD = "fuzzing is not guessing 42"
EXAMPLES = int(os.environ.get("AUDIT_FUZZ_EXAMPLES", "25"))


@dataclass
class Callers:
    """One set of valid credentials per caller kind of API.md."""

    url: str
    app_id: str
    sdk_key: str
    secret_key: str
    email: str
    access_token: str = ""
    device_id: str = "fuzz-device"
    # Path parameters that name this app's real objects, so generated ids reach them.
    real_ids: dict[str, str] = field(default_factory=dict)

    def sign_in(self) -> None:
        response = httpx.post(
            self.url + "/admin/login", json={"email": self.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        self.access_token = response.json()["access_token"]

    def headers_for(self, path: str, integration: bool) -> dict[str, str]:
        if path.startswith("/setup"):
            return {"X-Master-Key": DEV_MASTER_KEY}
        sdk = {"X-App-Id": self.app_id, "X-Api-Key": self.sdk_key, "X-Device-Id": self.device_id}
        if path.startswith("/v1"):
            return sdk
        if integration:
            return {"X-App-Id": self.app_id, "X-Api-Key": self.secret_key}
        return {"Authorization": f"Bearer {self.access_token}"}


def _create_staff(servers: Servers, app_id: str, email: str, role: str) -> str:
    command = [sys.executable, "-m", "replyhq.cli", "admins", "create", "--app", app_id, "--json"]
    command += ["--email", email, "--role", role, "--password", PASSWORD]
    done = subprocess.run(
        command, env=server_env(servers), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    staff_id: str = json.loads(done.stdout)["id"]
    return staff_id


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def live(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(servers, tmp_path_factory.mktemp("fuzz"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def callers(live: LiveServer, servers: Servers) -> Callers:
    created = httpx.post(
        live.url + "/setup/apps", headers={"X-Master-Key": DEV_MASTER_KEY}, json={"name": "Fuzz"}
    )
    assert created.status_code == 201, created.text
    app = created.json()
    callers = Callers(
        live.url, app["id"], app["sdk_key"], app["secret_key"], f"owner-{uuid.uuid4().hex[:6]}@x.io"
    )
    _create_staff(servers, callers.app_id, callers.email, "OWNER")
    callers.sign_in()
    device = callers.headers_for("/v1", integration=False)
    identified = httpx.post(
        live.url + "/v1/identify", headers=device, json={"platform": "web", "name": "Fuzz"}
    )
    assert identified.status_code == 200, identified.text
    first = {"body": "Hello", "client_msg_id": "fuzz-1"}
    started = httpx.post(
        live.url + "/v1/conversations", headers=device, json={"first_message": first}
    )
    assert started.status_code == 201, started.text
    agent = _create_staff(servers, callers.app_id, f"agent-{uuid.uuid4().hex[:6]}@x.io", "AGENT")
    callers.real_ids = {
        "conversation_id": started.json()["id"],
        "end_user_id": identified.json()["user"]["id"],
        "staff_id": agent,  # never the owner: deactivating it would end the run's sign-in
    }
    return callers


def _served_schema() -> dict[str, Any]:
    """The schema `replyhq serve` publishes, built without servers (as web/scripts does)."""
    settings = Settings(
        database_url="postgresql://x@127.0.0.1:9/x", redis_url="redis://127.0.0.1:9"
    )
    return create_app(settings).openapi()


SERVED = _served_schema()
schema = schemathesis.openapi.from_dict(SERVED)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_makes_the_server_fail(case: schemathesis.Case, callers: Callers) -> None:
    path = case.operation.path
    for name, value in (case.path_parameters or {}).items():
        if name in callers.real_ids and _is_uuid(value):
            case.path_parameters[name] = callers.real_ids[name]  # type: ignore[index]
    # /admin/api is for staff and, where permitted, the app's backend with its secret key.
    kinds = [False, True] if path.startswith("/admin/api") else [False]
    for integration in kinds:
        headers = callers.headers_for(path, integration)
        response = case.call(base_url=callers.url, headers=headers, timeout=30)
        case.validate_response(response, checks=(not_a_server_error,))
        if response.status_code == 401 and not integration and path.startswith("/admin"):
            callers.sign_in()  # the case signed this session out (logout): a new one for the next


def test_the_fuzzed_schema_is_the_live_one_and_covers_every_caller_kind(live: LiveServer) -> None:
    assert httpx.get(live.url + "/openapi.json").json() == json.loads(json.dumps(SERVED))
    paths = SERVED["paths"]
    prefixes = {"/setup", "/v1", "/admin/api", "/admin/login"}
    assert all(any(p.startswith(prefix) for p in paths) for prefix in prefixes), sorted(paths)
