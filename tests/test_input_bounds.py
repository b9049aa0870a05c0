"""Input the database cannot hold is refused at the edge with a 400, never a 500: integers past
their column's range, and the NUL character (which PostgreSQL's text cannot store) anywhere."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from replyhq.app import create_app
from replyhq.runtime import Runtime
from replyhq.settings import DEV_MASTER_KEY
from replyhq.web.bounds import INT4_MAX, INT8_MAX
from tests.conftest import (
    MakeTenant,
    Servers,
    Tenant,
    identify,
    make_settings,
    start_conversation,
)
from tests.staff import add_staff, signed_in

MASTER = {"X-Master-Key": DEV_MASTER_KEY}


def _refused(response: httpx.Response, code: str = "VALIDATION_ERROR") -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["error"]
    return body


async def _history(client: httpx.AsyncClient, tenant: Tenant, conversation_id: object) -> list[str]:
    response = await client.get(
        f"/v1/conversations/{conversation_id}/messages", headers=tenant.sdk()
    )
    assert response.status_code == 200, response.text
    return [m["body"] for m in response.json()["items"]]


# --- integers --------------------------------------------------------------------------------


async def test_sequence_numbers_past_the_column_range_are_400(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant)
    staff = await signed_in(runtime, client, tenant, "AGENT")
    sdk_url = f"/v1/conversations/{conversation['id']}"
    admin_url = f"/admin/api/conversations/{conversation['id']}"
    callers = [(sdk_url, tenant.sdk()), (admin_url, staff.auth())]
    for url, headers in callers:
        for name in ("after_seq", "before_seq"):
            for value in (2**31, 2**63, 10**30):
                response = await client.get(f"{url}/messages?{name}={value}", headers=headers)
                body = _refused(response)
                assert body["details"][0]["field"] == f"query.{name}", body
            # The largest value the column holds is a valid question (nothing lies past it).
            response = await client.get(f"{url}/messages?{name}={INT4_MAX}", headers=headers)
            assert response.status_code == 200, response.text
        for value in (2**31, 2**63):
            body = _refused(await client.post(f"{url}/read", headers=headers, json={"seq": value}))
            assert body["details"][0]["field"] == "seq"
        ok = await client.post(f"{url}/read", headers=headers, json={"seq": 1})
        assert ok.status_code == 204, ok.text


def _integer_inputs(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every integer a client can send: (where, its JSON schema), across the whole API."""
    components = schema.get("components", {}).get("schemas", {})

    def walk(where: str, node: dict[str, Any], seen: frozenset[str]) -> list[Any]:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            return [] if name in seen else walk(where, components[name], seen | {name})
        found: list[Any] = [(where, node)] if node.get("type") == "integer" else []
        for key in ("anyOf", "oneOf", "allOf"):
            for i, option in enumerate(node.get(key, [])):
                found += walk(f"{where}[{i}]", option, seen)
        for name, prop in node.get("properties", {}).items():
            found += walk(f"{where}.{name}", prop, seen)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                found += walk(f"{where}[]", node[key], seen)
        return found

    inputs: list[tuple[str, dict[str, Any]]] = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                where = f"{method.upper()} {path} {parameter['name']}"
                inputs += walk(where, parameter.get("schema", {}), frozenset())
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                inputs += walk(f"{method.upper()} {path} body", media["schema"], frozenset())
    return inputs


async def test_every_integer_input_of_the_api_is_bounded_to_a_column_range(
    client: httpx.AsyncClient,
) -> None:
    """A new route's integer cannot slip through unbounded: the schema says its range (so the
    OpenAPI tells clients and schemathesis) and FastAPI enforces it."""
    inputs = _integer_inputs((await client.get("/openapi.json")).json())
    assert any("after_seq" in where for where, _ in inputs)
    for where, node in inputs:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum", node.get("exclusiveMaximum"))
        assert low is not None and high is not None, f"{where} is unbounded: {node}"
        assert low >= -INT8_MAX - 1 and high <= INT8_MAX, f"{where} exceeds int8: {node}"
        if "seq" in where:
            assert high <= INT4_MAX, f"{where} exceeds its int4 column: {node}"


# --- the NUL character -----------------------------------------------------------------------

NUL_JSON = "bad\\u0000text"  # how JSON writes it: an escape, not a raw byte


