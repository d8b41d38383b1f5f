"""The one web app: a FastAPI application that mounts the three Gradio pages — the
customer widget at `/` (anonymous), the agent console at `/agent` (agents and admins)
and the admin console at `/admin` (admins) — behind the login of `chatbot.web.auth`.

An entry point, above the pages it mounts: building the pages is `ui/`'s job, the
guards (login, sessions, Origin check, body limits, route allowlist) `chatbot.web`'s,
and opening the store and models `chatbot serve`'s (via `chatbot.dialogue.sources`);
this module only assembles them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chatbot.web.services import Services

log = logging.getLogger(__name__)

TITLE = "Support assistant"


def create_app(services: Services) -> FastAPI:
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    from chatbot.ui.admin import build_admin_console
    from chatbot.ui.agent import build_agent_console
    from chatbot.ui.widget import build_widget
    from chatbot.web.auth import (
        ADMIN_ROLES,
        AGENT_ROLES,
        CONSOLES,
        SESSION_COOKIE,
        install_auth,
        role_dependency,
    )
    from chatbot.web.csrf import OriginCheck
    from chatbot.web.guard import UPLOAD_PATH, install_guard
    from chatbot.web.limits import BodyLimit, route_limits

    web = services.settings.web
    app = FastAPI(title=TITLE, docs_url=None, redoc_url=None, openapi_url=None)
    # Added first so that it runs inside the session middleware (it asks who uploads).
    install_guard(app, services)
    install_auth(app, services)
    # Outside the session: a forged form is refused before anything looks at it.
    app.add_middleware(
        OriginCheck,
        always=("/login", "/logout"),
        prefixes=tuple(CONSOLES),
        cookie=SESSION_COOKIE,
        allowed=web.allowed_origins,
    )
    # Outermost: no body over its limit is ever read, whoever sends it, wherever to.
    app.add_middleware(
        BodyLimit,
        limit_for=route_limits(
            anonymous_bytes=web.max_body_kb * 1024,
            console_bytes=web.console_max_body_kb * 1024,
            console_prefixes=tuple(CONSOLES),
            upload_path=UPLOAD_PATH,
        ),
    )

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness for a load balancer: the process answers and the store is reachable."""
        from sqlalchemy import text

        try:
            with services.database.session() as session:
                session.execute(text("SELECT 1"))
        except Exception:
            return JSONResponse({"ok": False}, status_code=503)
        return JSONResponse({"ok": True})

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Readiness: the database takes writes, the index and the models are loaded;
        says which part is down or degraded (the admin console says why)."""
        from chatbot.web.readiness import public_view, readiness

        view = public_view(readiness(services))
        return JSONResponse(view, status_code=200 if view["ready"] else 503)

    upload_limit = f"{web.max_upload_mb}mb"
    # No run history anywhere: Gradio would keep customers' messages in the browser; no
    # monitoring pages (per-endpoint timings). Which routes answer at all is the guard's
    # allowlist (chatbot.web.guard): these settings are a second line.
    common = dict(run_history=False, footer_links=[], enable_monitoring=False, mcp_server=False)
    gr.mount_gradio_app(
        app,
        build_agent_console(services),
        path="/agent",
        **common,
        auth_dependency=role_dependency(services, AGENT_ROLES),
        max_file_size="1kb",
    )
    gr.mount_gradio_app(
        app,
        build_admin_console(services),
        path="/admin",
        **common,
        auth_dependency=role_dependency(services, ADMIN_ROLES),
        max_file_size=upload_limit,
    )
    # The widget takes no files (the guard refuses its upload route; a tiny limit as well).
    gr.mount_gradio_app(app, build_widget(services), path="/", **common, max_file_size="1kb")
    return app
