"""uvicorn's httptools HTTP protocol with a limit on the size of a request's head.

httptools reads a request line and headers of any size into memory (8 MB were accepted), and
no ASGI middleware can help: the whole head is read before the app is called. This protocol
counts the head as it arrives and answers 431 in the API's error shape, then closes, once it
passes MAX_HEADER_BYTES. The limit travels in uvicorn's own `h11_max_incomplete_event_size`
(the same bound for uvicorn's other parser), so that `serve --workers N` hands it to each
worker process with the rest of uvicorn's configuration.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from replyhq.errors import HeadersTooLarge

log = structlog.get_logger(__name__)

DEFAULT_MAX_HEADER_BYTES = 16384


class _HeadTooLarge(Exception):
    pass


class HeaderLimitedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES
        self._in_head = True  # between a message's first byte and the end of its headers
        self._head_bytes = 0  # received while in the head: what httptools holds for it

    def data_received(self, data: bytes) -> None:
        counted = self._in_head
        if counted:
            self._head_bytes += len(data)
        super().data_received(data)
        # Still in the head after this chunk: every byte of it was head. (A chunk that ends a
        # head and carries a body is judged exactly by on_headers_complete instead.)
        if self._in_head and self._head_bytes > self.max_head_bytes and self.parser is not None:
            self._refuse()

    def on_headers_complete(self) -> None:
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head_bytes:
            self._head_bytes = size
            # httptools stops at a callback's exception and uvicorn answers it with
            # send_400_response (after logging "Invalid HTTP request received."): a 431 here.
            raise _HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def send_400_response(self, msg: str) -> None:
        if self._head_bytes > self.max_head_bytes:
            self._refuse()
        else:
            super().send_400_response(msg)

    def _refuse(self) -> None:
        if self.transport.is_closing():
            return
        client = self.client[0] if self.client else None
        log.warning("request_headers_too_large", client=client, limit=self.max_head_bytes)
        error = HeadersTooLarge(
            f"The request's headers are larger than {self.max_head_bytes} bytes."
        )
        body = json.dumps(error.body()).encode()
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def http_options(max_header_bytes: int) -> dict[str, Any]:
    """uvicorn options for our HTTP protocol, wherever ReplyHQ is served."""
    return {"http": HeaderLimitedProtocol, "h11_max_incomplete_event_size": max_header_bytes}
