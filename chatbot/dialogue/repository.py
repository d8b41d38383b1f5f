"""Queries the dialogue manager needs: the conversation's state and turns, the origin
and labels of retrieved pairs, the previous smoothed confidence, storing a reply
record, and handing a conversation to a human and back. Each function takes the session
as a keyword argument; committing is the caller's `Database.session()` block."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.errors import StoreError
from chatbot.store.conversations import add_message
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message, TrainingPair, utcnow


@dataclass(frozen=True)
class PairInfo:
    origin: str
    labels: dict[str, Any]
    question: str  # the last customer turn of the pair's context


def get_conversation(*, session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise StoreError(f"conversation {conversation_id} does not exist")
    return conversation


def earlier_turns(*, session: Session, conversation_id: int, before_turn: int, limit: int) -> list[Message]:
    """The last `limit` messages before `before_turn`, oldest first."""
    rows = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.turn_index < before_turn)
        .order_by(Message.turn_index.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


def earlier_customer_texts(*, session: Session, conversation_id: int, before_turn: int) -> list[str]:
    return list(
        session.scalars(
            select(Message.text)
            .where(Message.conversation_id == conversation_id, Message.turn_index < before_turn, Message.role == "customer")
            .order_by(Message.turn_index)
        )
    )


def pair_infos(*, session: Session, pair_ids: Sequence[int]) -> dict[int, PairInfo]:
    if not pair_ids:
        return {}
    rows = session.execute(
        select(TrainingPair.id, TrainingPair.origin, TrainingPair.labels, TrainingPair.context).where(
            TrainingPair.id.in_(list(pair_ids))
        )
    )
    infos = {}
    for pair_id, origin, labels, context in rows:
        customer = [t.get("text", "") for t in (context or []) if isinstance(t, dict) and t.get("role") == "customer"]
        infos[pair_id] = PairInfo(origin, labels or {}, customer[-1] if customer else "")
    return infos


def last_smoothed_confidence(*, session: Session, conversation_id: int) -> float | None:
    return session.scalar(
        select(DialogueReply.smoothed_confidence)
        .where(DialogueReply.conversation_id == conversation_id, DialogueReply.smoothed_confidence.is_not(None))
        .order_by(DialogueReply.id.desc())
        .limit(1)
    )


def save_reply(*, session: Session, record: dict[str, Any], bot_text: str | None) -> DialogueReply:
    """Store the reply record and, when something is shown to the customer, the bot message."""
    reply_message_id = None
    if bot_text:
        message = add_message(
            session=session, conversation_id=record["conversation_id"], role="bot", text=bot_text,
            meta={"decision": record["decision"], "confidence": record.get("confidence")},
        )
        reply_message_id = message.id
    row = DialogueReply(**record, reply_message_id=reply_message_id)
    session.add(row)
    session.flush()
    return row


def set_state(*, session: Session, conversation_id: int, state: str) -> None:
    conversation = get_conversation(session=session, conversation_id=conversation_id)
    conversation.state = state
    conversation.updated_at = utcnow()


def hand_back(*, session: Session, conversation_id: int) -> None:
    """An agent gives the conversation back to the assistant."""
    conversation = get_conversation(session=session, conversation_id=conversation_id)
    if conversation.state != "handed_off":
        raise StoreError(f"conversation {conversation_id} is {conversation.state}, not handed off")
    set_state(session=session, conversation_id=conversation_id, state="open")


def replies_of(*, session: Session, conversation_id: int) -> list[DialogueReply]:
    return list(
        session.scalars(
            select(DialogueReply).where(DialogueReply.conversation_id == conversation_id).order_by(DialogueReply.id)
        )
    )
