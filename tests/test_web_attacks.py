"""The web app under the attacks of issue 24 ("Safe under attack"), over HTTP against
the real app (FastAPI's TestClient: three mounted Gradio pages, real SQLite store, tiny
real models), one app for the module. Each test fails if its protection is removed:

1. bodies over the limit are refused (413) before they are read: declared or chunked;
   hand-offs are limited per client address, by the button and by messages alike;
2. no lockout: a stranger's wrong passwords never lock an agent out, never end their
   session, and read the same for unknown and known names; an admin sees and lifts them;
3. sessions live in the store: a saved cookie opens nothing after logout;
4. login, logout and console actions are taken only from the server's own pages;
   logout is POST only; console and login pages are never cached;
5. the consoles' Gradio housekeeping routes answer nobody without a login;
6. the widget uses server-issued conversation tokens only.
(The browser's side of logout — same tab, both consoles, Back — is
tests/e2e/test_logout_e2e.py.)"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chatbot.errors import AccessDenied, ConfigError
from chatbot.settings import load_settings
from tests.test_web_app import ADMIN_PASSWORD, AGENT_PASSWORD, ORIGIN, serve_web
from tests.test_web_security import _as, _call

HANDOFF_LIMIT = 2
ASK_FOR_PERSON = "I want to talk to a real person please"


@pytest.fixture(scope="module")
def web(tmp_path_factory, tiny_embedder_dir, tiny_reply_model_dir):
    yield from serve_web(
        tmp_path_factory.mktemp("web-attacks-home"),
        tiny_embedder_dir,
        tiny_reply_model_dir,
        web={
            "handoff_limit": HANDOFF_LIMIT,
            "handoff_window_seconds": 600,
            "message_limit": 100,
            "login_attempts": 1000,
        },
        dialogue={"max_new_tokens": 8},
    )


@pytest.fixture(scope="module")
def live(web):
    """The app with its lifespan running (Gradio's queue started): the widget's queue
    events go through this client (its event loop is the queue's); other requests may
    use clients of their own (`client`)."""
    from fastapi.testclient import TestClient

    _, app = web
    with TestClient(
        app, follow_redirects=False, client=("10.30.0.1", 50000), headers={"origin": ORIGIN}
    ) as queue_client:
        app.state.queue_client = queue_client
        yield app


def widget(app, address: str):
    """The client for the widget's queue events, sending from `address`."""
    return _as(app.state.queue_client, address)


def client(app, address: str, *, origin: str | None = ORIGIN):
    """A client of its own (own cookies) for requests outside the widget's queue."""
    from fastapi.testclient import TestClient

    headers = {"origin": origin} if origin else {}
    return TestClient(app, follow_redirects=False, client=(address, 50000), headers=headers)


def login(c, username: str, password: str):
    return c.post("/login", data={"username": username, "password": password})


# -- 1. limits before parsing ------------------------------------------------------------


def _asgi(app, method: str, path: str, headers: list, chunks: list[bytes]):
    """Run one request through the ASGI `app`; returns (status, how many body chunks it
    read)."""
    read = 0
    sent: list[dict] = []

    async def receive():
        nonlocal read
        if read < len(chunks):
            read += 1
            return {
                "type": "http.request",
                "body": chunks[read - 1],
                "more_body": read < len(chunks),
            }
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "query_string": b"",
        "client": ("10.30.9.9", 5000),
        "server": ("testserver", 80),
        "scheme": "http",
    }
    # In a thread of its own: a browser test earlier in the session may leave an event loop
    # running in this one, and asyncio.run refuses to start inside it.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], read


def test_a_declared_large_body_is_refused_unread():
    from chatbot.web.limits import BodyLimit

    reached = []

    async def inner(scope, receive, send):
        reached.append(scope["path"])

    limited = BodyLimit(inner, limit_for=lambda method, path: 64 * 1024)
    chunk = b"x" * (1 << 20)
    status, read = _asgi(
        limited,
        "POST",
        "/gradio_api/queue/join",
        [(b"content-length", str(40 << 20).encode())],
        [chunk] * 40,
    )
    assert (status, read, reached) == (413, 0, [])
    # Chunked (no length): read only until it passes the limit, one 1 MB chunk here.
    status, read = _asgi(
        limited, "POST", "/login", [(b"transfer-encoding", b"chunked")], [chunk] * 40
    )
    assert (status, read, reached) == (413, 1, [])
    # Small chunks: refused at the first chunk past 64 KB.
    status, read = _asgi(
        limited, "POST", "/login", [(b"transfer-encoding", b"chunked")], [b"y" * 10_000] * 40
    )
    assert (status, read, reached) == (413, 7, [])


def test_anonymous_routes_refuse_large_bodies_and_take_a_long_message(web, live):
    services, _ = web
    c = client(live, "10.30.0.2")
    big = b"x" * (services.settings.web.max_body_kb * 1024 + 1)
    for path in ("/gradio_api/queue/join", "/login", "/logout", "/gradio_api/cancel"):
        response = c.post(path, content=big, headers={"content-type": "application/json"})
        assert response.status_code == 413, (path, response.status_code)

    def chunks():
        for _ in range(100):
            yield b"z" * 4096

    streamed = c.post("/gradio_api/queue/join", content=chunks())
    assert streamed.status_code == 413
    c = widget(live, "10.30.0.2")
    # The longest message a customer may send (4,000 characters, each escaped in JSON
    # at its widest) still goes through.
    session = uuid.uuid4().hex[:11]
    token = _call(c, "load_page", [None], session)["output"]["data"][0]
    longest = "\u00e9\U0001f600" * 2000
    sent = _call(c, "send", [token, longest], session)
    assert sent["success"]


def _queued(database) -> int:
    from sqlalchemy import func, select

    from chatbot.store.schema import Conversation

    with database.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.state == "handed_off")
            )
        )


