"""Queries the dialogue manager needs: the conversation's state and turns, the origin
and labels of retrieved pairs, the previous smoothed confidence, storing a reply
record, and handing a conversation to a human (with the reason, the time, and nobody
assigned yet: it waits in the agents' queue) and back. Each function takes the session
as a keyword argument; committing is the caller's `Database.session()` block. Who may
take, answer or hand back a conversation is `chatbot.support.review`'s business."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.errors import StoreError
from chatbot.pairs import answers_opening_message
from chatbot.store.conversations import add_message
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message, TrainingPair, utcnow
from chatbot.text.specifics import find_specifics

# Identifiers that tie a conversation to one case (an order, a parcel, a ticket).
CASE_IDENTIFIERS = frozenset({"order_number", "tracking_number", "ticket_number"})


@dataclass(frozen=True)
class PairInfo:
    origin: str
    labels: dict[str, Any]
    question: str  # the last customer turn of the pair's context
    reply_slotted: str | None = None  # the reply with typed slots (None: not slotted yet)
    case_bound: bool = (
        False  # its customer had named their order, parcel or ticket: the reply was about that case
    )
    opening: bool = True  # the reply to the conversation's first customer message (what its topic label is about)


def get_conversation(*, session: Session, conversation_id: int) -> Conversation:
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise StoreError(f"conversation {conversation_id} does not exist")
    return conversation


def earlier_turns(
    *, session: Session, conversation_id: int, before_turn: int, limit: int
) -> list[Message]:
    """The last `limit` messages before `before_turn`, oldest first."""
    rows = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.turn_index < before_turn)
        .order_by(Message.turn_index.desc())
        .limit(limit)
    )
    return list(reversed(list(rows)))


def earlier_customer_texts(
    *, session: Session, conversation_id: int, before_turn: int
) -> list[str]:
    return list(
        session.scalars(
            select(Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.turn_index < before_turn,
                Message.role == "customer",
            )
            .order_by(Message.turn_index)
        )
    )


def pair_infos(*, session: Session, pair_ids: Sequence[int]) -> dict[int, PairInfo]:
    if not pair_ids:
        return {}
    rows = session.execute(
        select(
            TrainingPair.id,
            TrainingPair.origin,
            TrainingPair.labels,
            TrainingPair.context,
            TrainingPair.target_slotted,
        ).where(TrainingPair.id.in_(list(pair_ids)))
    )
    infos = {}
    for pair_id, origin, labels, context, reply_slotted in rows:
        customer = [
            t.get("text", "")
            for t in (context or [])
            if isinstance(t, dict) and t.get("role") == "customer"
        ]
        bound = any(f.kind in CASE_IDENTIFIERS for text in customer for f in find_specifics(text))
        infos[pair_id] = PairInfo(
            origin,
            labels or {},
            customer[-1] if customer else "",
            reply_slotted,
            bound,
            opening=answers_opening_message(context),
        )
    return infos


@dataclass(frozen=True)
class LastReply:
    """What the assistant did with the customer's previous message: its decision, reason
    and choices (a clarifying question's), the text shown, and that message's own text."""

    decision: str
    reason: str
    options: list[str]
    shown_text: str
    question: str
    turn_index: int  # of that customer message


def last_reply(*, session: Session, conversation_id: int, before_turn: int) -> LastReply | None:
    """The reply record of the conversation's last customer message before `before_turn`."""
    row = session.execute(
        select(DialogueReply, Message.text, Message.turn_index)
        .join(Message, Message.id == DialogueReply.message_id)
        .where(DialogueReply.conversation_id == conversation_id, Message.turn_index < before_turn)
        .order_by(Message.turn_index.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    reply, question, turn_index = row
    return LastReply(
        reply.decision,
        reply.reason,
        list(reply.options or []),
        reply.shown_text or "",
        question,
        turn_index,
    )


def last_smoothed_confidence(*, session: Session, conversation_id: int) -> float | None:
    return session.scalar(
        select(DialogueReply.smoothed_confidence)
        .where(
            DialogueReply.conversation_id == conversation_id,
            DialogueReply.smoothed_confidence.is_not(None),
        )
        .order_by(DialogueReply.id.desc())
        .limit(1)
    )


def save_reply(*, session: Session, record: dict[str, Any], bot_text: str | None) -> DialogueReply:
    """Store the reply record and, when something is shown to the customer, the bot message."""
    reply_message_id = None
    if bot_text:
        message = add_message(
            session=session,
            conversation_id=record["conversation_id"],
            role="bot",
            text=bot_text,
            meta={
                "decision": record["decision"],
                "confidence": record.get("confidence"),
                # a clarification's choices, so a reloaded widget shows its buttons again
                **({"options": list(record["options"])} if record.get("options") else {}),
            },
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


def hand_off(*, session: Session, conversation_id: int, reason: str) -> Conversation:
    """A human takes over: the conversation waits in the agents' queue (nobody assigned)
    from now, for `reason`."""
    conversation = get_conversation(session=session, conversation_id=conversation_id)
    now = utcnow()
    conversation.state = "handed_off"
    conversation.handoff_reason = reason[:200]
    conversation.handed_off_at = now
    conversation.assigned_user_id = None
    conversation.updated_at = now
    return conversation


def request_human(*, session: Session, conversation_id: int, message: str) -> Message | None:
    """The customer pressed "talk to a person": hand off (reason
    "customer_asked_for_human") and append `message`, the hand-off notice, as a bot
    message, which is returned. Nothing happens (None) when a human is already in charge."""
    conversation = get_conversation(session=session, conversation_id=conversation_id)
    if conversation.state == "handed_off":
        return None
    hand_off(session=session, conversation_id=conversation_id, reason="customer_asked_for_human")
    return add_message(
        session=session,
        conversation_id=conversation_id,
        role="bot",
        text=message,
        meta={"decision": "handoff", "reason": "customer_asked_for_human", "button": True},
    )


def hand_back(*, session: Session, conversation_id: int) -> None:
    """The conversation goes back to the assistant: it answers the next message. The
    reason and time of the hand-off are kept as history; the assignment is cleared."""
    conversation = get_conversation(session=session, conversation_id=conversation_id)
    if conversation.state != "handed_off":
        raise StoreError(f"conversation {conversation_id} is {conversation.state}, not handed off")
    set_state(session=session, conversation_id=conversation_id, state="open")
    conversation.assigned_user_id = None


def replies_of(*, session: Session, conversation_id: int) -> list[DialogueReply]:
    return list(
        session.scalars(
            select(DialogueReply)
            .where(DialogueReply.conversation_id == conversation_id)
            .order_by(DialogueReply.id)
        )
    )


@dataclass(frozen=True)
class ApprovedPair:
    """A pair the answer cache may serve: the question it answered and the answer."""

    id: int
    conversation_id: int | None
    turn_index: int | None
    source: str
    origin: str
    question: str  # the last customer turn of the pair's context
    answer: str


def recent_pair_ids(*, session: Session, origins: Sequence[str], limit: int) -> list[int]:
    """Ids of the newest `limit` pairs of `origins`, newest first (ids only: cheap to ask every message)."""
    if not origins or limit <= 0:
        return []
    return list(
        session.scalars(
            select(TrainingPair.id)
            .where(TrainingPair.origin.in_(list(origins)))
            .order_by(TrainingPair.id.desc())
            .limit(limit)
        )
    )


def approved_pairs(*, session: Session, pair_ids: Sequence[int]) -> list[ApprovedPair]:
    if not pair_ids:
        return []
    rows = session.execute(
        select(
            TrainingPair.id,
            TrainingPair.conversation_id,
            TrainingPair.turn_index,
            TrainingPair.source,
            TrainingPair.origin,
            TrainingPair.context,
            TrainingPair.target,
            TrainingPair.target_slotted,
        ).where(TrainingPair.id.in_(list(pair_ids)))
    )
    out = []
    for pair_id, conversation_id, turn_index, source, origin, context, target, shared in rows:
        customer = [
            t.get("text", "")
            for t in (context or [])
            if isinstance(t, dict) and t.get("role") == "customer"
        ]
        out.append(
            ApprovedPair(
                pair_id,
                conversation_id,
                turn_index,
                source,
                origin,
                customer[-1] if customer else "",
                # The slotted form: what an agent wrote for one customer, shared.
                shared if shared is not None else (target or ""),
            )
        )
    return out
