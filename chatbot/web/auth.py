"""Who may open the consoles: the login and logout pages, the signed session cookie,
and the checks each console mount and event handler runs.

A session cookie (Starlette's `SessionMiddleware`, signed with `itsdangerous`) holds a
random session key, nothing else; the session itself lives in the store
(`chatbot.accounts.sessions`), so logging out, a password or role change and the
account's removal end it at once, whatever copy of the cookie is left. Every console
request re-reads it. Login and logout are POST only, from the server's own pages
(`chatbot.web.csrf`); console pages are never cached (Back after logout shows the login
page). Checking passwords and throttling failures is `chatbot.accounts`' job; building
the pages behind the doors is `ui/`'s.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chatbot.errors import AccessDenied, ChatbotError, LoginRefused, LoginThrottled

if TYPE_CHECKING:
    from starlette.middleware.base import RequestResponseEndpoint

    from chatbot.accounts.throttle import ThrottlePolicy
    from chatbot.accounts.users import UserInfo
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

SESSION_COOKIE = "chatbot_session"
AGENT_ROLES = ("agent", "admin")
ADMIN_ROLES = ("admin",)
# Where each console lives and who may open it.
CONSOLES: dict[str, tuple[str, ...]] = {"/agent": AGENT_ROLES, "/admin": ADMIN_ROLES}


# Pages whose answers no browser or proxy may keep (Back after logout must not show them).
NO_STORE_PREFIXES = ("/agent", "/admin", "/login", "/logout")


def session_account(services: Services, request: Request) -> UserInfo | None:
    """The active account behind the request's session cookie, or None."""
    from chatbot.accounts.sessions import session_user

    session = request.scope.get("session") or {}
    key = session.get("sid")
    if not isinstance(key, str):
        return None
    try:
        return session_user(services.database, key)
    except ChatbotError as exc:  # the database is down: nobody gets in
        log.warning("cannot check a console session: %s", exc)
        return None


def role_dependency(services: Services, roles: Iterable[str]) -> Callable[[Request], str | None]:
    """Gradio's `auth_dependency` for one console: the username when the session's
    account has one of `roles`, else None (Gradio then answers 401 to every page and
    API route of the mounted app)."""
    allowed = tuple(roles)

    def dependency(request: Request) -> str | None:
        user = session_account(services, request)
        return user.username if user is not None and user.role in allowed else None

    return dependency


class SignedRequest(Protocol):
    """What a console event handler's `gr.Request` tells of its user: the username
    Gradio's login check (`role_dependency`) let in, or None."""

    @property
    def username(self) -> str | None: ...


def current_user(
    services: Services, request: SignedRequest | None, roles: Iterable[str] = AGENT_ROLES
) -> UserInfo:
    """The logged-in account inside a console event handler (`request` is the handler's
    `gr.Request`), re-checked against the store; AccessDenied when it is gone, disabled
    or lacks the role."""
    from chatbot.accounts.users import get_user

    username = request.username if request is not None else None
    if not username:
        raise AccessDenied("you are not logged in")
    try:
        user = get_user(services.database, username)
    except ChatbotError:
        raise AccessDenied("your account no longer exists; log in again") from None
    if not user.active:
        raise AccessDenied("your account is disabled")
    if user.role not in tuple(roles):
        raise AccessDenied(f"your role ({user.role}) cannot do this")
    return user


def _end_cookie_session(services: Services, request: Request) -> None:
    from chatbot.accounts.sessions import end_session

    key = (request.scope.get("session") or {}).get("sid")
    try:
        end_session(services.database, key)
    except ChatbotError as exc:  # the cookie is cleared anyway
        log.warning("cannot end a session in the store: %s", exc)


# The one way to log out: a POST from this server's own page, in the same tab.
LOGOUT_FORM = (
    '<form method="post" action="/logout" class="logout" style="margin:0;text-align:right">'
    '<button type="submit" id="logout" style="padding:.35rem .9rem;border:1px solid #c8ccd1;'
    'border-radius:6px;background:#fff;color:#1f2328;cursor:pointer;font:inherit">Log out</button>'
    "</form>"
)


