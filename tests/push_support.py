"""Local stand-ins for FCM, APNs and a Web Push service, speaking their real wire protocols, and
the keys a customer and a browser would hold.

One ASGI app served by Hypercorn (HTTP/1.1 and HTTP/2 with prior knowledge on one port):
- FCM: `POST /token` checks the service account's RS256 JWT (issuer, audience, scope, signature
  with the public key of the account its issuer names, as Google does: each app has its own) and
  hands out an access token for that account; `POST /v1/projects/<id>/messages:send` requires
  one of that project's;
- APNs: `POST /3/device/<token>` refuses anything but HTTP/2 and checks the ES256 provider token
  (key id, team, signature with the .p8's public key) and the topic;
- Web Push: `POST /wp/<id>` checks the VAPID signature (RFC 8292) against the app's published
  public key and decrypts the payload (RFC 8291) with the browser's private key and auth secret.

Each endpoint answers what `script[token]` says next (a list of (status, body, headers)), else
success; every accepted request is kept in `received`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config
from py_vapid import Vapid02
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.conftest import free_port

TEAM_ID = "TEAM123456"
KEY_ID = "KEY1234567"
BUNDLE_ID = "com.acme.app"
PROJECT_ID = "acme-project"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    """A browser's push subscription: its keys stay here, the fake decrypts with them."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def subscription(self) -> dict[str, Any]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)},
        }


@dataclass
class Received:
    provider: str
    token: str
    payload: dict[str, Any]
    headers: dict[str, str]
    http_version: str
    at: float = field(default_factory=time.time)  # when it arrived (bench/bench_push.py)


