"""The assembled web app over HTTP (FastAPI's TestClient against the real app: three
mounted Gradio pages, real SQLite store, tiny real models): who gets through which
door. An anonymous visitor reaches the widget and the login page and nothing of the
consoles, pages or API; an agent reaches the agent console but not the admin one;
a removed or re-passworded account is refused on its next request; logins are
rate-limited per client; sessions are signed."""

from __future__ import annotations

import pytest

from chatbot.settings import load_settings

ORIGIN = "http://testserver"
AGENT_PASSWORD = "agent-password-1"
ADMIN_PASSWORD = "admin-password-1"


def serve_web(home, embedder_dir, reply_model_dir, **overrides):
    """(services, FastAPI app) built over a fresh store in `home` with the tiny models,
    the shop seeded and two accounts (alice, an agent; root, an admin); `overrides` are
    settings sections. A generator for a module fixture to `yield from` (building three
    Gradio pages takes seconds)."""
    from chatbot.accounts.users import add_user
    from chatbot.app import create_app
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from chatbot.web.services import Services
    from tests.test_dialogue_support import build_retriever, make_manager, seed_shop

    settings = load_settings(
        home=home, embedder_path=embedder_dir, reply_model_path=reply_model_dir, **overrides
    )
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    seed_shop(database)
    manager = make_manager(settings, database, build_retriever(settings, database))
    add_user(database, "alice", AGENT_PASSWORD, "agent")
    add_user(database, "root", ADMIN_PASSWORD, "admin")
    services = Services(settings=settings, database=database, manager=manager)
    yield services, create_app(services)
    database.dispose()


@pytest.fixture(scope="module")
def web(tmp_path_factory, tiny_embedder_dir, tiny_reply_model_dir):
    yield from serve_web(
        tmp_path_factory.mktemp("web-home"),
        tiny_embedder_dir,
        tiny_reply_model_dir,
        # The store's login throttle stays out of the way of the per-client limit's test.
        web={"login_attempts": 4, "login_window_seconds": 60, "login_free_failures": 20},
    )


def _client(app, address: str = "10.0.0.1"):
    from fastapi.testclient import TestClient

    # A browser sends its page's origin with every form and script POST (chatbot.web.csrf).
    return TestClient(
        app, follow_redirects=False, client=(address, 50000), headers={"origin": ORIGIN}
    )


def _login(client, username: str, password: str, next_path: str = ""):
    return client.post(
        "/login", data={"username": username, "password": password, "next": next_path}
    )


CONSOLE_API = [
    ("get", "/agent/config"),
    ("get", "/agent/gradio_api/info"),
    ("post", "/agent/gradio_api/queue/join"),
    ("post", "/agent/gradio_api/upload"),
    ("get", "/admin/config"),
    ("get", "/admin/gradio_api/info"),
    ("post", "/admin/gradio_api/queue/join"),
    ("post", "/admin/gradio_api/upload"),
]


def test_anonymous_visitor_gets_the_widget_and_login_but_no_console(web):
    _, app = web
    client = _client(app, "10.0.0.2")
    page = client.get("/")
    assert page.status_code == 200 and "gradio" in page.text.lower()
    assert client.get("/login").status_code == 200
    for console in ("/agent", "/admin", "/agent/", "/admin/"):
        response = client.get(console)
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=/")
    for method, path in CONSOLE_API:
        response = getattr(client, method)(path)
        assert response.status_code == 401, (method, path, response.status_code)


def test_agent_reaches_the_agent_console_only(web):
    _, app = web
    client = _client(app, "10.0.0.3")
    wrong = _login(client, "alice", "not-her-password")
    assert wrong.status_code == 401 and "wrong username or password" in wrong.text.lower()
    response = _login(client, "alice", AGENT_PASSWORD, "/agent")
    assert response.status_code == 303 and response.headers["location"] == "/agent"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.get("/agent").headers["location"] == "/agent/"
    assert client.get("/agent/").status_code == 200
    assert client.get("/agent/config").status_code == 200
    assert client.get("/admin/").status_code == 403
    assert client.get("/admin/config").status_code == 401
    assert client.post("/admin/gradio_api/queue/join").status_code == 401


def test_admin_reaches_both_consoles(web):
    _, app = web
    client = _client(app, "10.0.0.4")
    assert _login(client, "root", ADMIN_PASSWORD).headers["location"] == "/admin"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/config").status_code == 200
    assert client.get("/agent/config").status_code == 200


