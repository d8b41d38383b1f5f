"""Repository functions for live conversations and their messages.

Each takes the session as a keyword argument and leaves committing to the caller's
`Database.session()` block. Importing history is `chatbot.ingest`'s job."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chatbot.errors import StoreError
from chatbot.store.schema import (
    MESSAGE_ROLES,
    Conversation,
    Import,
    Message,
    ModelVersion,
    TrainingPair,
)


def start_conversation(*, session: Session, source: str = "widget", meta: dict | None = None) -> Conversation:
    conversation = Conversation(source=source, channel="live", meta=meta or {})
    session.add(conversation)
    session.flush()
    return conversation


def add_message(*, session: Session, conversation_id: int, role: str, text: str, meta: dict | None = None) -> Message:
    """Append a message at the next turn index of the conversation."""
    if role not in MESSAGE_ROLES:
        raise StoreError(f"unknown message role {role!r}; expected one of {', '.join(MESSAGE_ROLES)}")
    if session.get(Conversation, conversation_id) is None:
        raise StoreError(f"conversation {conversation_id} does not exist")
    next_turn = session.scalar(
        select(func.coalesce(func.max(Message.turn_index) + 1, 0)).where(Message.conversation_id == conversation_id)
    )
    message = Message(conversation_id=conversation_id, turn_index=next_turn, role=role, text=text, meta=meta or {})
    session.add(message)
    session.flush()
    return message


def conversation_messages(*, session: Session, conversation_id: int) -> list[Message]:
    return list(
        session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.turn_index)
        )
    )


def table_counts(*, session: Session) -> dict[str, int]:
    """Row counts of the main tables, for status pages."""
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Import, Conversation, Message, TrainingPair, ModelVersion)
    }