@dataclass
class FakeProviders:
    port: int = 0
    fcm_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(65537, 2048)
    )
    apns_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    vapid_public_keys: set[str] = field(default_factory=set)  # apps' published keys
    browsers: dict[str, Browser] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why requests were refused
    script: dict[str, list[tuple[int, Any, dict[str, str]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    access_tokens: dict[str, str] = field(default_factory=dict)  # access token → project
    # Service accounts by e-mail: (public key, key id, project); the default one is fcm_key's.
    fcm_accounts: dict[str, tuple[rsa.RSAPublicKey, str, str]] = field(default_factory=dict)
    token_requests: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what the customer uploads ------------------------------------------------------------

    def service_account(self, project: str = PROJECT_ID) -> dict[str, str]:
        """A service account's key file: PROJECT_ID's with fcm_key, or another project's with a
        key of its own."""
        key = self.fcm_key if project == PROJECT_ID else rsa.generate_private_key(65537, 2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        email = f"push@{project}.iam.gserviceaccount.com"
        key_id = uuid.uuid4().hex[:12] if project != PROJECT_ID else "abc123"
        self.fcm_accounts[email] = (key.public_key(), key_id, project)
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "token_uri": "https://oauth2.googleapis.com/token",
        }

    def p8(self) -> str:
        return self.apns_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def new_browser(self) -> Browser:
        browser = Browser(
            f"{self.url}/wp/{uuid.uuid4().hex}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        self.browsers[browser.endpoint.rsplit("/", 1)[1]] = browser
        return browser

    # --- helpers for tests ----------------------------------------------------------------------

    def to(self, token: str) -> list[Received]:
        return [r for r in self.received if r.token == token]

    async def wait_for(self, token: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.to(token)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"{len(self.to(token))} of {count} pushes to {token[:20]}… arrived; "
                    f"refused: {self.refused}"
                )
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.2)
        return self.to(token)

    def _next(self, token: str) -> tuple[int, Any, dict[str, str]] | None:
        queue = self.script.get(token)
        return queue.pop(0) if queue else None

    def _keep(self, provider: str, token: str, payload: Any, request: Request) -> None:
        self.received.append(
            Received(provider, token, payload, dict(request.headers), request.scope["http_version"])
        )
        self.arrived.set()

    # --- FCM ----------------------------------------------------------------------------------

    async def oauth_token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        assertion = str(form.get("assertion"))
        try:
            issuer = jwt.decode(assertion, options={"verify_signature": False}).get("iss")
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as error:
            self.refused.append(f"oauth: {error}")
            return JSONResponse({"error": "invalid_grant", "error_description": str(error)}, 400)
        account = self.fcm_accounts.get(str(issuer))
        if account is None:
            self.refused.append(f"oauth: unknown service account {issuer}")
            return JSONResponse({"error": "invalid_client", "error_description": "no account"}, 401)
        public_key, key_id, project = account
        try:
            if header.get("kid") != key_id:
                raise jwt.InvalidKeyError(f"kid {header.get('kid')} is not {key_id}")
            claims = jwt.decode(
                assertion,
                public_key,
                algorithms=["RS256"],
                audience=f"{self.url}/token",
                issuer=issuer,
            )
        except jwt.PyJWTError as error:
            self.refused.append(f"oauth: {issuer}: {error}")
            return JSONResponse({"error": "invalid_grant", "error_description": str(error)}, 400)
        assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
        token = f"ya29.{uuid.uuid4().hex}"
        self.access_tokens[token] = project
        self.token_requests += 1
        return JSONResponse({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def fcm_send(self, request: Request) -> Response:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.access_tokens:
            self.refused.append("fcm: bad access token")
            return JSONResponse({"error": {"code": 401, "status": "UNAUTHENTICATED"}}, 401)
        if request.path_params["project"] != self.access_tokens[bearer]:
            # Another project's token (Google: 403 PERMISSION_DENIED).
            self.refused.append(f"fcm: a {self.access_tokens[bearer]} token for another project")
            return JSONResponse({"error": {"code": 403, "status": "PERMISSION_DENIED"}}, 403)
        message = (await request.json())["message"]
        token = message["token"]
        scripted = self._next(token)
        if scripted is not None:
            status, body, headers = scripted
            return JSONResponse(body, status, headers=headers)
        self._keep("fcm", token, message, request)
        project = request.path_params["project"]
        return JSONResponse({"name": f"projects/{project}/messages/{uuid.uuid4().hex}"})

    # --- APNs ---------------------------------------------------------------------------------

    async def apns_send(self, request: Request) -> Response:
        payload = await request.json()  # read whole first: Hypercorn's h2 needs the stream read
        if request.scope["http_version"] != "2":
            self.refused.append("apns: not HTTP/2")
            return Response(status_code=505)
        token = request.path_params["token"]
        bearer = request.headers.get("authorization", "").removeprefix("bearer ")
        try:
            header = jwt.get_unverified_header(bearer)
            claims = jwt.decode(bearer, self.apns_key.public_key(), algorithms=["ES256"])
        except jwt.PyJWTError as error:
            self.refused.append(f"apns: {error}")
            return JSONResponse({"reason": "InvalidProviderToken"}, 403)
        if header.get("kid") != KEY_ID or claims.get("iss") != TEAM_ID:
            self.refused.append("apns: wrong kid or team")
            return JSONResponse({"reason": "InvalidProviderToken"}, 403)
        if request.headers.get("apns-topic") != BUNDLE_ID:
            return JSONResponse({"reason": "TopicDisallowed"}, 400)
        scripted = self._next(token)
        if scripted is not None:
            status, body, headers = scripted
            return JSONResponse(body, status, headers=headers)
        self._keep("apns", token, payload, request)
        return Response(status_code=200, headers={"apns-id": str(uuid.uuid4()).upper()})

    # --- Web Push -----------------------------------------------------------------------------

    async def webpush(self, request: Request) -> Response:
        name = request.path_params["id"]
        browser = self.browsers.get(name)
        if browser is None:
            return Response(status_code=404)
        authorization = request.headers.get("authorization", "")
        try:
            scheme, params = authorization.split(" ", 1)
            parts = dict(p.split("=", 1) for p in params.split(","))
            assert scheme == "vapid", "not the vapid scheme"
            assert parts["k"] in self.vapid_public_keys, "unknown VAPID key"
            assert Vapid02.verify(authorization), "bad VAPID signature"
            claims = json.loads(_unb64(parts["t"].split(".")[1]))
            assert claims["aud"] == self.url, f"aud {claims['aud']}"
            assert claims["sub"].startswith(("mailto:", "https:")), "sub"
        except (AssertionError, ValueError, KeyError) as error:
            self.refused.append(f"webpush: {error}")
            return Response(status_code=403)
        if request.headers.get("content-encoding") != "aes128gcm":
            return Response(status_code=415)
        scripted = self._next(browser.endpoint)
        if scripted is not None:
            status, body, headers = scripted
            return Response(json.dumps(body) if body else b"", status, headers=headers)
        plain = http_ece.decrypt(
            await request.body(),
            private_key=browser.private_key,
            auth_secret=browser.auth,
            version="aes128gcm",
        )
        self._keep("webpush", browser.endpoint, json.loads(plain), request)
        return Response(status_code=201, headers={"Location": f"{self.url}/msg/{uuid.uuid4().hex}"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.oauth_token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self.fcm_send, methods=["POST"]),
                Route("/3/device/{token}", self.apns_send, methods=["POST"]),
                Route("/wp/{id}", self.webpush, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="module")
async def providers() -> AsyncIterator[FakeProviders]:
    fake = FakeProviders(port=free_port())
    config = Config()
    config.bind = [f"127.0.0.1:{fake.port}"]
    config.accesslog = None
    config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(fake.app(), config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", fake.port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    yield fake
    stop.set()
    await task


def push_settings(fake: FakeProviders) -> dict[str, object]:
    """Settings that point every provider at the fake."""
    return {
        "fcm_base_url": fake.url,
        "fcm_token_url": f"{fake.url}/token",
        "apns_production_url": fake.url,
        "apns_sandbox_url": fake.url,
        "webpush_allowed_hosts": f"http://127.0.0.1:{fake.port}",
        "push_hold_seconds": 1.0,
        "job_retry_base_seconds": 0.2,
    }
