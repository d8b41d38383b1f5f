"""The largest request body each route takes, enforced before anything reads it: an
ASGI middleware in front of the whole app.

A declared `Content-Length` over the limit is refused (413) without a byte of the body
being read; a body without one (chunked) is read up to the limit and refused as soon as
it passes it. What is read is at most the limit, handed on unchanged. The limits come
from `settings.web`: small for the anonymous routes (the widget's queue: a message is at
most 4,000 characters; /login, /logout), larger for a logged-in console's events; the
admin console's transcript uploads keep their own limit (`chatbot.web.guard` spools
them to disk).

Where the job ends: which routes exist, and who may upload, is `chatbot.web.guard`'s.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Methods whose requests carry no body in any page of this app.
BODILESS = frozenset(("GET", "HEAD", "OPTIONS"))


class BodyLimit:
    """ASGI middleware: `limit_for(method, path)` gives the most bytes a request body may
    have (None: no limit here). Over it: 413, and the rest of the body is never read."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str, str], int | None]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        limit = self.limit_for(method, scope.get("path") or "/")
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        if method in BODILESS and not declared and not chunked:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(send, limit)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(bytes(body), receive), send)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The declared Content-Length (None when absent or unreadable: then counted), and
    whether the body is chunked."""
    declared, chunked = None, False
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = None
        elif name == b"transfer-encoding":
            chunked = True
    return declared, chunked


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body read so far, in one message; then the client's own messages (a
    disconnect, for a streamed answer)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _too_large(send: Send, limit: int) -> None:
    text = f"Request body too large: at most {limit // 1024} KB here.".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})


def route_limits(
    *, anonymous_bytes: int, console_bytes: int, console_prefixes: tuple[str, ...], upload_path: str
) -> Callable[[str, str], int | None]:
    """The limit of each route: none for a console's upload route (it has its own), the
    console limit under a console's prefix, the anonymous limit everywhere else."""

    def limit_for(method: str, path: str) -> int | None:
        for prefix in console_prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                rest = path[len(prefix) :].rstrip("/")
                return None if rest == upload_path and method == "POST" else console_bytes
        return anonymous_bytes

    return limit_for
