"""Recovery after a crash (chatbot.support.recovery): a customer message stored with no
reply, as a process killed between the two leaves it, is handed to the agents as
"interrupted" once it is older than the bound, the customer's chat shows the notice and
the hand-off banner; a message the customer wrote past, or one a person already has, is
settled in silence; a message with a reply, a young one and a closed conversation are
left alone; two sweeps at once settle a message once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from chatbot.errors import ConfigError
from chatbot.settings import load_settings
from chatbot.store.conversations import add_message
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message, utcnow
from chatbot.support import customer
from chatbot.support.queue import load_queue
from chatbot.support.recovery import INTERRUPTED, sweep
from chatbot.web_settings import DEFAULT_INTERRUPTED_MESSAGE

KEY = customer.token_key("test session secret, not used anywhere else")
LATER = timedelta(minutes=10)


def chat(database, *texts: str) -> tuple[str, int]:
    """A widget conversation with these customer messages stored and no reply (as a
    server killed while answering leaves them)."""
    token = customer.new_token(KEY)
    conversation_id = customer.open_conversation(database, token, KEY)
    with database.session() as session:
        for text in texts:
            add_message(
                session=session, conversation_id=conversation_id, role="customer", text=text
            )
    return token, conversation_id


def replies(database, conversation_id) -> list[tuple[str, str]]:
    with database.session() as session:
        return [
            (r.decision, r.reason)
            for r in session.scalars(
                select(DialogueReply)
                .where(DialogueReply.conversation_id == conversation_id)
                .order_by(DialogueReply.message_id)
            )
        ]


def test_a_message_left_without_a_reply_goes_to_the_agents_as_interrupted(migrated_database):
    database = migrated_database
    token, conversation_id = chat(database, "where is my parcel?")

    # Younger than the bound: a reply may still be on its way.
    assert sweep(database, older_than_seconds=120).total == 0
    assert replies(database, conversation_id) == []

    result = sweep(database, older_than_seconds=120, now=utcnow() + LATER)
    assert (result.handed_off, result.settled) == (1, 0)
    with database.session() as session:
        conversation = session.get(Conversation, conversation_id)
        assert (conversation.state, conversation.handoff_reason) == ("handed_off", INTERRUPTED)
        queue = load_queue(session)
    assert [(i.conversation_id, i.group) for i in queue.items] == [(conversation_id, "interrupted")]
    assert replies(database, conversation_id) == [("handoff", INTERRUPTED)]

    # The customer coming back reads the notice, with a person in charge.
    shown = customer.messages_after(database, token, -1)
    assert [(m.role, m.text) for m in shown] == [
        ("customer", "where is my parcel?"),
        ("bot", DEFAULT_INTERRUPTED_MESSAGE),
    ]
    assert customer.human_in_charge(database, token)

    # Settled once: a second sweep finds nothing.
    assert sweep(database, older_than_seconds=120, now=utcnow() + LATER).total == 0


def test_a_message_the_customer_wrote_past_is_settled_without_a_second_notice(migrated_database):
    database = migrated_database
    token, conversation_id = chat(database, "first question", "second question")
    result = sweep(database, older_than_seconds=60, now=utcnow() + LATER)
    assert (result.handed_off, result.settled) == (1, 1)
    assert replies(database, conversation_id) == [
        ("silent", INTERRUPTED),
        ("handoff", INTERRUPTED),
    ]
    bot = [m for m in customer.messages_after(database, token, -1) if m.role == "bot"]
    assert len(bot) == 1


def test_answered_closed_and_handed_off_conversations_get_no_notice(migrated_database):
    database = migrated_database
    _, answered = chat(database, "answered")
    _, closed = chat(database, "closed")
    _, with_agent = chat(database, "an agent has it")
    with database.session() as session:
        message_id = session.scalar(select(Message.id).where(Message.conversation_id == answered))
        session.add(
            DialogueReply(
                conversation_id=answered,
                message_id=message_id,
                decision="answer",
                reason="confident",
                sent=True,
            )
        )
        session.get(Conversation, closed).state = "closed"
        session.get(Conversation, with_agent).state = "handed_off"
    result = sweep(database, older_than_seconds=60, now=utcnow() + LATER)
    assert (result.handed_off, result.settled) == (0, 1)
    assert replies(database, closed) == []
    assert replies(database, with_agent) == [("silent", INTERRUPTED)]
    with database.session() as session:
        assert session.get(Conversation, with_agent).handoff_reason is None


def test_two_sweeps_at_once_settle_each_message_once(migrated_database):
    database = migrated_database
    conversations = [chat(database, f"question {n}")[1] for n in range(6)]
    results = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        results.append(sweep(database, older_than_seconds=60, now=utcnow() + LATER))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.handed_off for r in results) == 6
    for conversation_id in conversations:
        assert replies(database, conversation_id) == [("handoff", INTERRUPTED)]


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("interrupted_after_seconds", 1, "greater than or equal to 5"),
        ("recovery_sweep_seconds", 0, "greater than 0.1"),
        ("interrupted_message", "", "at least 1 character"),
    ],
)
def test_recovery_settings_out_of_bounds_are_refused(tmp_path, setting, value, problem):
    config = tmp_path / "bad.toml"
    config.write_text(f"[web]\n{setting} = {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=f"web.{setting}: .*{problem}"):
        load_settings(config)
