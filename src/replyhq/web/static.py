"""The browser faces: the dashboard (/dashboard, a single-page app), the web messenger
(/widget.js) and, in development with `serve --demo`, a demo page (/demo) wired to the demo app;
and the Python SDK's wheel (/sdk/python/<wheel>), which the Python quickstart installs with pip.

The files are built from web/ (TypeScript) into replyhq/static/ by `make dev`, `make test` and the
package build; serving them needs no Node.
"""

from __future__ import annotations

import html
import json
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from replyhq.errors import NotFound, ServiceUnavailable
from replyhq.settings import Settings

STATIC = Path(__file__).resolve().parent.parent / "static"
DASHBOARD = STATIC / "dashboard"
SDK_WHEELS = STATIC / "sdk"
DEMO_ENV = "REPLYHQ_DEMO"  # set by `replyhq serve --demo`

router = APIRouter(include_in_schema=False)

# The dashboard runs only its own bundled files and talks only to this origin (HTTP and
# websocket). Message HTML comes from the server's sanitiser; CSP is the second line of defence.
DASHBOARD_CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _not_built(what: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"The {what} is not built: run `make dev` (or `make web`) from a source checkout.",
        code="WEB_NOT_BUILT",
    )


def _dashboard_index() -> Response:
    index = DASHBOARD / "index.html"
    if not index.is_file():
        raise _not_built("dashboard")
    headers = {**PAGE_HEADERS, "Content-Security-Policy": DASHBOARD_CSP}
    return FileResponse(index, media_type="text/html", headers=headers)


@router.get("/dashboard")
async def dashboard_root() -> Response:
    return _dashboard_index()


@router.get("/dashboard/{path:path}")
async def dashboard(path: str) -> Response:
    """Bundled assets by name (content-hashed: cached for good); any other path is a screen of
    the single-page app, answered with its index."""
    if path.startswith("assets/"):
        asset = (DASHBOARD / path).resolve()
        if not asset.is_relative_to(DASHBOARD.resolve()) or not asset.is_file():
            raise NotFound("No such file.")
        return FileResponse(
            asset,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "X-Content-Type-Options": "nosniff",
            },
        )
    return _dashboard_index()


@router.get("/invite")
async def invite() -> Response:
    """Invitation links (`<DASHBOARD_URL>/invite#token=…`) with DASHBOARD_URL unset point here;
    the browser keeps the fragment (the token) across the redirect."""
    return RedirectResponse("/dashboard/invite", status_code=307)


