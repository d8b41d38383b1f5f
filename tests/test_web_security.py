"""What the assembled web app answers to whom, over HTTP (FastAPI's TestClient against
the real app: three mounted Gradio pages, real SQLite store, tiny real models):

- an anonymous request reaches only the widget's own routes (page, assets, queue):
  Gradio's upload, file, info, monitoring, run-history, proxy, MCP… routes answer 404;
- uploads: none on the widget or the agent console; on the admin console only for a
  logged-in admin, transcript files only, within `web.max_upload_mb`; an admin's
  upload is never served to anyone else (anonymous, an agent, another page);
- a client address sending messages faster than `web.message_limit` per
  `web.message_window_seconds` gets a polite notice and its message is not stored.

The widget is driven through Gradio's queue protocol exactly as its page does
(`/gradio_api/queue/join`, then the `/gradio_api/queue/data` event stream)."""

from __future__ import annotations

import json
import re
import uuid

import pytest

from tests.test_web_app import ADMIN_PASSWORD, AGENT_PASSWORD, serve_web

MESSAGE_LIMIT = 3


@pytest.fixture(scope="module")
def web(tmp_path_factory, tiny_embedder_dir, tiny_reply_model_dir):
    yield from serve_web(
        tmp_path_factory.mktemp("web-security-home"),
        tiny_embedder_dir,
        tiny_reply_model_dir,
        web={
            "max_upload_mb": 1,
            "message_limit": MESSAGE_LIMIT,
            "message_window_seconds": 600,
            "login_attempts": 100,
        },
        dialogue={"max_new_tokens": 8},
    )


@pytest.fixture(scope="module")
def live(web):
    """One TestClient with the app's lifespan running (Gradio's queue started)."""
    from fastapi.testclient import TestClient

    _, app = web
    with TestClient(
        app,
        follow_redirects=False,
        client=("10.20.0.1", 50000),
        headers={"origin": "http://testserver"},  # as the pages' own forms and scripts send
    ) as client:
        yield client


def _as(client, address: str):
    """Later requests of `client` come from `address`."""
    client._transport.client = (address, 50000)
    return client


def _login(client, username: str, password: str) -> None:
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 303, response.text


# -- the widget's queue protocol, as its page speaks it ----------------------------------


def _fn_index(client, api_name: str) -> int:
    config = client.get("/config").json()
    return next(d["id"] for d in config["dependencies"] if d.get("api_name") == api_name)


def _call(client, api_name: str, data: list, session_hash: str) -> dict:
    """Join the queue with one widget event and read its event stream to the end: the
    `process_completed` message, with every warning shown on the way."""
    joined = client.post(
        "/gradio_api/queue/join",
        json={
            "data": data,
            "fn_index": _fn_index(client, api_name),
            "session_hash": session_hash,
            "event_data": None,
            "trigger_id": None,
        },
    )
    assert joined.status_code == 200, joined.text
    event_id = joined.json()["event_id"]
    stream = client.get("/gradio_api/queue/data", params={"session_hash": session_hash})
    assert stream.status_code == 200
    warnings, completed = [], None
    for line in stream.text.splitlines():
        if not line.startswith("data:"):
            continue
        message = json.loads(line[5:])
        if message.get("msg") == "log" and message.get("level") == "warning":
            warnings.append(message.get("log") or message.get("message"))
        if message.get("msg") == "process_completed" and message.get("event_id") == event_id:
            completed = message
    assert completed is not None and completed.get("success"), stream.text[-2000:]
    completed["warnings"] = warnings
    return completed


# -- 1. anonymous requests -------------------------------------------------------------