def test_hand_offs_are_limited_per_address(web, live):
    services, _ = web
    c = widget(live, "10.30.0.3")
    before = _queued(services.database)
    warnings = []
    for i in range(HANDOFF_LIMIT + 2):  # a fresh conversation each time
        session = uuid.uuid4().hex[:11]
        token = _call(c, "load_page", [None], session)["output"]["data"][0]
        if i % 2:
            done = _call(c, "person", [token], session)
        else:
            done = _call(c, "send", [token, ASK_FOR_PERSON], session)
        warnings.append(" ".join(w or "" for w in done["warnings"]))
    assert _queued(services.database) - before == HANDOFF_LIMIT
    assert all("several conversations from you" not in w for w in warnings[:HANDOFF_LIMIT])
    assert all("several conversations from you" in w for w in warnings[HANDOFF_LIMIT:])
    # Another address is not held back.
    other = widget(live, "10.30.0.4")
    session = uuid.uuid4().hex[:11]
    token = _call(other, "load_page", [None], session)["output"]["data"][0]
    _call(other, "person", [token], session)
    assert _queued(services.database) - before == HANDOFF_LIMIT + 1


# -- 2. no lockout -----------------------------------------------------------------------


def test_a_stranger_cannot_lock_an_agent_out_or_end_their_session(web, live, monkeypatch):
    from chatbot.accounts import throttle
    from chatbot.store.schema import utcnow
    from chatbot.ui.admin_logins import failed_logins_frame, lift_delays

    # The throttle's clock stands still: its first delays (1 s, 2 s, ...) would otherwise
    # run out between two requests on a loaded machine, and the two clients' answers
    # would differ by timing alone.
    stopped = utcnow()
    monkeypatch.setattr(throttle, "utcnow", lambda: stopped)
    services, _ = web
    agent = client(live, "10.30.1.1")
    assert login(agent, "alice", AGENT_PASSWORD).status_code == 303
    assert agent.get("/agent/config").status_code == 200
    attacker = client(live, "10.30.1.66")
    known = [login(attacker, "alice", f"guess-{i}") for i in range(8)]
    prober = client(live, "10.30.1.67")
    unknown = [login(prober, "nobody-here", f"guess-{i}") for i in range(8)]
    # The same answers for a name that exists and one that does not; never a lockout.
    assert [r.status_code for r in known] == [r.status_code for r in unknown]
    assert [r.status_code for r in known[:3]] == [401, 401, 401] and known[-1].status_code == 429
    for k, u in zip(known, unknown, strict=True):
        assert ("wrong username or password" in k.text) == ("wrong username or password" in u.text)
        assert "locked" not in k.text.lower()
    # The agent's session goes on; the agent logs in again from their own address.
    assert agent.get("/agent/config").status_code == 200
    again = client(live, "10.30.1.1")
    assert login(again, "alice", AGENT_PASSWORD).status_code == 303
    # The admin console shows the failures, and an admin lifts the delays.
    frame = failed_logins_frame(services)
    rows = dict(zip(frame["name typed"], frame["failures (24 h)"], strict=True))
    assert rows["alice"] >= 3 and rows["nobody-here"] >= 3
    assert "lifted for alice" in lift_delays(services, "alice", "root")
    assert login(attacker, "alice", AGENT_PASSWORD).status_code == 303


