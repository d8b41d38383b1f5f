"""What a reviewed suggestion teaches: an approved or edited answer as a training pair
(origin `agent_approved` / `agent_edited`, source "agent-review") in its slotted form,
or held private to its conversation when personal data is left after slotting
(`chatbot.support.sharing`); the turns such a pair answers; and every rejected
suggestion as a negative example. Taking the agent's action, its ownership checks and
its `AgentAction` row are `chatbot.support.review`'s job.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.errors import StoreError
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.enums import AgentActionKind, PairOrigin
from chatbot.store.schema import Message, TrainingPair, utcnow
from chatbot.store.support_schema import AgentAction, PrivateAnswer
from chatbot.support import sharing

CONTEXT_TURNS = 8  # turns kept before an agent's answer in its training pair
PAIR_SOURCE = "agent-review"
# Bot messages that are notices about the process, not part of the conversation.
_NOTICE_DECISIONS = ("held", "handoff")


class RejectedExample(NamedTuple):
    context: list[
        dict[str, str]
    ]  # the turns before, oldest first; the last is the customer message
    text: str  # the suggestion the agent rejected


def context_before(
    session: Session, conversation_id: int, customer_message_id: int, turns: int = CONTEXT_TURNS
) -> list[dict[str, str]]:
    """The turns up to and including the customer message a reply answers, oldest
    first, without the assistant's hold and hand-off notices."""
    answered = session.get(Message, customer_message_id)
    if answered is None:
        raise StoreError(f"message {customer_message_id} does not exist")
    rows = session.scalars(
        select(Message)
        .where(
            Message.conversation_id == conversation_id, Message.turn_index <= answered.turn_index
        )
        .order_by(Message.turn_index)
    )
    context = [
        {"role": m.role, "text": m.text}
        for m in rows
        if m.role in ("customer", "agent", "bot")
        and not (m.role == "bot" and (m.meta or {}).get("decision") in _NOTICE_DECISIONS)
    ]
    return context[-turns:]


def pair_hash(conversation_id: int, turn_index: int, text: str) -> str:
    return hashlib.sha256(
        f"{PAIR_SOURCE}\x00{conversation_id}\x00{turn_index}\x00{text}".encode()
    ).hexdigest()


def share_answer(
    session: Session,
    row: DialogueReply,
    agent: str,
    *,
    action: AgentActionKind,
    text: str,
    message: Message,
    allowlist: tuple[str, ...] = (),
) -> tuple[TrainingPair | None, PrivateAnswer | None]:
    """The answer `agent` (a username) approved or edited, as a shared training pair in
    its slotted form, or, when personal data is left after slotting, held back for an
    admin (`chatbot.support.sharing`)."""
    origin = (
        PairOrigin.AGENT_APPROVED if action == AgentActionKind.APPROVE else PairOrigin.AGENT_EDITED
    )
    context = context_before(session, row.conversation_id, row.message_id)
    labels = {
        "agent": agent,
        "reviewed_at": utcnow().isoformat(),
        "original_suggestion": row.text,
        "reply_id": row.id,
        "action": action,
        "decision": row.decision,
        "reason": row.reason,
        "confidence": row.confidence,
    }
    form = sharing.shared_form(session, text, context, allowlist)
    if form.private:
        held = sharing.hold(
            session,
            conversation_id=row.conversation_id,
            reply_id=row.id,
            message_id=message.id,
            turn_index=message.turn_index,
            origin=str(origin),
            agent=agent,
            context=context,
            text=text,
            labels=labels,
            form=form,
        )
        return None, held
    pair = sharing.write_pair(
        session,
        conversation_id=row.conversation_id,
        turn_index=message.turn_index,
        source=PAIR_SOURCE,
        origin=origin,
        context=context,
        text=text,
        labels=labels,
        content_hash=pair_hash(row.conversation_id, message.turn_index, text),
        form=form,
    )
    return pair, None


def rejected_examples(session: Session, *, limit: int | None = None) -> list[RejectedExample]:
    """Every rejected suggestion with the turns it answered, oldest rejection first:
    negative examples for whatever ranks candidates."""
    query = (
        select(AgentAction.conversation_id, AgentAction.original_text, DialogueReply.message_id)
        .join(DialogueReply, DialogueReply.id == AgentAction.reply_id)
        .where(AgentAction.action == AgentActionKind.REJECT, AgentAction.original_text.is_not(None))
        .order_by(AgentAction.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        RejectedExample(context_before(session, conversation_id, message_id), text)
        for conversation_id, text, message_id in session.execute(query).all()
        if text and text.strip()
    ]
