"""The SQL store on SQLite and on a real PostgreSQL server: migrations, constraints,
transactions, and errors when the database is not there."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from chatbot.errors import StoreError
from chatbot.store.conversations import (
    add_message,
    conversation_messages,
    start_conversation,
    table_counts,
)
from chatbot.store.database import Database, check_connection, create_db_engine, require_schema
from chatbot.store.enums import AgentActionKind, PairOrigin, ReviewState, values
from chatbot.store.migrations import current_revision, head_revision, schema_differences, upgrade
from chatbot.store.schema import Conversation, Message, TrainingPair


def test_upgrade_creates_schema_and_is_idempotent(database_url):
    before, after = upgrade(database_url)
    assert before is None
    assert after == head_revision()
    tables = set(inspect(create_db_engine(database_url)).get_table_names())
    assert {"conversations", "messages", "imports", "training_pairs", "model_versions"} <= tables
    assert upgrade(database_url) == (after, after)


def test_migration_chain_matches_the_models(database_url):
    upgrade(database_url)
    assert schema_differences(database_url) == []


def test_messages_are_kept_in_turn_order(migrated_database):
    with migrated_database.session() as session:
        conversation = start_conversation(session=session)
        for role, text in [
            ("customer", "Where is my order?"),
            ("bot", "It ships today."),
            ("customer", "Thanks!"),
        ]:
            add_message(session=session, conversation_id=conversation.id, role=role, text=text)
    with migrated_database.session() as session:
        messages = conversation_messages(session=session, conversation_id=conversation.id)
        assert [(m.turn_index, m.role) for m in messages] == [
            (0, "customer"),
            (1, "bot"),
            (2, "customer"),
        ]
        assert table_counts(session=session)["messages"] == 3


def test_unknown_role_is_refused_by_the_database(migrated_database):
    with migrated_database.session() as session:
        conversation_id = start_conversation(session=session).id
    with pytest.raises(IntegrityError):
        with migrated_database.session() as session:
            session.add(
                Message(conversation_id=conversation_id, turn_index=0, role="robot", text="hi")
            )
    with pytest.raises(StoreError, match="unknown message role"):
        with migrated_database.session() as session:
            add_message(session=session, conversation_id=conversation_id, role="robot", text="hi")


def test_enum_columns_store_their_strings_and_refuse_a_misspelt_value(migrated_database):
    """Origins, review states and agent actions are StrEnums: the rows hold the plain
    strings the CHECK constraints name, reading gives the member back, and a value that is
    no member never reaches the database."""
    with migrated_database.session() as session:
        session.add(
            TrainingPair(
                source="t",
                origin=PairOrigin.AGENT_EDITED,
                split="train",
                context=[],
                target="ok",
                content_hash="e1",
            )
        )
    with migrated_database.session() as session:
        stored = session.execute(text("SELECT origin FROM training_pairs")).scalar_one()
        assert type(stored) is str and stored == "agent_edited"
        origin = session.scalars(select(TrainingPair.origin)).one()
        assert origin is PairOrigin.AGENT_EDITED
        assert session.scalars(
            select(TrainingPair.id).where(TrainingPair.origin == "agent_edited")
        ).all()
    with pytest.raises(StatementError, match="'agent_aproved' is not a valid PairOrigin"):
        with migrated_database.session() as session:
            session.add(
                TrainingPair(
                    source="t",
                    origin="agent_aproved",
                    split="train",
                    context=[],
                    target="no",
                    content_hash="e2",
                )
            )
    assert values(ReviewState) == ("pending", "approved", "edited", "rejected")
    assert values(AgentActionKind) == (
        "approve",
        "edit",
        "reject",
        "reply",
        "take_over",
        "hand_back",
        "release",
    )


def test_failed_transaction_leaves_nothing_behind(migrated_database):
    with pytest.raises(IntegrityError):
        with migrated_database.session() as session:
            conversation = start_conversation(session=session)
            add_message(
                session=session, conversation_id=conversation.id, role="customer", text="first"
            )
            # Same turn index twice violates the unique constraint: the whole unit fails.
            session.add(
                Message(conversation_id=conversation.id, turn_index=0, role="customer", text="dup")
            )
            session.flush()
    with migrated_database.session() as session:
        assert session.scalars(select(Conversation)).all() == []
        assert session.scalars(select(Message)).all() == []


def test_deleting_a_conversation_deletes_its_messages_and_pairs(migrated_database):
    with migrated_database.session() as session:
        conversation = start_conversation(session=session)
        add_message(session=session, conversation_id=conversation.id, role="customer", text="hello")
        session.add(
            TrainingPair(
                conversation_id=conversation.id,
                turn_index=1,
                source="t",
                split="train",
                context=[{"role": "customer", "text": "hello"}],
                target="Hi!",
                content_hash="h1",
            )
        )
    with migrated_database.session() as session:
        session.delete(session.get(Conversation, conversation.id))
    with migrated_database.session() as session:
        counts = table_counts(session=session)
        assert counts["messages"] == 0 and counts["training_pairs"] == 0


def test_json_columns_round_trip(migrated_database):
    context = [{"role": "customer", "text": 'Ünïcode ✓ and "quotes"'}]
    with migrated_database.session() as session:
        session.add(
            TrainingPair(
                source="t",
                split="val",
                context=context,
                target="ok",
                content_hash="h2",
                labels={"A": 0.5, "S": -1.0},
            )
        )
    with migrated_database.session() as session:
        pair = session.scalars(select(TrainingPair)).one()
        assert pair.context == context
        assert pair.labels == {"A": 0.5, "S": -1.0}


def test_unmigrated_database_is_reported(database_url):
    engine = create_db_engine(database_url)
    with pytest.raises(StoreError, match="chatbot db upgrade"):
        require_schema(engine)
    assert current_revision(database_url) is None


def test_a_database_behind_this_version_is_told_to_upgrade(database_url):
    """New code on an old database: one clear message, not a missing-column traceback;
    after `chatbot db upgrade` it is accepted."""
    upgrade(database_url, "0004_slots")
    engine = create_db_engine(database_url)
    try:
        with pytest.raises(
            StoreError,
            match=rf"schema revision 0004_slots.*needs {head_revision()}.*run: chatbot db upgrade",
        ):
            require_schema(engine)
        upgrade(database_url)
        require_schema(engine)
    finally:
        engine.dispose()


def test_server_that_is_down_gives_one_clear_error():
    engine = create_db_engine("postgresql+psycopg://user:secret@127.0.0.1:9/chatbot")
    with pytest.raises(StoreError) as info:
        check_connection(engine)
    message = str(info.value)
    assert message.startswith(
        "cannot connect to database postgresql+psycopg://user:***@127.0.0.1:9/chatbot"
    )
    assert "secret" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "not a valid SQLAlchemy URL"),
        ("mysqlx://u@h/db", "unknown database dialect"),
        ("sqlite:////no/such/dir/chatbot.db", "directory /no/such/dir does not exist"),
    ],
)
def test_bad_urls_are_named(url, expected):
    with pytest.raises(StoreError, match=expected):
        Database(url)
