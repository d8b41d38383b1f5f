"""The chat widget over the real dialogue manager (tiny models, real index): the
customer's message is stored before any reply, bad input is refused with a message,
and the Gradio app really serves a page."""

from __future__ import annotations

import urllib.request

import pytest

from chatbot.dialogue.manager import MAX_MESSAGE_CHARS
from chatbot.store.conversations import conversation_messages
from tests.test_dialogue_support import FailingReplySource, build_retriever, make_manager, seed_shop
from ui.app import answer_customer, build_app


@pytest.fixture
def database(sqlite_database):
    """The widget's logic does not depend on the database kind: SQLite is enough here."""
    return sqlite_database


@pytest.fixture
def retriever(tiny_settings, database):
    seed_shop(database)
    return build_retriever(tiny_settings, database)


def _messages(database, conversation_id):
    with database.session() as session:
        return [(m.role, m.text) for m in conversation_messages(session=session, conversation_id=conversation_id)]


def test_message_and_reply_are_stored_and_described(tiny_settings, database, retriever):
    manager = make_manager(tiny_settings, database, retriever)
    turns = list(answer_customer(responder=manager, conversation_id=None, history=[],
                                 message="  How do I reset my password?  "))
    last = turns[-1]
    assert last.warning is None
    assert last.history[0] == {"role": "user", "content": "How do I reset my password?"}
    assert last.details  # decision, confidence and sources are shown under the chat
    stored = _messages(database, last.conversation_id)
    assert stored[0] == ("customer", "How do I reset my password?")
    assert stored[-1][0] == "bot" and stored[-1][1] == last.history[-1]["content"]


def test_asking_for_a_human_hands_off(tiny_settings, database, retriever):
    manager = make_manager(tiny_settings, database, retriever)
    last = list(answer_customer(responder=manager, conversation_id=None, history=[],
                                message="I want to talk to a real person please"))[-1]
    assert "handoff" in last.details


def test_message_survives_a_failing_model(tiny_settings, database, retriever):
    manager = make_manager(tiny_settings, database, retriever, source=FailingReplySource())
    last = list(answer_customer(responder=manager, conversation_id=None, history=[], message="Refund please"))[-1]
    assert _messages(database, last.conversation_id)[0] == ("customer", "Refund please")


@pytest.mark.parametrize("message", ["", "   ", "x" * (MAX_MESSAGE_CHARS + 1)])
def test_empty_or_huge_messages_are_refused(tiny_settings, database, retriever, message):
    manager = make_manager(tiny_settings, database, retriever)
    turns = list(answer_customer(responder=manager, conversation_id=None, history=[], message=message))
    assert len(turns) == 1 and turns[0].warning
    assert turns[0].conversation_id is None and turns[0].history == []


def test_app_serves_its_page(tiny_settings, database, retriever):
    app = build_app(database=database, responder=make_manager(tiny_settings, database, retriever))
    app.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with urllib.request.urlopen(app.local_url, timeout=30) as response:
            assert response.status == 200
            assert "gradio" in response.read().decode("utf-8", "replace").lower()
    finally:
        app.close()