def test_a_config_file_with_the_removed_lockout_settings_names_them_and_the_file(tmp_path):
    config = tmp_path / "old.toml"
    config.write_text("[web]\nlockout_failures = 5\nlockout_minutes = 15\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    message = str(refused.value)
    assert str(config) in message
    assert "web.lockout_failures" in message and "web.lockout_minutes" in message


# -- 3. sessions in the store ------------------------------------------------------------


def test_a_saved_cookie_opens_nothing_after_logout(web, live):
    from chatbot.web.auth import SESSION_COOKIE

    c = client(live, "10.30.2.1")
    assert login(c, "alice", AGENT_PASSWORD).status_code == 303
    saved = c.cookies.get(SESSION_COOKIE)
    assert c.get("/agent/config").status_code == 200
    assert c.post("/logout").status_code == 303
    replay = client(live, "10.30.2.2")
    replay.cookies.set(SESSION_COOKIE, saved)
    assert replay.get("/agent/config").status_code == 401
    assert replay.post("/agent/gradio_api/queue/join", json={}).status_code == 401
    assert replay.get("/agent").status_code == 303


# -- 4. cross-site requests, logout by POST, no caching ----------------------------------


def test_forms_from_another_site_are_refused(web, live):
    evil = client(live, "10.30.3.1", origin="https://evil.example")
    assert login(evil, "alice", AGENT_PASSWORD).status_code == 403
    bare = client(live, "10.30.3.2", origin=None)
    assert login(bare, "alice", AGENT_PASSWORD).status_code == 403  # neither Origin nor Referer
    referred = client(live, "10.30.3.3", origin=None)
    referred.headers["referer"] = f"{ORIGIN}/login?next=/agent"
    assert login(referred, "alice", AGENT_PASSWORD).status_code == 303
    # Logged in: a forged logout or console action from another site changes nothing.
    agent = client(live, "10.30.3.4")
    assert login(agent, "alice", AGENT_PASSWORD).status_code == 303
    agent.headers["origin"] = "https://evil.example"
    assert agent.post("/logout").status_code == 403
    assert agent.post("/agent/gradio_api/queue/join", json={}).status_code == 403
    assert agent.get("/logout").status_code == 405  # no logout by a link or an image
    agent.headers["origin"] = ORIGIN
    assert agent.get("/agent/config").status_code == 200


def test_console_and_login_pages_are_never_cached(live):
    c = client(live, "10.30.4.1")
    assert c.get("/login").headers["cache-control"] == "no-store"
    assert login(c, "root", ADMIN_PASSWORD).status_code == 303
    for path in ("/agent/", "/admin/", "/admin/config"):
        response = c.get(path)
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    from chatbot.web.auth import LOGOUT_FORM

    # Both consoles log out with a POST form, in the same tab (no link, no new tab).
    for console in ("/agent", "/admin"):
        config = str(c.get(f"{console}/config").json())
        assert LOGOUT_FORM in config and "/logout)" not in config, console
    assert 'target="_blank"' not in LOGOUT_FORM and 'method="post"' in LOGOUT_FORM


def test_a_form_from_an_allowed_origin_passes_behind_a_proxy():
    from chatbot.web.csrf import OriginCheck

    async def answered(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    check = OriginCheck(
        answered,
        always=("/login",),
        prefixes=(),
        cookie="s",
        allowed=["https://Support.Example.com"],
    )

    def sent_from(origin: bytes) -> int:
        headers = [(b"host", b"10.0.0.5:7860"), (b"origin", origin)]  # Host rewritten by the proxy
        return _asgi(check, "POST", "/login", headers, [b""])[0]

    assert sent_from(b"https://support.example.com") == 204
    assert sent_from(b"https://evil.example") == 403


def test_an_allowed_origin_the_check_cannot_read_is_refused_at_load(tmp_path):
    config = tmp_path / "proxy.toml"
    config.write_text(
        '[web]\nallowed_origins = ["https://support.example.com", "support.example.com"]\n'
    )
    with pytest.raises(
        ConfigError, match=r"web\.allowed_origins: .*'support\.example\.com';"
    ) as bad:
        load_settings(config)
    assert str(config) in str(bad.value) and "https://support.example.com'" not in str(bad.value)


# -- 5. the consoles' Gradio housekeeping routes -----------------------------------------


def test_console_housekeeping_routes_need_a_login(live):
    c = client(live, "10.30.5.1")
    for console in ("/agent", "/admin"):
        for method, path in (
            ("post", "/gradio_api/cancel"),
            ("post", "/gradio_api/reset"),
            ("get", "/gradio_api/heartbeat/abc123"),
            ("get", "/gradio_api/queue/data?session_hash=abc123"),
            ("get", "/theme.css"),
        ):
            response = getattr(c, method)(console + path)
            assert response.status_code == 401, (console, path, response.status_code)


# -- 6. server-issued conversation tokens ------------------------------------------------


def test_a_made_up_conversation_token_is_never_used(web, live):
    from chatbot.support import customer

    services, _ = web
    c = widget(live, "10.30.6.1")
    weak = "A" * 43
    session = uuid.uuid4().hex[:11]
    given = _call(c, "load_page", [weak], session)["output"]["data"][0]
    assert given != weak and customer.is_issued(given, services.customer_token_key())
    sent = _call(c, "send", [weak, "where is my parcel"], session)
    kept = sent["output"]["data"][0]
    assert kept != weak
    with services.database.session() as db, pytest.raises(AccessDenied):
        customer.conversation_of(db, weak)  # nothing was started under the weak token
    with pytest.raises(AccessDenied):
        customer.open_conversation(services.database, weak, services.customer_token_key())
