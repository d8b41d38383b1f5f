"""Repository functions for live conversations and their messages.

Each takes the session as a keyword argument and leaves committing to the caller's
`Database.session()` block. Importing history is `chatbot.ingest`'s job; redacting a
live message is the dialogue manager's (it has the settings), before it calls here.

Message order cannot collide: `add_message` first updates the conversation row (its
`updated_at`, the time of the last activity), which takes that row's write lock until
the transaction ends: a row lock on PostgreSQL, the database's single write lock on
SQLite (a transaction whose first statement writes waits for the lock, up to the
busy timeout, instead of working from an old snapshot). Only then does it read the
highest turn index, so two writers into one conversation number their messages one
after the other, never the same.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from chatbot.errors import InputError, StoreError
from chatbot.store.database import matched_rows
from chatbot.store.schema import (
    MESSAGE_ROLES,
    Conversation,
    Import,
    Message,
    ModelVersion,
    TrainingPair,
    core_table,
    utcnow,
)
from chatbot.text.sanitize import clean_text


def start_conversation(
    *, session: Session, source: str = "widget", meta: dict[str, Any] | None = None
) -> Conversation:
    conversation = Conversation(source=source, channel="live", meta=meta or {})
    session.add(conversation)
    session.flush()
    return conversation


def lock_conversation(*, session: Session, conversation_id: int) -> tuple[str, str]:
    """Take the conversation's write lock for the rest of the transaction (marking it
    active now) and return its (channel, state); StoreError when it does not exist."""
    conversations = core_table(Conversation)
    locked = session.execute(
        update(conversations)
        .where(conversations.c.id == conversation_id)
        .values(updated_at=utcnow())
    )
    if not matched_rows(locked):
        raise StoreError(f"conversation {conversation_id} does not exist")
    row = session.execute(
        select(Conversation.channel, Conversation.state).where(Conversation.id == conversation_id)
    ).one()
    return row.channel, row.state


def check_writable(conversation_id: int, channel: str, state: str) -> None:
    """InputError unless new turns may go into the conversation: a live one, not closed.
    Imported history is training data, never a chat to continue."""
    if channel != "live":
        raise InputError(
            f"conversation {conversation_id} is imported support history, not a live conversation; "
            "nothing can be added to it (start a new conversation instead)"
        )
    if state == "closed":
        raise InputError(
            f"conversation {conversation_id} is closed; nothing can be added to it (start a new conversation instead)"
        )


def add_message(
    *,
    session: Session,
    conversation_id: int,
    role: str,
    text: str,
    meta: dict[str, Any] | None = None,
) -> Message:
    """Append a message at the next turn index of a live, open conversation (see the
    module docstring for why two writers never collide). Control and bidirectional
    characters are removed from the text (`clean_text`; a `CleanText`, such as the
    customer's message the dialogue manager admitted, was cleaned where it came in and is
    kept as it is); InputError for imported or closed conversations, StoreError for
    unknown ones."""
    if role not in MESSAGE_ROLES:
        raise StoreError(
            f"unknown message role {role!r}; expected one of {', '.join(MESSAGE_ROLES)}"
        )
    channel, state = lock_conversation(session=session, conversation_id=conversation_id)
    check_writable(conversation_id, channel, state)
    next_turn = session.scalar(
        select(func.coalesce(func.max(Message.turn_index) + 1, 0)).where(
            Message.conversation_id == conversation_id
        )
    )
    message = Message(
        conversation_id=conversation_id,
        turn_index=next_turn,
        role=role,
        text=clean_text(text),
        meta=meta or {},
    )
    session.add(message)
    session.flush()
    return message


def conversation_messages(*, session: Session, conversation_id: int) -> list[Message]:
    return list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.turn_index)
        )
    )


def table_counts(*, session: Session) -> dict[str, int]:
    """Row counts of the main tables, for status pages."""
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Import, Conversation, Message, TrainingPair, ModelVersion)
    }
