"""Which HTTP routes of the mounted Gradio pages answer at all: an ASGI middleware with
one allowlist per page, and the admin console's upload check.

Gradio adds many routes to every mounted page (`/gradio_api/upload`, `/gradio_api/file=…`,
`/gradio_api/info`, `/monitoring/summary`, `/gradio_api/runs`, `/gradio_api/proxy=…`, MCP,
…). The widget page needs only its HTML, its static assets and the queue (join, the
event stream, heartbeats, cancel): recorded by driving it in a real browser. Everything
else under the widget's mount answers 404, whoever asks. The consoles keep Gradio's own
login check (their `auth_dependency`), get the same allowlist, and answer nothing at
all (401) to a request without a fitting login; the admin console also
takes uploads (transcript files only, each at most `settings.web.max_upload_mb`) and
serves an admin's uploads back to admins only; the agent console takes no files at all.

Where the job ends: who is logged in is `chatbot.web.auth`'s business (this module only
asks it before reading an upload's body); what a page does with a request is Gradio's.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chatbot.web.services import Services

log = logging.getLogger(__name__)

# The files the admin console imports (chatbot.ingest reads these).
TRANSCRIPT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")

# What any mounted Gradio page needs, relative to its mount: (methods, path pattern).
PAGE_ROUTES: tuple[tuple[frozenset[str], re.Pattern[str]], ...] = tuple(
    (frozenset(methods), re.compile(pattern))
    for methods, pattern in (
        (("GET", "HEAD"), r"/"),
        (("GET", "HEAD"), r"/assets/[^?]+"),
        (("GET", "HEAD"), r"/static/[^?]+"),
        (("GET", "HEAD"), r"/theme\.css"),
        (("GET", "HEAD"), r"/favicon\.ico"),
        (("GET", "HEAD"), r"/robots\.txt"),
        # The page's own configuration: the same text the page embeds in its HTML.
        (("GET",), r"/config"),
        (("POST",), r"/gradio_api/queue/join"),
        (("GET",), r"/gradio_api/queue/data"),
        (("GET",), r"/gradio_api/heartbeat/[^/]+"),
        (("POST",), r"/gradio_api/cancel"),
        (("POST",), r"/gradio_api/reset"),
    )
)
UPLOAD_ROUTES = (
    (frozenset(("POST",)), re.compile(r"/gradio_api/upload")),
    (frozenset(("GET",)), re.compile(r"/gradio_api/upload_progress")),
    # The file component's link to a file the admin uploaded (admins only: the mount's login check).
    (frozenset(("GET", "HEAD")), re.compile(r"/gradio_api/file=.+")),
)
UPLOAD_PATH = "/gradio_api/upload"
# The web app's own routes (chatbot.app, chatbot.web.auth), outside every page.
OWN_PATHS = ("/login", "/logout", "/healthz", "/readyz")


@dataclass(frozen=True)
class Mount:
    """One mounted page: its path prefix ("" for the widget at "/") and what it answers."""

    prefix: str
    routes: tuple[tuple[frozenset[str], re.Pattern[str]], ...]
    uploads: bool = False
    # For a page that takes uploads: is this request's user allowed to upload? (the
    # body is only read for one who is).
    may_upload: Callable[[Scope], bool] | None = field(default=None, compare=False)
    # For a page behind a login: is this request's user let in? Every route answers 401
    # to those who are not; a route outside the allowlist 404 to those who are.
    may_enter: Callable[[Scope], bool] | None = field(default=None, compare=False)

    def allows(self, method: str, path: str) -> bool:
        return any(
            method in methods and pattern.fullmatch(path) for methods, pattern in self.routes
        )


def widget_mount() -> Mount:
    return Mount("", PAGE_ROUTES)


def console_mount(
    prefix: str,
    *,
    uploads: bool = False,
    may_upload: Callable[[Scope], bool] | None = None,
    may_enter: Callable[[Scope], bool] | None = None,
) -> Mount:
    return Mount(
        prefix, PAGE_ROUTES + (UPLOAD_ROUTES if uploads else ()), uploads, may_upload, may_enter
    )


class RouteGuard:
    """ASGI middleware: requests for the app's own routes (`own_paths`, e.g. /login) pass;
    a request for a page behind a login without one gets 401; a request for a mounted
    page passes only when that page's allowlist names it; the rest get 404. Uploads to a page that takes them are read into a spooled temporary
    file first (memory, then disk), refused when a file is too large (413) or not a
    transcript (415), and otherwise handed on unchanged."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        mounts: Iterable[Mount],
        own_paths: Iterable[str],
        max_upload_bytes: int,
        allowed_suffixes: tuple[str, ...] = TRANSCRIPT_SUFFIXES,
    ):
        self.app = app
        # Longest prefix first, so "/admin" wins over the widget's "".
        self.mounts = sorted(mounts, key=lambda m: len(m.prefix), reverse=True)
        self.own_paths = frozenset(own_paths)
        self.max_upload_bytes = max_upload_bytes
        self.allowed_suffixes = allowed_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind != "http":  # no page uses websockets
            await send({"type": "websocket.close", "code": 1008})
            return
        path = scope.get("path") or "/"
        method = scope.get("method", "GET")
        if path in self.own_paths:
            await self.app(scope, receive, send)
            return
        mount, sub = self._mount_of(path)
        if mount is not None and mount.may_enter is not None and not mount.may_enter(scope):
            # Behind a login, nothing answers without one: not even Gradio's queue
            # housekeeping (cancel, reset, heartbeat), which its own check lets through.
            await _plain(send, 401, "Not authenticated")
            return
        if mount is None or _suspicious(sub) or not mount.allows(method, sub):
            await _plain(send, 404, "Not Found")
            return
        if mount.uploads and method == "POST" and _strip(sub) == UPLOAD_PATH:
            await self._upload(mount, scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _mount_of(self, path: str) -> tuple[Mount | None, str]:
        for mount in self.mounts:
            if not mount.prefix:
                return mount, _strip(path)
            if path == mount.prefix or path.startswith(mount.prefix + "/"):
                return mount, _strip(path[len(mount.prefix) :] or "/")
        return None, path

    async def _upload(self, mount: Mount, scope: Scope, receive: Receive, send: Send) -> None:
        if mount.may_upload is not None and not mount.may_upload(scope):
            # Gradio's own login check answers (401) without the body being read here.
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        boundary = _boundary(headers.get("content-type", ""))
        if boundary is None:
            await self.app(scope, receive, send)  # Gradio refuses it (400)
            return
        check = UploadCheck(boundary, self.max_upload_bytes, self.allowed_suffixes)
        spool = tempfile.SpooledTemporaryFile(max_size=1 << 20)
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                if chunk:
                    spool.write(chunk)
                    check.feed(chunk)
                    if check.refusal is not None:
                        break
                if not message.get("more_body", False):
                    break
            check.finish()
            if check.refusal is not None:
                status, text = check.refusal
                log.info("upload refused on %s: %s", mount.prefix or "/", text)
                await _plain(send, status, text)
                return
            spool.seek(0)
            await self.app(scope, _replay(spool), send)
        finally:
            spool.close()


class UploadCheck:
    """Reads a multipart body as it arrives and decides whether its files may be taken:
    every file's name must end in one of `suffixes` and its content must be at most
    `max_bytes`. `refusal` is None while they may, else (HTTP status, message)."""

    def __init__(self, boundary: bytes, max_bytes: int, suffixes: tuple[str, ...]):
        from python_multipart import MultipartParser

        self.max_bytes = max_bytes
        self.suffixes = suffixes
        self.refusal: tuple[int, str] | None = None
        self.files = 0
        self._header_field = b""
        self._header_value = b""
        self._filename: str | None = None
        self._part_bytes = 0
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_part_data": self._part_data,
            },
        )

    def feed(self, chunk: bytes) -> None:
        if self.refusal is not None:
            return
        try:
            self._parser.write(chunk)
        except Exception as exc:
            self.refusal = (400, f"The upload is not a well-formed form: {exc}")

    def finish(self) -> None:
        if self.refusal is None:
            try:
                self._parser.finalize()
            except Exception as exc:
                self.refusal = (400, f"The upload is not a well-formed form: {exc}")

    def _part_begin(self) -> None:
        self._filename = None
        self._part_bytes = 0

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        name, value = (
            self._header_field.strip().lower(),
            self._header_value.decode("utf-8", "replace"),
        )
        self._header_field, self._header_value = b"", b""
        if name != b"content-disposition":
            return
        filename = _disposition_filename(value)
        if filename is None:
            return
        self._filename = filename
        self.files += 1
        shown = PurePosixPath(filename.replace("\\", "/")).name or filename
        if not shown.lower().endswith(self.suffixes):
            self.refusal = (
                415,
                f"{shown} is not a transcript file: only {', '.join(self.suffixes)} files can be "
                "uploaded. Leave other files out and try again.",
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._filename is None:
            return
        self._part_bytes += end - start
        if self._part_bytes > self.max_bytes and self.refusal is None:
            limit_mb = self.max_bytes / (1 << 20)
            self.refusal = (
                413,
                f"{PurePosixPath(self._filename).name} is larger than the upload limit "
                f"({limit_mb:g} MB).",
            )


def _disposition_filename(value: str) -> str | None:
    """The filename of a `Content-Disposition: form-data; name=…; filename=…` header."""
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(value)
    raw = options.get(b"filename*") or options.get(b"filename")
    if raw is None:
        return None
    text = raw.decode("utf-8", "replace")
    if text.lower().startswith("utf-8''"):
        from urllib.parse import unquote

        text = unquote(text[7:])
    return text


def _boundary(content_type: str) -> bytes | None:
    from python_multipart.multipart import parse_options_header

    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return None
    return options.get(b"boundary") or None


def _replay(spool: IO[bytes]) -> Receive:
    """A `receive` that hands the spooled body on in chunks, then waits for a disconnect."""
    done = False

    async def receive() -> Message:
        nonlocal done
        if done:
            return {"type": "http.disconnect"}
        chunk = spool.read(1 << 16)
        more = bool(chunk) and spool.tell() < _size(spool)
        if not more:
            done = True
        return {"type": "http.request", "body": chunk, "more_body": more}

    return receive


def _size(spool: IO[bytes]) -> int:
    here = spool.tell()
    spool.seek(0, 2)
    end = spool.tell()
    spool.seek(here)
    return end


def _strip(path: str) -> str:
    """One trailing slash off ("/config/" is "/config"), never the root's."""
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


def _suspicious(path: str) -> bool:
    """Dot segments or backslashes have no place in a page's own routes."""
    return "\\" in path or any(part in (".", "..") for part in path.split("/"))


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install_guard(app: FastAPI, services: Services) -> None:
    """Put the route guard in front of `app`'s pages: the widget at "/", the agent
    console at /agent (no uploads) and the admin console at /admin (transcript uploads by
    admins). Call before `chatbot.web.auth.install_auth`, so that the guard runs inside
    its session middleware."""
    from starlette.requests import Request

    from chatbot.web.auth import ADMIN_ROLES, AGENT_ROLES, session_account

    def role_check(roles: tuple[str, ...]) -> Callable[[Scope], bool]:
        def check(scope: Scope) -> bool:
            user = session_account(services, Request(scope))
            return user is not None and user.role in roles

        return check

    admins = role_check(ADMIN_ROLES)
    app.add_middleware(
        RouteGuard,
        mounts=[
            widget_mount(),
            console_mount("/agent", may_enter=role_check(AGENT_ROLES)),
            console_mount("/admin", uploads=True, may_upload=admins, may_enter=admins),
        ],
        own_paths=OWN_PATHS,
        max_upload_bytes=services.settings.web.max_upload_mb * (1 << 20),
    )
