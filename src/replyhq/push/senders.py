"""The three providers over their real protocols, each at a base URL from the settings:

- FCM HTTP v1: a service account's RS256 JWT is exchanged for an OAuth 2.0 access token
  (RFC 7523), cached until shortly before it expires, then `POST /v1/projects/<id>/messages:send`;
- APNs: HTTP/2 `POST /3/device/<token>` with an ES256 provider token, made again every 50
  minutes (Apple refuses one older than an hour, and one renewed more than every 20 minutes);
- Web Push: the payload encrypted for the subscription (RFC 8291, aes128gcm, by pywebpush and
  http_ece) and signed for the push service with the app's VAPID key (RFC 8292, py_vapid).

Each answer becomes an Outcome: sent, invalid (the token is dead: forget it), retry (429 or 5xx,
with the provider's Retry-After when it gave one) or failed (anything else; not retried). The
provider's answer is kept verbatim (cut at 2,000 characters) for the delivery log.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
import jwt
from py_vapid import Vapid02
from pywebpush import WebPusher

from replyhq.push.credentials import Credentials
from replyhq.settings import Settings

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
APNS_TOKEN_SECONDS = 50 * 60
RESPONSE_CHARS = 2000

Kind = Literal["sent", "invalid", "retry", "failed"]


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    conversation_id: str | None = None  # deep link; also the collapse key / thread
    data: dict[str, str] = field(default_factory=dict)

    @property
    def collapse_key(self) -> str:
        return (self.conversation_id or "replyhq").replace("-", "")  # ≤ 32 chars for Topic


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    status: int | None
    response: str
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


@dataclass(frozen=True)
class Answer:
    """A provider's HTTP answer, whichever client carried it."""

    status_code: int
    headers: Any  # case-insensitive mapping
    text: str

    def json(self) -> Any:
        return json.loads(self.text)

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        return cls(response.status_code, response.headers, response.text)


class Unreachable(Exception):
    pass


