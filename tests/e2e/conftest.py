"""End-to-end fixtures: the real `chatbot serve` in its own process on loopback (tiny
real models built from a config, the bundled demo shop imported and indexed, an agent
and an admin made with `chatbot users add`), and a real headless Chromium (Debian's
`chromium` package) driven by Playwright's Python API.

Screenshots go to `test-results/e2e/` (or CHATBOT_E2E_SCREENSHOTS) so that a person can
look at what each test saw. Without a Chromium the tests skip with the reason, except
under CHATBOT_REQUIRE_BROWSER=1 (set by .ci/run), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AGENT = ("alice", "alice-password-1")
SECOND_AGENT = ("bruno", "bruno-password-1")
ADMIN = ("root", "root-password-1")
# The served app of `clarifying_server`: every question of the shop's kind gets a
# clarifying question. The tiny embedder puts every reply close to every other, so a small
# class distance keeps the demo shop's topics apart; its class probabilities are noise, so
# no class is sure enough to answer (fit_answer_at) and every one is likely enough to be
# offered (fit_clarify_at), and the model decides however few held-out questions it was
# sure of (fit_min_coverage).
CLARIFYING_ENV = {
    "CHATBOT_DIALOGUE__ANSWER_CLASS_DISTANCE": "0.03",
    "CHATBOT_DIALOGUE__FIT_ANSWER_AT": "0.999",
    "CHATBOT_DIALOGUE__FIT_CLARIFY_AT": "0.0",
    "CHATBOT_DIALOGUE__FIT_MIN_COVERAGE": "0.0",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def chromium_path() -> str | None:
    configured = os.environ.get("CHATBOT_CHROMIUM")
    for candidate in ([configured] if configured else []) + list(CHROMIUM_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    home: Path
    env: dict[str, str]
    log: Path

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "chatbot", *args],
            env=self.env,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=300,
            cwd=REPO,
        )

    def database(self):
        from chatbot.store.database import Database

        return Database(f"sqlite:///{self.home / 'chatbot.db'}")


def serving_env(home: Path, embedder: Path, reply_model: Path, **extra_env: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(
        {
            "CHATBOT_HOME": str(home),
            "CHATBOT_EMBEDDER_PATH": str(embedder),
            "CHATBOT_REPLY_MODEL_PATH": str(reply_model),
            "CHATBOT_WEB__POLL_SECONDS": "1",
            "CHATBOT_WEB__LOGIN_ATTEMPTS": "1000",  # every browser test logs in from 127.0.0.1
            "CHATBOT_WEB__HANDOFF_LIMIT": "1000",  # and every customer hands off from there too
            # The tiny models' scores are noise: fix the policy so that every in-scope reply is
            # sent and flagged for an agent's review (the queue always has suggestions to act on).
            "CHATBOT_DIALOGUE__ANSWER_THRESHOLD": "1.0",
            "CHATBOT_DIALOGUE__HANDOFF_THRESHOLD": "0.0",
            "CHATBOT_DIALOGUE__HANDOFF_ON_OUT_OF_SCOPE": "false",
            "CHATBOT_DIALOGUE__HANDOFF_TOPICS": "[]",
            "CHATBOT_DIALOGUE__OUT_OF_SCOPE_TOPICS": "[]",
            "CHATBOT_DIALOGUE__MAX_NEW_TOKENS": "24",
            # Short training runs from the admin console, so that one can be seen and cancelled.
            "CHATBOT_TRAINING__MAX_STEPS": "400",
            "HF_HUB_OFFLINE": "1",
            **extra_env,
        }
    )
    return env


def add_accounts(home: Path, embedder: Path, reply_model: Path) -> None:
    """Migrate a new data directory with `chatbot db upgrade` and add the two agents and
    the admin with `chatbot users add`."""
    env = serving_env(home, embedder, reply_model)
    srv = Server(url="", home=home, env=env, log=home / "serve.log")
    upgraded = srv.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    for (name, password), role in ((AGENT, "agent"), (SECOND_AGENT, "agent"), (ADMIN, "admin")):
        made = srv.cli(
            "users", "add", name, "--role", role, "--password-stdin", stdin=password + "\n"
        )
        assert made.returncode == 0, made.stderr


@contextmanager
def serving(home: Path, embedder: Path, reply_model: Path, **extra_env: str) -> Iterator[Server]:
    """`chatbot serve` on a free loopback port over `home`, a copy of `accounts_home` (or
    what that copy became), where it imports the demo shop and indexes it under its own
    settings as it starts; `extra_env` on top of the shared settings."""
    env = serving_env(home, embedder, reply_model, **extra_env)
    port = _free_port()
    log = home / "serve.log"
    srv = Server(url=f"http://127.0.0.1:{port}", home=home, env=env, log=log)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"chatbot serve exited with {process.returncode}:\n{log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(srv.url + "/healthz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"chatbot serve did not answer within 240 s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield srv
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def accounts_home(tmp_path_factory, tiny_embedder_dir, tiny_reply_model_dir) -> Path:
    """A data directory migrated and holding the three accounts (`add_accounts`), built
    once for the session: every served app starts from a copy of it (four commands fewer
    each). The demo shop is imported and indexed by each server itself, as `chatbot
    serve` does on a new store: the index's calibration and answer classes depend on the
    dialogue settings, which differ between the servers (CLARIFYING_ENV)."""
    home = tmp_path_factory.mktemp("e2e-accounts-home") / "home"
    home.mkdir()
    add_accounts(home, tiny_embedder_dir, tiny_reply_model_dir)
    return home


def new_home(tmp_path_factory, accounts_home: Path, name: str) -> Path:
    """A copy of `accounts_home` for one server."""
    home = tmp_path_factory.mktemp(name) / "home"
    shutil.copytree(accounts_home, home)
    return home


@pytest.fixture(scope="session")
def server(tmp_path_factory, accounts_home, tiny_embedder_dir, tiny_reply_model_dir):
    """`chatbot serve` on a free loopback port, with the demo shop and two accounts."""
    home = new_home(tmp_path_factory, accounts_home, "e2e-home")
    with serving(home, tiny_embedder_dir, tiny_reply_model_dir) as srv:
        yield srv


@pytest.fixture(scope="module")
def clarifying_server(tmp_path_factory, accounts_home, tiny_embedder_dir, tiny_reply_model_dir):
    """A second `chatbot serve`, for the module that uses it only, whose assistant asks
    which topic is meant for every question of the shop's kind (`CLARIFYING_ENV`)."""
    home = new_home(tmp_path_factory, accounts_home, "e2e-clarifying-home")
    with serving(home, tiny_embedder_dir, tiny_reply_model_dir, **CLARIFYING_ENV) as srv:
        yield srv


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    if executable is None:
        reason = "no Chromium: apt-get install chromium (Debian's package), or set CHATBOT_CHROMIUM"
        if os.environ.get("CHATBOT_REQUIRE_BROWSER"):
            pytest.fail(reason + " (CHATBOT_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    # A page's checks wait as long as its actions (5 s by default): the suite runs on every core
    # (./run.sh test), and a console may take longer than that to load beside it.
    expect.set_options(timeout=30_000)

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_FLAGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("CHATBOT_E2E_SCREENSHOTS") or REPO / "test-results" / "e2e")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def new_page(browser, server, screenshots, request):
    """Pages in fresh browser contexts (separate cookies and storage: separate people);
    each one is screenshotted at the end of the test, pass or fail."""
    yield from _pages(browser, server, screenshots, request)


@pytest.fixture
def clarifying_page(browser, clarifying_server, screenshots, request):
    """`new_page`, on `clarifying_server`."""
    yield from _pages(browser, clarifying_server, screenshots, request)


def _pages(browser, server: Server, screenshots: Path, request):
    contexts = []

    def make(viewport=(1280, 900)):
        context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, base_url=server.url
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        page.on(
            "dialog", lambda dialog: dialog.dismiss()
        )  # an alert() would mean a script ran: tests look for it
        return page

    yield make
    for i, context in enumerate(contexts):
        for j, page in enumerate(context.pages):
            try:
                page.screenshot(
                    path=str(screenshots / f"{request.node.name}-{i}{j}.png"), full_page=True
                )
            except Exception:
                pass
        context.close()


def login(page, username: str, password: str, console: str) -> None:
    page.goto(f"/login?next={console}")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_url(f"**{console}/")