@router.get("/widget.js")
async def widget() -> Response:
    script = STATIC / "widget.js"
    if not script.is_file():
        raise _not_built("web messenger")
    # Short cache: customers' pages pick up a new version within minutes.
    return FileResponse(
        script,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def python_sdk_wheel() -> str | None:
    """The file name of the Python SDK's wheel this server hands out, once built."""
    found = sorted(SDK_WHEELS.glob("replyhq_sdk-*-py3-none-any.whl"))
    return found[-1].name if found else None


@router.get("/sdk/python/{name}")
async def python_sdk(name: str) -> Response:
    wheel = python_sdk_wheel()
    if wheel is None:
        raise _not_built("Python SDK")
    if name != wheel:
        raise NotFound(f"This server hands out the Python SDK as /sdk/python/{wheel}.")
    return FileResponse(
        SDK_WHEELS / wheel,
        media_type="application/zip",
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


# --- /demo -----------------------------------------------------------------------------------


def demo_enabled(settings: Settings) -> bool:
    return settings.environment == "development" and os.environ.get(DEMO_ENV) == "1"


def _demo_app(settings: Settings) -> dict[str, Any] | None:
    path = Path(settings.data_dir) / "demo-app.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


@router.get("/demo")
async def demo(request: Request) -> Response:
    """A pretend customer site with the messenger on it: chat as an end user here, answer as
    an agent in /dashboard. Only in development, with `replyhq serve --demo`."""
    from replyhq.users.service import user_hash

    settings: Settings = request.app.state.runtime.settings
    demo_app = _demo_app(settings) if demo_enabled(settings) else None
    if demo_app is None:
        raise NotFound("Not found.")
    people = [
        {
            "user_id": user_id,
            "user_hash": user_hash(demo_app["identity_secret"], user_id),
            "name": name,
            "email": f"{user_id.removeprefix('demo-')}@example.com",
            "attributes": attributes,
        }
        for user_id, name, attributes in (
            ("demo-ann", "Ann Lee", {"plan": "pro", "company": "Lee & Co", "seats": 12}),
            ("demo-bob", "Bob Stone", {"plan": "free", "signed_up": "2026-01-04"}),
        )
    ]
    nonce = secrets.token_urlsafe(16)
    page = DEMO_PAGE.format(
        nonce=nonce,
        app_id=html.escape(demo_app["id"]),
        sdk_key=html.escape(demo_app["sdk_key"]),
        owner=html.escape(
            str(demo_app.get("owner_email") or "the owner login printed by make dev")
        ),
        # JSON in an inert data block; `<` escaped so no value can close the element.
        people=json.dumps(people).replace("<", "\\u003c"),
    )
    csp = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            f"style-src 'self' 'nonce-{nonce}'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return HTMLResponse(page, headers={**PAGE_HEADERS, "Content-Security-Policy": csp})


DEMO_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Store (ReplyHQ demo)</title>
<style nonce="{nonce}">
  /* A customer's page with aggressive global styles: none of it may reach the messenger. */
  * {{ font-family: Georgia, serif; }}
  body {{ margin: 0; background: #fbf7ef; color: #3b2f2f; }}
  button {{ background: #c2410c; color: #fff; border: 0; padding: 10px 16px; border-radius: 0;
            font-size: 15px; cursor: pointer; margin: 4px 4px 4px 0; }}
  textarea, div {{ text-transform: uppercase; letter-spacing: .5px; line-height: 3; }}
  main div, main p {{ text-transform: none; line-height: 1.5; }}
  header {{ background: #3b2f2f; color: #fbf7ef; padding: 18px 32px; font-size: 22px; }}
  main {{ padding: 24px 32px; max-width: 760px; }}
  code {{ background: #efe6d6; padding: 2px 4px; }}
  .who {{ margin: 16px 0; padding: 12px 16px; background: #fff; border: 1px solid #e7dcc6; }}
</style>
</head>
<body>
<header>Acme Store</header>
<main>
  <h1>Welcome to the ReplyHQ demo</h1>
  <p>This page plays a customer's website with the ReplyHQ messenger on it. Open the chat with
  the button at the bottom right and write as an end user; answer as an agent in
  <a href="/dashboard" target="_blank" rel="noopener">the dashboard</a> (sign in as {owner};
  the password is printed by <code>make dev</code>).</p>
  <div class="who">
    <p>Signed in as: <strong id="who">a visitor</strong> ·
      unread replies: <strong id="unread">0</strong></p>
    <button type="button" data-person="">Continue as a visitor</button>
    <button type="button" data-person="demo-ann">Sign in as Ann</button>
    <button type="button" data-person="demo-bob">Sign in as Bob</button>
    <button type="button" id="open">Open the chat</button>
  </div>
  <p>The messenger is one script tag:</p>
  <pre><code>&lt;script src="/widget.js" data-app-id="{app_id}"
        data-api-key="…"&gt;&lt;/script&gt;</code></pre>
</main>
<script type="application/json" id="demo-people">{people}</script>
<script src="/widget.js" data-app-id="{app_id}" data-api-key="{sdk_key}"></script>
<script nonce="{nonce}">
  const people = JSON.parse(document.getElementById("demo-people").textContent);
  const who = document.getElementById("who");
  const show = (person) => {{ who.textContent = person ? person.name : "a visitor"; }};
  const saved = localStorage.getItem("replyhq-demo:person");
  const current = people.find((p) => p.user_id === saved);
  if (current) {{ ReplyHQ.identify(current); }}
  show(current);
  for (const button of document.querySelectorAll("[data-person]")) {{
    button.addEventListener("click", async () => {{
      const person = people.find((p) => p.user_id === button.dataset.person);
      await ReplyHQ.logout();
      if (person) await ReplyHQ.identify(person);
      localStorage.setItem("replyhq-demo:person", person ? person.user_id : "");
      show(person);
    }});
  }}
  document.getElementById("open").addEventListener("click", () => ReplyHQ.open());
  ReplyHQ.onUnreadCountChange((count) => {{
    document.getElementById("unread").textContent = String(count);
  }});
</script>
</body>
</html>
"""