async def test_a_nul_character_anywhere_is_400_and_changes_nothing(
    client: httpx.AsyncClient, tenant: Tenant, runtime: Runtime, app: FastAPI
) -> None:
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant, body="first")
    staff = await signed_in(runtime, client, tenant, "ADMIN")
    cid = conversation["id"]
    sdk = {**tenant.sdk(), "Content-Type": "application/json"}
    admin = {**staff.auth(), "Content-Type": "application/json"}
    message = '{"body": "%s", "client_msg_id": "n1"}'
    bodies: list[tuple[str, str, dict[str, str], str]] = [
        ("POST", f"/v1/conversations/{cid}/messages", sdk, message),
        ("POST", "/v1/conversations", sdk, '{"subject": "%s"}'),
        ("POST", "/v1/identify", sdk, '{"platform": "ios", "name": "%s"}'),
        ("POST", "/v1/identify", sdk, '{"platform": "ios", "attributes": {"plan": "%s"}}'),
        ("POST", "/v1/identify", sdk, '{"platform": "ios", "attributes": {"k": ["%s"]}}'),
        ("POST", f"/admin/api/conversations/{cid}/messages", admin, message),
        ("POST", "/admin/api/team/invites", admin, '{"email": "x%s@example.com", "role": "AGENT"}'),
        ("POST", "/setup/apps", {**MASTER, "Content-Type": "application/json"}, '{"name": "%s"}'),
    ]
    for method, url, headers, template in bodies:
        for variant in (NUL_JSON, "\\u0000", "a\\\\\\u0000"):  # plain, alone, after a "\\"
            content = (template % variant).encode()
            json.loads(content)  # valid JSON: only the NUL is wrong
            response = await client.request(method, url, headers=headers, content=content)
            _refused(response, "NUL_CHARACTER")
    for url, headers in (
        ("/admin/api/conversations?assignee=%00", staff.auth()),
        ("/admin/api/conversations?cursor=a%00b", staff.auth()),
        (f"/v1/conversations/{cid}/messages?after_seq=1%00", tenant.sdk()),
        ("/v1/conversations/%00", tenant.sdk()),
    ):
        _refused(await client.get(url, headers=headers), "NUL_CHARACTER")

    assert await _history(client, tenant, cid) == ["first"]
    listed = await client.get("/v1/conversations", headers=tenant.sdk())
    assert [c["id"] for c in listed.json()["items"]] == [cid]


async def test_text_that_only_spells_an_escaped_nul_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    """`\\\\u0000` in JSON is a backslash followed by the letters u0000: plain text."""
    await identify(client, tenant)
    conversation = await start_conversation(client, tenant, body="first")
    content = json.dumps({"body": "C:\\u0000 and \\\\u0000", "client_msg_id": uuid.uuid4().hex})
    response = await client.post(
        f"/v1/conversations/{conversation['id']}/messages",
        headers={**tenant.sdk(), "Content-Type": "application/json"},
        content=content,
    )
    assert response.status_code == 201, response.text
    assert await _history(client, tenant, conversation["id"]) == [
        "first",
        "C:\\u0000 and \\\\u0000",
    ]


async def test_a_sign_in_refused_for_a_nul_counts_as_a_failed_attempt(
    servers: Servers, make_tenant: MakeTenant
) -> None:
    """Else a NUL would buy an attacker free tries past the failed sign-in limit."""
    settings = make_settings(
        servers,
        rate_limit_login_account="3/minute",
        redis_prefix=f"{servers.prefix}{uuid.uuid4().hex}:",
    )
    application = create_app(settings)
    async with LifespanManager(application):
        runtime: Runtime = application.state.runtime
        staff = await add_staff(runtime, await make_tenant())
        transport = httpx.ASGITransport(app=application, client=("198.51.100.20", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for email, password in (
                (f"{staff.email}\\u0000", "wrong password"),
                (f"\\u0000{staff.email}", "wrong password"),
                (staff.email, "guess\\u0000one"),
            ):
                content = f'{{"email": "{email}", "password": "{password}"}}'
                response = await client.post(
                    "/admin/login", content=content, headers={"Content-Type": "application/json"}
                )
                _refused(response, "NUL_CHARACTER")
            wrong = await client.post(
                "/admin/login", json={"email": staff.email, "password": "wrong password"}
            )
            assert wrong.status_code == 429, wrong.text
            assert int(wrong.headers["Retry-After"]) >= 1