def test_login_never_redirects_off_site(web):
    _, app = web
    client = _client(app, "10.0.0.5")
    for target in ("https://evil.example/", "//evil.example/", "/admin"):
        response = _login(client, "alice", AGENT_PASSWORD, target)
        assert response.headers["location"] == "/agent", target


def test_removed_or_repassworded_account_is_refused_at_once(web):
    from chatbot.accounts.users import add_user, remove_user, set_password

    services, app = web
    add_user(services.database, "bob", "bobs-password-1", "agent")
    client = _client(app, "10.0.0.6")
    _login(client, "bob", "bobs-password-1")
    assert client.get("/agent/config").status_code == 200
    set_password(services.database, "bob", "bobs-password-2")
    assert client.get("/agent/config").status_code == 401
    _login(client, "bob", "bobs-password-2")
    assert client.get("/agent/config").status_code == 200
    remove_user(services.database, "bob")
    assert client.get("/agent/config").status_code == 401
    assert client.get("/agent").status_code == 303


def test_a_tampered_session_cookie_is_refused(web):
    from chatbot.web.auth import SESSION_COOKIE

    _, app = web
    client = _client(app, "10.0.0.7")
    _login(client, "root", ADMIN_PASSWORD)
    value = client.cookies.get(SESSION_COOKIE)
    assert value
    assert client.get("/admin/config").status_code == 200
    client.cookies.clear()
    client.cookies.set(
        SESSION_COOKIE, value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    )
    assert client.get("/admin/config").status_code == 401
    # A cookie signed with another key (say, a default from someone's repository) is refused too.
    import base64
    import json

    from itsdangerous import TimestampSigner

    forged = TimestampSigner("not-the-server-key").sign(
        base64.b64encode(json.dumps({"sid": "guessed"}).encode())
    )
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, forged.decode())
    assert client.get("/admin/config").status_code == 401


def test_logins_are_rate_limited_per_client(web):
    _, app = web
    client = _client(app, "10.0.0.8")
    codes = [_login(client, "alice", "wrong-password-x").status_code for _ in range(5)]
    assert codes[:4] == [401, 401, 401, 401] and codes[4] == 429
    # The limit is per client: another address may still log in.
    other = _client(app, "10.0.0.9")
    assert _login(other, "alice", AGENT_PASSWORD).status_code == 303


def test_logout_ends_the_session(web):
    _, app = web
    client = _client(app, "10.0.0.10")
    _login(client, "alice", AGENT_PASSWORD)
    assert client.get("/agent/config").status_code == 200
    client.post("/logout")
    assert client.get("/agent/config").status_code == 401


def test_health_endpoint_says_nothing_but_ok(web):
    _, app = web
    response = _client(app).get("/healthz")
    assert response.status_code == 200 and response.json() == {"ok": True}


def test_readiness_says_ready_with_booleans_only(web):
    _, app = web
    response = _client(app).get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "checks": {"database": True, "index": True, "models": True},
        "degraded": [],
    }


def test_gradio_hands_every_handler_exactly_its_inputs_and_the_request(web):
    """Gradio reads a handler's annotations at run time to find the arguments it fills
    itself (`gr.Request`, event data); the pages' annotations are strings for the type
    checker, so a handler whose marks Gradio could not read would get its request as an
    input, or too few arguments."""
    import inspect

    import gradio as gr
    from gradio.utils import get_positional_input_parameters, get_type_hints

    from chatbot.ui.admin import build_admin_console
    from chatbot.ui.agent import build_agent_console
    from chatbot.ui.widget import build_widget

    services, _ = web
    requests = events = 0
    for build in (build_widget, build_agent_console, build_admin_console):
        page = build(services)
        for dependency in page.fns.values():
            fn = dependency.fn
            hints = get_type_hints(fn)
            for name in inspect.signature(fn).parameters:
                if name == "request":
                    assert hints.get(name) is gr.Request, (build.__name__, dependency.name)
                    requests += 1
                elif name in ("evt", "data"):
                    assert issubclass(hints[name], gr.EventData), (build.__name__, dependency.name)
                    events += 1
            assert len(get_positional_input_parameters(fn)) == len(dependency.inputs), (
                build.__name__,
                dependency.name,
            )
    # The widget's send; the agent console's load, tick, select, open, reload and seven
    # actions; the admin console's six actions and its analytics tab's refresh. The
    # events: the widget's like and clarification choice, and the queue's select.
    assert requests >= 20 and events == 3
