"""What issue 24's protections look like to a person, in a real Chromium: the admin
console's "Serving in a degraded state" notice while a damaged index is stood in for, an
agent's answer holding a customer's IBAN listed under **Held answers** until the admin
approves it, and the widget's notice for a message the server died while answering.

One served app for the module (`safety_server`): its current index version is cut short
before it starts, so it serves the version before (`chatbot.retrieval.fallback`), and its
recovery sweep runs every half second. Screenshots (degraded_notice.png, held_answers.png,
interrupted_notice.png) go where the other browser tests' do, and also to docs/screenshots/
under CHATBOT_DOCS_SCREENSHOTS=1 (so that a plain test run leaves the repository clean):

    CHATBOT_DOCS_SCREENSHOTS=1 .venv/bin/python -m pytest -q tests/e2e/test_safety_pages_e2e.py
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select, update

from tests.e2e.conftest import ADMIN, AGENT, REPO, _pages, login, new_home, serving
from tests.e2e.test_customer_and_agent import (
    BOT,
    open_in_console,
    open_widget,
    send,
    settled,
    unique,
)

DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
# Read at import: tests/conftest.py hides every CHATBOT_* variable from the tests themselves.
TO_DOCS = bool(os.environ.get("CHATBOT_DOCS_SCREENSHOTS"))
IBAN = "DE89 3704 0044 0532 0130 00"


def keep(page, screenshots, name: str, full_page: bool = False) -> None:
    """Save what the page shows now as `name`, and in docs/screenshots/ when asked."""
    folders = [screenshots]
    if TO_DOCS:
        folders.append(DOCS_SCREENSHOTS)
    for folder in folders:
        page.screenshot(path=str(folder / name), full_page=full_page)


@pytest.fixture(scope="module")
def safety_server(tmp_path_factory, accounts_home, tiny_embedder_dir, tiny_reply_model_dir):
    """`chatbot serve` on a store whose current index version (v0002) is damaged."""
    from chatbot.bootstrap import load_demo_data
    from chatbot.config import ensure_home
    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.index_files import store_root
    from chatbot.settings import load_settings
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from tests.test_damaged_files import _cut

    home = new_home(tmp_path_factory, accounts_home, "e2e-safety-home")
    settings = load_settings(
        home=home, embedder_path=tiny_embedder_dir, reply_model_path=tiny_reply_model_dir
    )
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    load_demo_data(settings)
    database = Database(settings.resolved_database_url)
    try:
        update_index(
            settings.paths, settings.retrieval, settings.dialogue, database, calibrate=False
        )
        update_index(
            settings.paths,
            settings.retrieval,
            settings.dialogue,
            database,
            rebuild=True,
            calibrate=False,
        )
    finally:
        database.dispose()
    _cut(store_root(settings.paths) / "v0002" / "vectors.npy")
    with serving(
        home,
        tiny_embedder_dir,
        tiny_reply_model_dir,
        CHATBOT_WEB__RECOVERY_SWEEP_SECONDS="0.5",
    ) as srv:
        yield srv


@pytest.fixture
def people(browser, safety_server, screenshots, request):
    yield from _pages(browser, safety_server, screenshots, request)


def test_the_admin_console_says_it_serves_degraded(people, safety_server, screenshots):
    admin = people()
    login(admin, *ADMIN, "/admin")
    notice = admin.locator("#serving-health")
    expect(notice).to_contain_text("Serving in a degraded state", timeout=30_000)
    expect(notice).to_contain_text("vectors.npy")
    expect(notice).to_contain_text("v0001")
    expect(notice).to_contain_text("chatbot index --rebuild")
    keep(admin, screenshots, "degraded_notice.png")
    # Anonymous callers learn only that the index is degraded.
    ready = admin.request.get(safety_server.url + "/readyz")
    assert ready.json()["degraded"] == ["index"] and "v0002" not in ready.text()


def test_an_answer_holding_an_iban_waits_for_the_admin(people, safety_server, screenshots):
    question = unique("Could the refund go to a different bank account?")
    customer = people()
    open_widget(customer)
    send(customer, question)
    settled(customer)

    agent = people()
    login(agent, *AGENT, "/agent")
    open_in_console(agent, question[-10:])
    answer = f"Hi, we have sent the refund to the bank account {IBAN} that you gave us."
    agent.fill("#suggestion textarea", answer)
    agent.click("#send-edit")
    expect(agent.locator("#action-status")).to_contain_text("private to", timeout=30_000)
    # Its own customer gets it as written.
    expect(customer.locator("#chat")).to_contain_text(IBAN, timeout=15_000)

    admin = people()
    login(admin, *ADMIN, "/admin")
    admin.get_by_role("tab", name="Held answers").click()
    table = admin.locator("#held")
    expect(table).to_contain_text(IBAN, timeout=30_000)
    expect(table).to_contain_text("iban")
    expect(table).to_contain_text(question[-10:])
    keep(admin, screenshots, "held_answers.png", full_page=True)

    admin.fill("#held-id textarea, #held-id input", str(_held_id(safety_server, answer)))
    admin.click("#held-approve")
    expect(admin.locator("#held-status")).to_contain_text("approved", timeout=30_000)
    expect(admin.locator("#held-status")).to_contain_text("shared now")
    expect(table).not_to_contain_text(IBAN, timeout=15_000)


def test_a_message_the_server_died_on_gets_the_interrupted_notice(
    people, safety_server, screenshots
):
    customer = people()
    open_widget(customer)
    send(customer, unique("Hello, do you ship to Austria?"))
    settled(customer)
    bots = customer.locator(BOT).count()

    # What a server killed between storing a message and answering it leaves behind: the
    # customer's message stored, no reply, older than the bound (web.interrupted_after_seconds).
    stranded = unique("And can I pay by invoice?")
    _store_a_message_without_reply(safety_server, stranded)

    expect(customer.locator(BOT)).to_have_count(bots + 1, timeout=30_000)
    expect(customer.locator(BOT).last).to_contain_text("we were interrupted")
    expect(customer.locator("#chat")).to_contain_text(stranded)
    expect(customer.locator("#status-banner")).to_be_visible(timeout=15_000)
    expect(customer.locator("#status-banner")).to_contain_text(re.compile("team", re.I))
    keep(customer, screenshots, "interrupted_notice.png")


def _held_id(server, answer: str) -> int:
    from chatbot.store.support_schema import PrivateAnswer

    database = server.database()
    try:
        with database.session() as session:
            return session.scalars(
                select(PrivateAnswer.id).where(PrivateAnswer.text == answer)
            ).one()
    finally:
        database.dispose()


def _store_a_message_without_reply(server, text: str) -> None:
    """Add a customer message, ten minutes old, to the newest widget conversation."""
    from chatbot.store.conversations import add_message
    from chatbot.store.schema import Conversation, Message, utcnow

    database = server.database()
    try:
        with database.session() as session:
            conversation_id = session.scalars(
                select(Conversation.id)
                .where(Conversation.access_token_hash.is_not(None))
                .order_by(Conversation.id.desc())
                .limit(1)
            ).one()
            message = add_message(
                session=session, conversation_id=conversation_id, role="customer", text=text
            )
            session.flush()
            session.execute(
                update(Message)
                .where(Message.id == message.id)
                .values(created_at=utcnow() - timedelta(minutes=10))
            )
    finally:
        database.dispose()
