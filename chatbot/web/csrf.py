"""Cross-site request forgery: a state-changing request to the login, the logout or a
console is taken only from a page of this server (the OWASP "verify the origin with
standard headers" defence). An ASGI middleware compares the browser's `Origin` header
(or, without one, the `Referer`) with the request's own `Host` and the configured
`web.allowed_origins`; a request with neither header is refused too.

Console requests are checked only when they carry the session cookie: without one there
is nothing to forge, and the login check answers them (401). The anonymous widget has
no session to ride and is not checked. Where the job ends: who is logged in is
`chatbot.web.auth`'s; the cookie's own SameSite=Lax is a second line.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from chatbot.web_settings import origin_netloc

SAFE_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))


class OriginCheck:
    """ASGI middleware: unsafe requests to `always` paths, or under `prefixes` with the
    `cookie` set, must come from the server's own origin (or one of `allowed`): 403 else."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        always: Iterable[str],
        prefixes: Iterable[str],
        cookie: str,
        allowed: Iterable[str] = (),
    ):
        self.app = app
        self.always = frozenset(always)
        self.prefixes = tuple(prefixes)
        self.cookie = cookie.encode("latin-1")
        self.allowed = frozenset(
            origin_netloc(origin) for origin in allowed if origin_netloc(origin)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._guarded(scope) and not self._same_origin(scope):
            await _forbidden(send)
            return
        await self.app(scope, receive, send)

    def _guarded(self, scope: Scope) -> bool:
        if scope.get("method", "GET") in SAFE_METHODS:
            return False
        path = scope.get("path") or "/"
        if path in self.always:
            return True
        under = any(path == p or path.startswith(p + "/") for p in self.prefixes)
        return under and self._has_cookie(scope)

    def _has_cookie(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"cookie" and any(
                part.strip().startswith(self.cookie + b"=") for part in value.split(b";")
            ):
                return True
        return False

    def _same_origin(self, scope: Scope) -> bool:
        headers = {name: value.decode("latin-1") for name, value in scope.get("headers", [])}
        host = headers.get(b"host", "").strip().lower()
        origin = headers.get(b"origin", "").strip()
        if not origin or origin == "null":
            origin = headers.get(b"referer", "").strip()
        source = origin_netloc(origin)
        return bool(source) and (source == host or source in self.allowed)


async def _forbidden(send: Send) -> None:
    text = b"Refused: this form was not sent from this site's own page. Reload it and try again."
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text})
