"""Hostile input into the store and the terminal, on SQLite and PostgreSQL: control and
bidirectional-override characters are removed when imported or live text is stored and
never printed raw by `chatbot ask` / `chatbot chat` (old rows included); empty,
whitespace-only and oversized messages are refused with nothing stored; nothing can be
written into imported history or a closed conversation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from chatbot.cli import main
from chatbot.errors import InputError
from chatbot.ingest.importer import import_paths
from chatbot.store.conversations import add_message, conversation_messages, start_conversation
from chatbot.store.schema import Conversation, Message
from chatbot.text.sanitize import clean_text
from tests.test_dialogue_support import SHOP, make_manager, shop  # noqa: F401
from tests.test_live_privacy import reindexed, seed_answer

# ESC (a colour, a cursor move and an OSC title), BEL, NUL, backspace, DEL, C1 CSI,
# the bidirectional overrides and isolates, a lone carriage return.
HOSTILE = (
    "Where \x1b[31mis\x1b[0m my \x1b[2J\x1b]0;pwned\x07order\x00?\x08\x7f\x9b "
    "\u202eevil\u202c \u2066iso\u2069 \u200fmark\rmore\ttab\nline"
)
UNSAFE = [chr(c) for c in (*range(0, 9), 11, 12, 13, *range(14, 32), *range(0x7F, 0xA0))] + [
    "\u061c",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
]


def has_unsafe(text: str) -> bool:
    return any(ch in text for ch in UNSAFE)


def test_clean_text_keeps_line_feeds_and_tabs():
    cleaned = clean_text(HOSTILE)
    assert not has_unsafe(cleaned)
    assert cleaned == "Where [31mis[0m my [2J]0;pwnedorder? evil iso mark\nmore\ttab\nline"
    assert clean_text(cleaned) == cleaned and clean_text("") == ""
    assert clean_text("a\ud800b") == "a\ufffdb"  # a lone surrogate no database can store


def test_imported_text_is_stored_clean(migrated_database, tmp_path):
    path = tmp_path / "hostile.jsonl"
    record = {
        "id": "evil\x1b[2J\u202e-1",
        "source": "shop\x07",
        "meta": {"note": "x\x1b]0;t\x07y", "k\x00": ["\u202eq"]},
        "turns": [
            {"role": "customer", "text": HOSTILE},
            {"role": "agent", "text": "Fine\x1b[5m blink\x1b[0m\x07 \u202ereversed"},
        ],
    }
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    summary = import_paths(migrated_database, [path])
    assert summary.conversations == 1 and summary.messages == 2, summary.files[0].problems
    with migrated_database.session() as session:
        conversation = session.scalars(select(Conversation)).one()
        texts = [
            m.text for m in conversation_messages(session=session, conversation_id=conversation.id)
        ]
        assert texts == [clean_text(HOSTILE), "Fine[5m blink[0m reversed"]
        assert conversation.external_id == "evil[2J-1" and conversation.source == "shop"
        assert not has_unsafe(json.dumps(conversation.meta, ensure_ascii=False))


def test_live_text_is_stored_clean(shop):
    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever, generate=False)
    reply = manager.respond(HOSTILE)
    with database.session() as session:
        customer = [
            m.text
            for m in conversation_messages(session=session, conversation_id=reply.conversation_id)
        ]
    assert (
        customer[0] == clean_text(HOSTILE).strip() and "\n" in customer[0] and "\t" in customer[0]
    )
    # Whatever writes through the store (agents' messages too) is cleaned.
    with database.session() as session:
        add_message(
            session=session,
            conversation_id=reply.conversation_id,
            role="agent",
            text="hi\x1b[1m\u202e there",
        )
    with database.session() as session:
        assert (
            conversation_messages(session=session, conversation_id=reply.conversation_id)[-1].text
            == "hi[1m there"
        )


@pytest.mark.parametrize("message", ["", "   \n\t ", "\x00\x1b\x07\u202e", "x" * 4001])
def test_empty_whitespace_and_oversized_messages_are_refused(shop, message):
    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever, generate=False)
    with pytest.raises(InputError, match="empty|limit is 4000"):
        manager.respond(message)
    with database.session() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(Conversation).where(Conversation.channel == "live")
            )
            == 0
        )


def test_the_terminal_never_gets_raw_control_characters(shop, monkeypatch):
    """An old row (stored before cleaning, written here past the store functions) holds
    escape sequences; `ask` and `chat` print the answer, its source and errors clean."""
    settings, database, _, _ = shop
    from chatbot.cli import dialogue as cli_dialogue

    question = "How do I clean the kettle filter?"
    seed_answer(
        database,
        question,
        "Rinse it \x1b[2J\x1b]0;owned\x07under warm water\u202e.",
        origin="agent_approved",
    )
    retriever = reindexed(settings, database)
    monkeypatch.setattr(
        cli_dialogue,
        "build_manager",
        lambda _settings: (make_manager(settings, database, retriever, generate=False), database),
    )
    runner = CliRunner()
    result = runner.invoke(main, ["ask", question])
    assert result.exit_code == 0, result.output
    assert "under warm water" in result.output and "source:" in result.output
    assert not has_unsafe(result.output.replace("\n", "").replace("\t", ""))
    result = runner.invoke(main, ["chat"], input=f"{question}\nRinse?\x1b[31m\n\n")
    assert result.exit_code == 0, result.output
    assert "under warm water" in result.output and not has_unsafe(
        result.output.replace("\n", "").replace("\t", "")
    )


# -- writing into a conversation that is not a live one ----------------------------------


def count_messages(database, conversation_id):
    with database.session() as session:
        return session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == conversation_id)
        )


def test_the_store_refuses_imported_and_closed_conversations(migrated_database):
    db = migrated_database
    with db.session() as session:
        imported = Conversation(source="history", channel="import", state="closed")
        closed = start_conversation(session=session)
        closed.state = "closed"
        session.add(imported)
        session.flush()
        ids = imported.id, closed.id
    for cid, why in zip(ids, ("imported support history", "is closed")):
        with pytest.raises(InputError, match=why):
            with db.session() as session:
                add_message(session=session, conversation_id=cid, role="customer", text="hello")
        assert count_messages(db, cid) == 0


def test_the_manager_and_ask_refuse_a_conversation_that_is_not_live(shop, monkeypatch):
    settings, database, retriever, _ = shop
    manager = make_manager(settings, database, retriever, generate=False)
    with database.session() as session:
        imported = session.scalars(
            select(Conversation.id).where(Conversation.channel == "import")
        ).first()
        before = [
            (m.turn_index, m.text)
            for m in conversation_messages(session=session, conversation_id=imported)
        ]
        state_before = session.get(Conversation, imported).state
    with pytest.raises(InputError, match=f"conversation {imported} is imported support history"):
        manager.respond("I want to talk to a human", imported)
    live = manager.respond(SHOP[1][0])
    with database.session() as session:
        session.get(Conversation, live.conversation_id).state = "closed"
    with pytest.raises(InputError, match="is closed"):
        manager.respond("hello again", live.conversation_id)

    from chatbot.cli import dialogue as cli_dialogue

    monkeypatch.setattr(cli_dialogue, "build_manager", lambda _settings: (manager, database))
    runner = CliRunner()
    result = runner.invoke(
        main, ["ask", "I want to talk to a human", "--conversation", str(imported)]
    )
    assert (
        result.exit_code == 1
        and "imported support history" in result.output
        and "Traceback" not in result.output
    )
    result = runner.invoke(main, ["ask", "hello", "--conversation", str(live.conversation_id)])
    assert result.exit_code == 1 and "is closed" in result.output
    result = runner.invoke(main, ["chat", "--conversation", str(imported)], input="hello\n\n")
    assert (
        result.exit_code == 0
        and "error:" in result.output
        and "imported support history" in result.output
    )
    with database.session() as session:
        after = [
            (m.turn_index, m.text)
            for m in conversation_messages(session=session, conversation_id=imported)
        ]
        state = (
            session.get(Conversation, imported).state,
            session.get(Conversation, imported).handoff_reason,
        )
    assert after == before and state == (state_before, None)  # not handed off, nothing appended
    assert count_messages(database, live.conversation_id) == 2
