"""Which browser origins may call us (HTTP CORS and the Socket.IO handshake), and a warning in
the server log the first time each refused origin knocks.

A refused origin is otherwise invisible to the operator: the browser alone sees the CORS failure,
so a messenger embedded on a site missing from ALLOWED_ORIGINS just "could not reach support".
"""

from __future__ import annotations

import structlog
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

# Bounds the memory of origins already reported: anyone can send any Origin header.
MAX_REPORTED = 1000
# Set in an HTTP request's scope to the refused origin (the test console reports it to the app
# the request names: replyhq.onboarding.console.ConsoleRefusals).
REFUSED_ORIGIN = "replyhq.origin_refused"


class OriginGate:
    """ALLOWED_ORIGINS, plus the server's own origin (its own pages: the dashboard, /demo)."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = frozenset(allowed)
        self._reported: set[str] = set()

    def allows(self, origin: str, scheme: str, host: str, fetch_site: str | None = None) -> bool:
        if origin in self.allowed or _is_own(origin, scheme, host, fetch_site):
            return True
        self._report(origin)
        return False

    def _report(self, origin: str) -> None:
        if origin in self._reported or len(self._reported) >= MAX_REPORTED:
            return
        self._reported.add(origin)
        log.warning(
            "origin_refused",
            origin=origin,
            setting="ALLOWED_ORIGINS",
            hint=(
                f"A browser page at {origin} tried to reach this server and was refused. If it "
                "embeds the messenger, add the origin to ALLOWED_ORIGINS (comma-separated) and "
                "restart. Reported once per origin."
            ),
        )


def _is_own(origin: str, scheme: str, host: str, fetch_site: str | None) -> bool:
    if fetch_site == "same-origin":  # the browser says so (every current browser sends it)
        return True
    return bool(host) and origin == f"{scheme}://{host}"


def forwarded_host(x_forwarded_host: str | None, host: str | None) -> str:
    """The host a browser addressed: a proxy's X-Forwarded-Host first (its first value)."""
    return (x_forwarded_host or host or "").split(",")[0].strip()


class ReportingCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, which also reports each refused cross-origin caller once."""

    def __init__(
        self,
        app: ASGIApp,
        gate: OriginGate,
        allow_methods: list[str],
        allow_headers: list[str],
        expose_headers: list[str],
        max_age: int,
    ) -> None:
        super().__init__(
            app,
            allow_origins=sorted(gate.allowed),
            allow_credentials=True,
            allow_methods=allow_methods,
            allow_headers=allow_headers,
            expose_headers=expose_headers,
            max_age=max_age,
        )
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None:
                host = forwarded_host(headers.get("x-forwarded-host"), headers.get("host"))
                if not self.gate.allows(
                    origin, scope["scheme"], host, headers.get("sec-fetch-site")
                ):
                    scope[REFUSED_ORIGIN] = origin
        await super().__call__(scope, receive, send)
