"""/dev/mailbox: the mails the local sink caught, newest first, with their links clickable
(an HTML page for people, /dev/mailbox.json for scripts). Mounted only in development, when
`serve` started the sink (mail/dev.py); it does not exist anywhere else."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from replyhq.mail.sink import LINK, Mail, read_mailbox

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:760px;margin:24px auto;padding:0 16px;"
    "color:#1f2328}article{border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;"
    "margin:12px 0}h2{font-size:17px;margin:0 0 4px}.meta{color:#6a737d;font-size:13px}"
    "pre{white-space:pre-wrap;word-break:break-word;font:14px/1.5 system-ui,sans-serif}"
)


def _linked(text: str) -> str:
    """Escaped text whose URLs are links (escaped first, so a mail cannot inject markup)."""
    out, last = [], 0
    for match in LINK.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        url = html.escape(match.group(0))
        out.append(f'<a href="{url}">{url}</a>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _article(mail: Mail) -> str:
    when = mail.received_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f'<article data-mail="{html.escape(mail.id)}"><h2>{html.escape(mail.subject)}</h2>'
        f'<div class="meta">to {html.escape(mail.to)} · from {html.escape(mail.sender)} · '
        f"{when}</div><pre>{_linked(mail.text)}</pre></article>"
    )


def router(directory: Path) -> APIRouter:
    mailbox = APIRouter(prefix="/dev", include_in_schema=False)

    @mailbox.get("/mailbox")
    async def page() -> HTMLResponse:
        mails = read_mailbox(directory)
        body = "".join(_article(m) for m in mails) or "<p>No mail yet.</p>"
        document = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Mailbox · ReplyHQ development</title><style>{STYLE}</style></head><body>"
            '<h1>Mailbox</h1><p class="meta">Every e-mail ReplyHQ sent while SMTP_HOST is '
            "unset, newest first. Development only.</p>"
            f"{body}</body></html>"
        )
        return HTMLResponse(document, headers=PAGE_HEADERS)

    @mailbox.get("/mailbox.json")
    async def as_json() -> list[dict[str, Any]]:
        return [m.as_json() for m in read_mailbox(directory)]

    return mailbox
