"""Who may open what, as a real Chromium sees it: an anonymous visitor opening a console
lands on the login page and every console API route answers 401 to the browser's own
requests; an agent gets their console but neither the admin page (403, said in words)
nor its API (401); a wrong password is said on the login page; logging out ends the
session. The API calls go through `page.request`, which carries the page's cookies,
so they are exactly what a script on the page could do."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.e2e.conftest import AGENT, login

# GET and POST routes of the mounted Gradio apps that must not answer a stranger.
AGENT_API_GETS = ("/agent/config", "/agent/gradio_api/info")
ADMIN_API_GETS = ("/admin/config", "/admin/gradio_api/info")
API_POSTS = (
    "/agent/gradio_api/queue/join",
    "/admin/gradio_api/queue/join",
    "/admin/gradio_api/upload",
)
JOIN = {
    "data": [],
    "fn_index": 0,
    "session_hash": "e2eprobe01",
    "event_data": None,
    "trigger_id": None,
}


def _on_login_page(page, console: str) -> None:
    expect(page).to_have_url(re.compile(r"/login\?next=" + re.escape(console) + "$"))
    expect(page.locator("#username")).to_be_visible()
    expect(page.locator("#password")).to_be_visible()
    expect(page.locator("h1")).to_contain_text("login", ignore_case=True)


def _post(page, path: str):
    # A script on the page sends the page's origin with its POSTs (chatbot.web.csrf).
    origin = re.match(r"https?://[^/]+", page.url).group(0)
    if path.endswith("/upload"):
        return page.request.post(
            path,
            multipart={
                "files": {
                    "name": "probe.jsonl",
                    "mimeType": "application/json",
                    "buffer": b'{"id": "p", "turns": []}\n',
                }
            },
            headers={"Origin": origin},
        )
    return page.request.post(path, data=JOIN, headers={"Origin": origin})


def _refused(response, path: str) -> None:
    assert response.status == 401, f"{path} answered {response.status}: {response.text()[:300]}"
    body = response.text()
    # Nothing of the console leaks with the refusal (no config, no component tree).
    assert "components" not in body and "dependencies" not in body, f"{path} leaked: {body[:300]}"


def test_an_anonymous_visitor_is_refused_the_consoles_and_their_api(new_page):
    page = new_page()
    for console in ("/agent", "/admin"):
        page.goto(console)
        _on_login_page(page, console)
        page.goto(console + "/")
        _on_login_page(page, console)
    for path in AGENT_API_GETS + ADMIN_API_GETS:
        _refused(page.request.get(path), path)
    for path in API_POSTS:
        _refused(_post(page, path), path)
    # The customer widget stays open to everyone.
    page.goto("/")
    expect(page.locator("#message textarea")).to_be_visible()


def test_an_agent_gets_their_console_and_is_refused_the_admin_one(new_page):
    page = new_page()
    login(page, *AGENT, "/agent")
    expect(page.locator("#queue")).to_be_visible()
    # The console's own config answers the agent; routes the page never uses are not
    # served at all (chatbot/web/guard.py's allowlist), even to a logged-in agent.
    response = page.request.get("/agent/config")
    assert response.status == 200, f"/agent/config answered {response.status} to the agent"
    assert page.request.get("/agent/gradio_api/info").status == 404

    response = page.goto("/admin")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text(
        f"Your account ({AGENT[0]}, agent) cannot open /admin"
    )
    expect(page.locator("#start-training")).to_have_count(0)
    for path in ADMIN_API_GETS:
        _refused(page.request.get(path), path)
    for path in API_POSTS[1:]:
        _refused(_post(page, path), path)


def test_a_wrong_password_is_refused_on_the_login_page(new_page, screenshots):
    page = new_page()
    page.goto("/login?next=/agent")
    page.fill("#username", AGENT[0])
    page.fill("#password", "not-the-password")
    page.click("#login")
    error = page.locator("#login-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("wrong username or password", ignore_case=True)
    expect(page.locator("#username")).to_have_value(
        AGENT[0]
    )  # kept, so only the password is typed again
    assert page.locator("#password").input_value() == ""
    page.screenshot(path=str(screenshots / "login-refused.png"))
    # Still nobody: the console and its API refuse this browser.
    page.goto("/agent")
    _on_login_page(page, "/agent")
    _refused(page.request.get("/agent/config"), "/agent/config")
