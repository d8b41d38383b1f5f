"""The chat widget: customer messages are stored before any reply, bad input is
refused with a message, and the Gradio app really serves a page."""

from __future__ import annotations

import urllib.request

import pytest

from chatbot.errors import ModelUnavailableError
from chatbot.models.generate import stream_text
from chatbot.models.reply_model import load_reply_model, reply_model_path
from chatbot.store.conversations import conversation_messages
from ui.app import MAX_MESSAGE_CHARS, answer_customer, build_app


@pytest.fixture
def database(tmp_path):
    """The widget's logic does not depend on the database kind: SQLite is enough here."""
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'ui.db'}"
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def tiny_stream(tiny_settings):
    model, tokenizer = load_reply_model(reply_model_path(tiny_settings))

    def reply_stream(history, message):
        yield from stream_text(model, tokenizer, [*history, {"role": "user", "content": message}], max_new_tokens=6)

    return reply_stream


def _messages(database, conversation_id):
    with database.session() as session:
        return [(m.role, m.text) for m in conversation_messages(session=session, conversation_id=conversation_id)]


def test_message_and_reply_are_stored(database, tiny_stream):
    turns = list(answer_customer(database=database, reply_stream=tiny_stream, conversation_id=None,
                                 history=[], message="  Where is my order?  "))
    last = turns[-1]
    assert last.warning is None
    assert last.history[0] == {"role": "user", "content": "Where is my order?"}
    stored = _messages(database, last.conversation_id)
    assert stored[0] == ("customer", "Where is my order?")
    assert stored[1][0] == "bot" and stored[1][1] == last.history[1]["content"].strip()


def test_message_survives_a_failing_model(database):
    def broken(history, message):
        raise ModelUnavailableError("reply model directory /x has no config.json")
        yield  # pragma: no cover

    turns = list(answer_customer(database=database, reply_stream=broken, conversation_id=None,
                                 history=[], message="Refund please"))
    assert "has no config.json" in turns[-1].warning
    assert _messages(database, turns[-1].conversation_id) == [("customer", "Refund please")]


@pytest.mark.parametrize("message", ["", "   ", "x" * (MAX_MESSAGE_CHARS + 1)])
def test_empty_or_huge_messages_are_refused(database, tiny_stream, message):
    turns = list(answer_customer(database=database, reply_stream=tiny_stream, conversation_id=None,
                                 history=[], message=message))
    assert len(turns) == 1 and turns[0].warning
    assert turns[0].conversation_id is None


def test_app_serves_its_page(database, tiny_stream):
    app = build_app(database=database, reply_stream=tiny_stream)
    app.queue().launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True)
    try:
        with urllib.request.urlopen(app.local_url, timeout=30) as response:
            assert response.status == 200
            assert "gradio" in response.read().decode("utf-8", "replace").lower()
    finally:
        app.close()