def _safe_next(target: str | None, role: str) -> str:
    """Only a console path of this server, never another site (no open redirect)."""
    home = "/admin" if role == "admin" else "/agent"
    if not target or not target.startswith("/") or target.startswith("//"):
        return home
    for prefix, roles in CONSOLES.items():
        if (target == prefix or target.startswith(prefix + "/")) and role in roles:
            return target
    return home


def throttle_policy(services: Services) -> ThrottlePolicy:
    """The login throttle's policy, from `settings.web` (the login route and the admin
    console's Logins tab read the same one)."""
    from chatbot.accounts.throttle import ThrottlePolicy

    web = services.settings.web
    return ThrottlePolicy(
        free_failures=web.login_free_failures,
        address_free_failures=web.login_address_free_failures,
        max_delay_seconds=web.login_max_delay_seconds,
        account_failures_per_hour=web.login_account_failures_per_hour,
    )


def install_auth(app: FastAPI, services: Services) -> None:
    """Add the session middleware, the login/logout routes and the console door check
    to `app`. Call before mounting the consoles."""
    from starlette.middleware.sessions import SessionMiddleware

    from chatbot.accounts.secret import session_secret

    web = services.settings.web
    routes = _AuthRoutes(services)
    app.middleware("http")(routes.console_door)
    # Added after the door check so that it runs first and the door sees the session.
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(services.settings.web.session_secret, services.settings.paths),
        session_cookie=SESSION_COOKIE,
        max_age=int(web.session_hours * 3600),
        same_site="lax",
        https_only=web.cookie_secure,
    )
    app.get("/login", response_class=HTMLResponse)(routes.login_form)
    app.post("/login")(routes.login)
    app.api_route("/logout", methods=["GET", "HEAD", "PUT", "DELETE", "PATCH"])(
        routes.no_logout_by_link
    )
    app.post("/logout")(routes.logout)