# Gradio's routes that the widget page never uses (recorded by driving it in Chromium).
REFUSED = [
    ("post", "/gradio_api/upload"),
    ("get", "/gradio_api/upload_progress"),
    ("get", "/gradio_api/file=/etc/hostname"),
    ("get", "/gradio_api/file/etc/hostname"),
    ("get", "/gradio_api/proxy=http://127.0.0.1:1/"),
    ("get", "/monitoring"),
    ("get", "/monitoring/summary"),
    ("get", "/monitoring/some-key"),
    ("get", "/gradio_api/info"),
    ("get", "/gradio_api/openapi.json"),
    ("get", "/gradio_api/runs"),
    ("post", "/gradio_api/run-history/connect"),
    ("get", "/gradio_api/mcp/sse"),
    ("get", "/gradio_api/mcp/schema"),
    ("post", "/gradio_api/mcp/messages/"),
    ("post", "/gradio_api/process_recording"),
    ("get", "/gradio_api/dev/reload"),
    ("post", "/gradio_api/run/send"),
    ("post", "/gradio_api/api/send"),
    ("post", "/gradio_api/call/send"),
    ("get", "/gradio_api/startup-events"),
    ("get", "/gradio_api/deep_link"),
    ("get", "/gradio_api/user"),
    ("get", "/gradio_api/token"),
    ("get", "/gradio_api/app_id"),
    ("post", "/gradio_api/vibe-edit"),
    ("get", "/gradio_api/vibe-code"),
    ("get", "/gradio_api/profiling/summary"),
    ("post", "/gradio_api/component_server"),
    ("post", "/gradio_api/stream/x"),
    ("get", "/manifest.json"),
    ("get", "/pwa_icon"),
    ("get", "/svelte/x.js"),
    ("post", "/gradio_api/login"),
    ("get", "/gradio_api/logout"),
    ("get", "/gradio_api/queue/status"),
    ("get", "/assets/../gradio_api/info"),
    ("post", "/"),
    ("put", "/config"),
    ("get", "/anything-else"),
]


def test_anonymous_requests_reach_only_the_widgets_own_routes(live):
    client = _as(live, "10.20.0.2")
    for method, path in REFUSED:
        response = getattr(client, method)(path)
        assert response.status_code == 404, (
            method,
            path,
            response.status_code,
            response.text[:200],
        )
    # What the page itself needs still answers.
    page = client.get("/")
    assert page.status_code == 200
    asset = re.search(r'(?:src|href)="(?:\./|/)?(assets/[^"]+)"', page.text)
    assert asset, "the page names no asset"
    assert client.get("/" + asset.group(1)).status_code == 200
    assert client.get("/theme.css").status_code == 200
    assert client.get("/config").status_code == 200
    assert client.get("/healthz").status_code == 200 and client.get("/login").status_code == 200
    loaded = _call(client, "load_page", [None], uuid.uuid4().hex[:11])
    assert loaded["output"]["data"][0], "the widget gave no token"


def test_widget_takes_no_upload_and_serves_no_file(live):
    client = _as(live, "10.20.0.3")
    response = client.post(
        "/gradio_api/upload", files={"files": ("t.jsonl", b"{}\n", "application/json")}
    )
    assert response.status_code == 404
    assert client.get("/gradio_api/upload_progress", params={"upload_id": "x"}).status_code == 404


# -- uploads on the consoles -------------------------------------------------------------


def test_console_uploads_need_a_login(live):
    live.cookies.clear()
    client = _as(live, "10.20.0.4")
    for console in ("/agent", "/admin"):
        response = client.post(
            f"{console}/gradio_api/upload", files={"files": ("t.jsonl", b"{}\n")}
        )
        assert response.status_code == 401, (console, response.status_code)
        assert client.get(f"{console}/gradio_api/file=/etc/hostname").status_code == 401


def test_admin_uploads_transcripts_only_within_the_size_limit(live):
    live.cookies.clear()
    client = _as(live, "10.20.0.5")
    _login(client, "root", ADMIN_PASSWORD)
    good = client.post(
        "/admin/gradio_api/upload",
        files=[
            ("files", ("chats.jsonl", b'{"a": 1}\n', "application/json")),
            ("files", ("more.csv", b"a,b\n1,2\n", "text/csv")),
        ],
    )
    assert good.status_code == 200, good.text
    assert [p.rsplit("/", 1)[-1] for p in good.json()] == ["chats.jsonl", "more.csv"]
    for name in ("evil.html", "tool.exe", "notes.txt", "noext", "chats.jsonl.sh"):
        bad = client.post(
            "/admin/gradio_api/upload",
            files={"files": (name, b"<script>alert(1)</script>", "text/html")},
        )
        assert bad.status_code == 415, (name, bad.status_code)
        assert name in bad.text and ".jsonl" in bad.text and "not a transcript file" in bad.text
    # One bad file refuses the whole request: nothing of it is kept.
    mixed = client.post(
        "/admin/gradio_api/upload",
        files=[
            ("files", ("ok.json", b"[]", "application/json")),
            ("files", ("page.svg", b"<svg/>", "image/svg+xml")),
        ],
    )
    assert mixed.status_code == 415
    big = client.post(
        "/admin/gradio_api/upload", files={"files": ("big.jsonl", b"x" * (1024 * 1024 + 10))}
    )
    assert big.status_code == 413 and "upload limit" in big.text and "1 MB" in big.text
    client.post("/logout")


