"""Message ordering under real concurrent writers, on SQLite and PostgreSQL: several
threads, each with its own engine (as separate app processes would have), append to
ONE conversation at once; every message is stored exactly once and the turn indexes
are 0..n-1 without gaps or duplicates. The same through the dialogue manager, with
concurrent customer messages into one conversation (two browser tabs)."""

from __future__ import annotations

import threading

from chatbot.store.conversations import add_message, conversation_messages, start_conversation
from chatbot.store.database import Database
from tests.test_dialogue_support import SHOP, make_manager, shop  # noqa: F401

WRITERS = 6
MESSAGES_EACH = 8


def run_concurrently(target, count: int) -> list[BaseException]:
    """Start `count` threads on `target(i)` behind one barrier; the errors they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    return errors


def test_concurrent_writers_into_one_conversation_lose_nothing(migrated_database):
    with migrated_database.session() as session:
        cid = start_conversation(session=session, source="test").id

    def writer(i: int) -> None:
        database = Database(migrated_database.url)  # its own engine and connections
        try:
            for j in range(MESSAGES_EACH):
                with database.session() as session:
                    add_message(
                        session=session,
                        conversation_id=cid,
                        role="customer",
                        text=f"writer {i} message {j}",
                    )
        finally:
            database.dispose()

    errors = run_concurrently(writer, WRITERS)
    assert errors == []
    with migrated_database.session() as session:
        messages = conversation_messages(session=session, conversation_id=cid)
    assert [m.turn_index for m in messages] == list(range(WRITERS * MESSAGES_EACH))
    texts = [m.text for m in messages]
    assert sorted(texts) == sorted(
        f"writer {i} message {j}" for i in range(WRITERS) for j in range(MESSAGES_EACH)
    )
    for i in range(WRITERS):  # each writer's own messages keep their order
        mine = [t for t in texts if t.startswith(f"writer {i} ")]
        assert mine == [f"writer {i} message {j}" for j in range(MESSAGES_EACH)]


def test_writers_in_different_conversations_number_them_independently(migrated_database):
    """Six writers over three conversations: each conversation numbered 0..9 on its own."""
    with migrated_database.session() as session:
        cids = [start_conversation(session=session, source="test").id for _ in range(3)]

    def writer(i: int) -> None:
        database = Database(migrated_database.url)
        try:
            for j in range(5):
                with database.session() as session:
                    add_message(
                        session=session,
                        conversation_id=cids[i % 3],
                        role="customer",
                        text=f"{i}-{j}",
                    )
        finally:
            database.dispose()

    assert run_concurrently(writer, 6) == []
    with migrated_database.session() as session:
        for cid in cids:
            assert [
                m.turn_index for m in conversation_messages(session=session, conversation_id=cid)
            ] == list(range(10))


def test_concurrent_customer_messages_through_the_manager(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(
        settings, database, retriever, generate=False, handoff_threshold=0.0, answer_threshold=0.0
    )
    first = manager.respond(SHOP[4][0])
    cid = first.conversation_id
    questions = [SHOP[i % 5][0] + f" (tab {i})" for i in range(6)]
    replies = {}

    def tab(i: int) -> None:
        replies[i] = manager.respond(questions[i], cid)

    assert run_concurrently(tab, len(questions)) == []
    with database.session() as session:
        messages = conversation_messages(session=session, conversation_id=cid)
    assert [m.turn_index for m in messages] == list(range(len(messages)))
    customer = [m.text for m in messages if m.role == "customer"]
    assert sorted(customer) == sorted([SHOP[4][0], *questions])  # each stored exactly once
    assert {r.conversation_id for r in replies.values()} == {cid}
    assert len({r.message_id for r in replies.values()}) == len(questions)