class _AuthRoutes:
    """The door check and the login/logout handlers `install_auth` adds, sharing the
    services, the per-address login limiter and the throttle policy."""

    def __init__(self, services: Services) -> None:
        from chatbot.accounts.ratelimit import LoginRateLimiter

        self.services = services
        self.web = services.settings.web
        self.limiter = LoginRateLimiter(self.web.login_attempts, self.web.login_window_seconds)
        self.policy = throttle_policy(services)

    async def console_door(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """A browser opening a console page without a fitting login goes to the login
        page (or is told it lacks the role) instead of Gradio's bare 401; no console
        or login answer is ever cached."""
        response = await self._door(request, call_next)
        if request.url.path.startswith(NO_STORE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        return response

    async def _door(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        path = request.url.path.rstrip("/") or "/"
        if request.method == "GET" and path in CONSOLES:
            user = session_account(self.services, request)
            if user is None:
                return RedirectResponse(f"/login?next={quote(path)}", status_code=303)
            if user.role not in CONSOLES[path]:
                return HTMLResponse(
                    _page(
                        "Not allowed",
                        f"<p>Your account ({html.escape(user.username)}, "
                        f"{html.escape(user.role)}) cannot open {html.escape(path)}.</p>"
                        '<p><a href="/agent">Agent console</a></p>' + LOGOUT_FORM,
                    ),
                    status_code=403,
                )
            if not request.url.path.endswith("/"):
                # The console is mounted at "/agent/": without the slash the widget's mount at "/" would answer.
                return RedirectResponse(path + "/", status_code=307)
        return await call_next(request)

    async def login_form(self, request: Request, next: str = "") -> HTMLResponse:
        return HTMLResponse(_login_page(next_path=next))

    async def login(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from chatbot.accounts.sessions import start_session
        from chatbot.accounts.users import authenticate

        services, limiter = self.services, self.limiter
        form = await request.form()
        username = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        next_path = str(form.get("next") or "")
        client = request.client.host if request.client else "unknown"

        def refused(error: str, status_code: int, retry_after: int | None = None) -> Response:
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            return HTMLResponse(
                _login_page(next_path=next_path, username=username, error=error),
                status_code=status_code,
                headers=headers,
            )

        if not limiter.hit(client):
            wait = max(1, round(limiter.retry_after(client)))
            return refused(f"Too many login attempts; try again in {wait} seconds.", 429, wait)
        if not username or not password:
            return refused("Enter your username and password.", 400)
        try:
            # argon2 takes tens of milliseconds on purpose: keep it off the event loop.
            user = await run_in_threadpool(
                authenticate,
                services.database,
                username,
                password,
                address=client,
                policy=self.policy,
            )
        except LoginThrottled as exc:
            return refused(
                f"Too many login attempts; try again in {exc.retry_after} seconds.",
                429,
                exc.retry_after,
            )
        except LoginRefused as exc:
            return refused(str(exc), 401)
        except ChatbotError as exc:
            log.warning("login failed: %s", exc)
            return refused(_CANNOT_CHECK, 503)
        try:
            key = await run_in_threadpool(
                start_session,
                services.database,
                user.id,
                hours=self.web.session_hours,
                address=client,
            )
        except ChatbotError as exc:
            log.warning("cannot start a session: %s", exc)
            return refused(_CANNOT_CHECK, 503)
        _end_cookie_session(services, request)  # a session already in this browser ends
        request.session.clear()
        request.session["sid"] = key
        log.info("login: %s (%s) from %s", user.username, user.role, client)
        return RedirectResponse(_safe_next(next_path, user.role), status_code=303)

    async def no_logout_by_link(self, request: Request) -> Response:
        """A link or an image elsewhere must not log anyone out (nor fall through to the
        widget's mount): 405, only the console's form posts here."""
        return Response("Log out with the button in the console.", 405, {"Allow": "POST"})

    async def logout(self, request: Request) -> Response:
        """End the session in the store (every copy of its cookie stops working at once)
        and clear the cookie. POST only, and only from this server's pages."""
        from starlette.concurrency import run_in_threadpool

        await run_in_threadpool(_end_cookie_session, self.services, request)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)


_CANNOT_CHECK = "The service cannot check logins right now; try again shortly."

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;margin:0;
display:flex;align-items:center;justify-content:center;min-height:100vh;color:#1f2328}
main{background:#fff;padding:2rem 2.2rem;border-radius:10px;box-shadow:0 2px 12px rgba(0,0,0,.08);width:20rem}
h1{font-size:1.3rem;margin:0 0 1.2rem} label{display:block;font-size:.9rem;margin:.8rem 0 .3rem}
input{width:100%;box-sizing:border-box;padding:.55rem;border:1px solid #c8ccd1;border-radius:6px;font-size:1rem}
button{margin-top:1.2rem;width:100%;padding:.6rem;border:0;border-radius:6px;background:#ea580c;color:#fff;
font-size:1rem;cursor:pointer} .error{background:#fdecea;color:#8a1c12;padding:.6rem;border-radius:6px;font-size:.9rem}
p.hint{font-size:.8rem;color:#57606a;margin-top:1rem}
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><main>{body}</main></body></html>"
    )


def _login_page(*, next_path: str = "", username: str = "", error: str = "") -> str:
    error_html = (
        f'<p class="error" id="login-error" role="alert">{html.escape(error)}</p>' if error else ""
    )
    return _page(
        "Log in · Support assistant",
        f"""
<h1>Support team login</h1>
{error_html}
<form method="post" action="/login">
  <input type="hidden" name="next" value="{html.escape(next_path)}">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" value="{html.escape(username)}" required autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button id="login" type="submit">Log in</button>
</form>
<p class="hint">Agents and admins only. Customers chat on the <a href="/">support page</a>.</p>""",
    )