class Http:
    """HTTP/1.1 with pooled keep-alive connections (aiohttp: a quarter of httpx's CPU per
    request, which bounded how many pushes a worker sends per second), for FCM and Web Push.
    Made on first use, inside the worker's event loop."""

    def __init__(self, connections: int) -> None:
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def post(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        content: bytes | None = None,
        seconds: float,
    ) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                json_serialize=json.dumps,
            )
        try:
            async with self._session.post(
                url,
                headers=headers,
                json=json_body,
                data=form if form is not None else content,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                text = await response.text(errors="replace")
                return Answer(response.status, response.headers, text)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unreachable(f"{type(error).__name__}: {error}") from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _answer(response: Answer) -> str:
    head = f"HTTP {response.status_code}"
    if response.headers.get("apns-id"):
        head += f" apns-id: {response.headers['apns-id']}"
    return f"{head} {response.text}".strip()[:RESPONSE_CHARS]


def _transient(response: Answer) -> Outcome | None:
    if response.status_code == 429 or response.status_code >= 500:
        return Outcome(
            "retry",
            response.status_code,
            _answer(response),
            _retry_after(response.headers.get("retry-after")),
        )
    return None


def _unreachable(error: Exception) -> Outcome:
    return Outcome("retry", None, f"{type(error).__name__}: {error}"[:RESPONSE_CHARS])


class FcmSender:
    def __init__(self, settings: Settings, http: Http) -> None:
        self.settings = settings
        self.http = http
        self._tokens: dict[str, tuple[str, float]] = {}  # credentials version → (token, expiry)
        self._fetching: dict[str, asyncio.Lock] = {}

    async def access_token(self, credentials: Credentials) -> str:
        cached = self._tokens.get(credentials.version)
        if cached is not None and cached[1] > time.time() + 60:
            return cached[0]
        # One exchange per service account at a time: the many sends of a round that find no
        # token all wait for the first one's.
        lock = self._fetching.setdefault(credentials.version, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(credentials.version)
            if cached is not None and cached[1] > time.time() + 60:
                return cached[0]
            return await self._exchange(credentials)

    async def _exchange(self, credentials: Credentials) -> str:
        account = json.loads(credentials.secret)
        now = int(time.time())
        headers = {"kid": account["private_key_id"]} if account.get("private_key_id") else None
        assertion = jwt.encode(
            {
                "iss": account["client_email"],
                "scope": FCM_SCOPE,
                "aud": self.settings.fcm_token_url,
                "iat": now,
                "exp": now + 3600,
            },
            account["private_key"],
            algorithm="RS256",
            headers=headers,
        )
        response = await self.http.post(
            self.settings.fcm_token_url,
            form={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
            seconds=self.settings.push_timeout_seconds,
        )
        if response.status_code != 200:
            raise TokenRefused(response)
        answer = response.json()
        token = str(answer["access_token"])
        self._tokens[credentials.version] = (token, now + float(answer.get("expires_in", 3600)))
        return token

    async def send(self, credentials: Credentials, token: str, note: Notification) -> Outcome:
        try:
            access = await self.access_token(credentials)
        except TokenRefused as refused:
            outcome = _transient(refused.response)
            return outcome or Outcome(
                "failed", refused.response.status_code, _answer(refused.response)
            )
        except Unreachable as error:
            return _unreachable(error)
        project = quote(credentials.details["project_id"], safe="")
        url = f"{self.settings.fcm_base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        data = {
            **note.data,
            **({"conversation_id": note.conversation_id} if note.conversation_id else {}),
        }
        message = {
            "message": {
                "token": token,
                "notification": {"title": note.title, "body": note.body},
                "data": data,
                "android": {
                    "priority": "normal",
                    "collapse_key": note.collapse_key,
                    "notification": {"tag": note.collapse_key},
                },
                "apns": {
                    "headers": {"apns-priority": "5", "apns-collapse-id": note.collapse_key},
                    "payload": {"aps": {"thread-id": note.collapse_key}},
                },
            }
        }
        try:
            response = await self.http.post(
                url,
                json_body=message,
                headers={"Authorization": f"Bearer {access}"},
                seconds=self.settings.push_timeout_seconds,
            )
        except Unreachable as error:
            return _unreachable(error)
        if response.status_code == 200:
            return Outcome("sent", 200, _answer(response))
        if response.status_code == 401:
            self._tokens.pop(credentials.version, None)  # expired early or revoked: next time anew
        codes = _fcm_error_codes(response)
        if response.status_code == 404 or "UNREGISTERED" in codes or "SENDER_ID_MISMATCH" in codes:
            return Outcome("invalid", response.status_code, _answer(response))
        if response.status_code == 400 and "registration token" in response.text:
            return Outcome("invalid", 400, _answer(response))  # a malformed token: never valid
        return _transient(response) or Outcome("failed", response.status_code, _answer(response))


class TokenRefused(Exception):
    def __init__(self, response: Answer) -> None:
        super().__init__(f"token endpoint answered {response.status_code}")
        self.response = response


def _fcm_error_codes(response: Answer) -> set[str]:
    try:
        error = response.json().get("error", {})
    except ValueError:
        return set()
    codes = {str(error.get("status", ""))}
    for detail in error.get("details", []) or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            codes.add(str(detail["errorCode"]))
    return codes


class ApnsSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # credentials version → (JWT, issued)

    def _client(self, base: str) -> httpx.AsyncClient:
        client = self._clients.get(base)
        if client is None:
            # https: HTTP/2 by ALPN, as APNs requires. http:// (a local fake): HTTP/2 with prior
            # knowledge (h2c), never HTTP/1.1.
            client = httpx.AsyncClient(http2=True, http1=base.startswith("https:"))
            self._clients[base] = client
        return client

    def provider_token(self, credentials: Credentials) -> str:
        cached = self._tokens.get(credentials.version)
        if cached is not None and time.time() - cached[1] < APNS_TOKEN_SECONDS:
            return cached[0]
        issued = int(time.time())
        token = jwt.encode(
            {"iss": credentials.details["team_id"], "iat": issued},
            credentials.secret.decode(),
            algorithm="ES256",
            headers={"kid": credentials.details["key_id"]},
        )
        self._tokens[credentials.version] = (token, issued)
        return token

    async def send(self, credentials: Credentials, token: str, note: Notification) -> Outcome:
        details = credentials.details
        sandbox = details.get("environment") == "sandbox"
        base = self.settings.apns_sandbox_url if sandbox else self.settings.apns_production_url
        payload: dict[str, Any] = {
            "aps": {
                "alert": {"title": note.title, "body": note.body},
                "sound": "default",
                "thread-id": note.collapse_key,
            },
            **note.data,
        }
        if note.conversation_id:
            payload["conversation_id"] = note.conversation_id
        for _ in range(2):  # once more with a new provider token if Apple says it expired
            headers = {
                "authorization": f"bearer {self.provider_token(credentials)}",
                "apns-topic": details["bundle_id"],
                "apns-push-type": "alert",
                "apns-priority": "5",  # normal: delivered when the device's power allows
                "apns-collapse-id": note.collapse_key,
            }
            try:
                response = Answer.of(
                    await self._client(base).post(
                        f"{base.rstrip('/')}/3/device/{token}",
                        json=payload,
                        headers=headers,
                        timeout=self.settings.push_timeout_seconds,
                    )
                )
            except httpx.HTTPError as error:
                return _unreachable(error)
            reason = _apns_reason(response)
            if response.status_code == 403 and reason == "ExpiredProviderToken":
                self._tokens.pop(credentials.version, None)
                continue
            break
        if response.status_code == 200:
            return Outcome("sent", 200, _answer(response))
        if response.status_code == 410 or reason in (
            "BadDeviceToken",
            "Unregistered",
            "DeviceTokenNotForTopic",
        ):
            return Outcome("invalid", response.status_code, _answer(response))
        if response.status_code == 403:
            self._tokens.pop(credentials.version, None)
        return _transient(response) or Outcome("failed", response.status_code, _answer(response))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


def _apns_reason(response: Answer) -> str:
    try:
        return str(response.json().get("reason", ""))
    except ValueError:
        return ""


VAPID_SECONDS = 12 * 3600  # a VAPID JWT's lifetime (RFC 8292 allows up to 24 hours)


class WebPushSender:
    def __init__(self, settings: Settings, http: Http) -> None:
        self.settings = settings
        self.http = http
        # (credentials version, push service origin) → (Authorization header, expiry)
        self._signed: dict[tuple[str, str], tuple[str, float]] = {}

    def authorization(self, credentials: Credentials, audience: str) -> str:
        """The VAPID Authorization header for one push service, signed again when its JWT has
        less than an hour left."""
        key = (credentials.version, audience)
        cached = self._signed.get(key)
        if cached is not None and cached[1] > time.time() + 3600:
            return cached[0]
        expires = int(time.time()) + VAPID_SECONDS
        vapid = Vapid02.from_pem(credentials.secret)
        signed = vapid.sign(
            {"aud": audience, "sub": credentials.details["subject"], "exp": expires}
        )
        self._signed[key] = (str(signed["Authorization"]), float(expires))
        return str(signed["Authorization"])

    async def send(
        self, credentials: Credentials, endpoint: str, keys: dict[str, str], note: Notification
    ) -> Outcome:
        message = {"title": note.title, "body": note.body, "tag": note.collapse_key, **note.data}
        if note.conversation_id:
            message["conversation_id"] = note.conversation_id
        encrypted = WebPusher({"endpoint": endpoint, "keys": keys}).encode(
            json.dumps(message).encode(), content_encoding="aes128gcm"
        )
        parts = urlsplit(endpoint)
        headers = {
            "Authorization": self.authorization(credentials, f"{parts.scheme}://{parts.netloc}"),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": "86400",
            "Urgency": "normal",
            "Topic": note.collapse_key,  # replaces an undelivered one of the same conversation
        }
        try:
            response = await self.http.post(
                endpoint,
                content=encrypted["body"],
                headers=headers,
                seconds=self.settings.push_timeout_seconds,
            )
        except Unreachable as error:
            return _unreachable(error)
        if response.status_code in (200, 201, 202):
            return Outcome("sent", response.status_code, _answer(response))
        if response.status_code in (404, 410):
            return Outcome("invalid", response.status_code, _answer(response))
        return _transient(response) or Outcome("failed", response.status_code, _answer(response))


class Senders:
    """The process' senders and their connections (kept on the Runtime, closed with it)."""

    def __init__(self, settings: Settings) -> None:
        # Pooled keep-alive connections, as many as a drain round sends at once
        # (delivery.SEND_CONCURRENCY): no connection is opened per push.
        self.http = Http(connections=32)
        self.fcm = FcmSender(settings, self.http)
        self.apns = ApnsSender(settings)
        self.webpush = WebPushSender(settings, self.http)

    async def send(
        self,
        credentials: Credentials | None,
        provider: str,
        token: str,
        keys: dict[str, str] | None,
        note: Notification,
    ) -> Outcome:
        if credentials is None:
            return Outcome("failed", None, f"no {provider} credentials are set for this app")
        if provider == "fcm":
            return await self.fcm.send(credentials, token, note)
        if provider == "apns":
            return await self.apns.send(credentials, token, note)
        return await self.webpush.send(credentials, token, keys or {}, note)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.apns.aclose()


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