def test_an_admins_upload_is_never_served_to_anyone_else(live):
    live.cookies.clear()
    admin = _as(live, "10.20.0.6")
    _login(admin, "root", ADMIN_PASSWORD)
    uploaded = admin.post(
        "/admin/gradio_api/upload", files={"files": ("secret.jsonl", b'{"pii": "x"}\n')}
    )
    assert uploaded.status_code == 200
    path = uploaded.json()[0]
    assert admin.get(f"/admin/gradio_api/file={path}").status_code == 200  # the admin's own upload
    admin.post("/logout")
    live.cookies.clear()
    # Anonymous: not on any page.
    for url in (
        f"/gradio_api/file={path}",
        f"/admin/gradio_api/file={path}",
        f"/agent/gradio_api/file={path}",
        f"/gradio_api/file/{path.lstrip('/')}",
    ):
        assert live.get(url).status_code in (401, 404), url
    # An agent: not through the admin console, nor through the agent console's own file route.
    _login(live, "alice", AGENT_PASSWORD)
    assert live.get(f"/admin/gradio_api/file={path}").status_code == 401
    assert live.get(f"/agent/gradio_api/file={path}").status_code == 404
    assert (
        live.post("/agent/gradio_api/upload", files={"files": ("x.jsonl", b"{}\n")}).status_code
        == 404
    )
    # The consoles answer no monitoring or API description either, even logged in.
    for url in (
        "/agent/monitoring/summary",
        "/agent/gradio_api/info",
        "/agent/gradio_api/openapi.json",
        "/agent/gradio_api/runs",
    ):
        assert live.get(url).status_code == 404, url
    live.post("/logout")
    live.cookies.clear()


# -- 2. the per-client message rate limit ------------------------------------------------


def _chat_texts(completed: dict) -> list[str]:
    chat = completed["output"]["data"][1]
    texts = []
    for entry in chat if isinstance(chat, list) else []:
        content = entry.get("content")
        if isinstance(content, list):
            texts.append(
                "".join(part.get("text", "") for part in content if isinstance(part, dict))
            )
        else:
            texts.append(str(content))
    return texts


def test_widget_messages_are_rate_limited_per_client_address(web, live):
    from chatbot.support.customer import messages_after

    services, _ = web
    client = _as(live, "10.20.0.7")
    session = uuid.uuid4().hex[:11]
    token = _call(client, "load_page", [None], session)["output"]["data"][0]
    for i in range(MESSAGE_LIMIT):
        sent = _call(client, "send", [token, f"where is my parcel {i}"], session)
        assert not any("faster than we can answer" in (w or "") for w in sent["warnings"]), sent[
            "warnings"
        ]
    refused = _call(client, "send", [token, "one message too many"], session)
    assert any("faster than we can answer" in (w or "") for w in refused["warnings"]), refused[
        "warnings"
    ]
    assert refused["output"]["data"][6] == "one message too many"  # left in the box to send again
    stored = [m.text for m in messages_after(services.database, token, -1) if m.role == "customer"]
    assert stored == [f"where is my parcel {i}" for i in range(MESSAGE_LIMIT)]
    # Another address is not held back by this one.
    other = _as(live, "10.20.0.8")
    session2 = uuid.uuid4().hex[:11]
    token2 = _call(other, "load_page", [None], session2)["output"]["data"][0]
    sent = _call(other, "send", [token2, "hello from next door"], session2)
    assert not sent["warnings"] or not any("faster" in (w or "") for w in sent["warnings"])
    assert "hello from next door" in _chat_texts(sent)
