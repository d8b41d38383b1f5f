"""What a customer's thumbs-down does beyond being stored: the reply it is on goes to
the agents' queue, flagged for review for the reason "customer said wrong" (with the
customer's comment, if any, in the conversation view), and the pair (the customer's
context -> the reply that was sent) becomes a negative example. A thumbs-up, or the
thumbs-down taken back, takes the flag away again unless something else keeps the
reply there.

Rules:
- Only a reply whose text the customer saw as the assistant's reply counts (decision
  answer, answer_flagged, act, decline or clarify: `queue.SHOWN_DECISIONS`); a thumbs on
  a hold or hand-off notice, or on an agent's message, is stored and nothing more.
- The flag is the reply's `review_status` set to pending, by a conditional UPDATE from
  NULL: a reply already waiting (a flagged answer) stays as it is, and one an agent has
  already reviewed keeps the agent's decision. The queue shows a pending reply with a
  thumbs-down in its own group ("customer said wrong").
- Taking the flag away is the reverse UPDATE, from pending back to NULL, for a reply the
  assistant did not itself queue for review (answer_flagged, held): a flagged answer
  stays in the queue, and a reply an agent reviewed in the meantime keeps that decision.
- The negative example is the feedback row itself (rating -1, with its comment), read
  with its context by `customer_negatives`. It is never a training pair, so training,
  the index and the answer cache, which read only `training_pairs`, never take it for
  a good answer.

Functions take the session by keyword (the repository convention) and run inside the
caller's transaction. Where the job ends: checking the customer's token and storing the
rating is `chatbot.support.customer`'s; the queue and the conversation view are
`chatbot.support.queue`'s; what agents then do is `chatbot.support.review`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chatbot.store.database import matched_rows
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.enums import ReviewState
from chatbot.store.schema import Message
from chatbot.store.support_schema import Feedback
from chatbot.support.queue import SHOWN_DECISIONS, aware, cached_pair_id
from chatbot.support.review_pairs import context_before

NEGATIVE_LABEL = "customer_said_wrong"
# Decisions the assistant itself queues for review: a thumbs taken back leaves them waiting.
_QUEUED_BY_ASSISTANT = ("answer_flagged", "held")


@dataclass(frozen=True)
class NegativeExample:
    """A reply the customer said was wrong, as a negative example for whatever ranks
    candidates: never a training target, never a cached answer."""

    context: list[dict[str, str]]  # the turns before, oldest first; the last is the customer's
    text: str  # the reply the customer was sent
    comment: str | None  # what the customer wrote with the thumbs-down
    conversation_id: int
    reply_id: int
    decision: str
    review_status: ReviewState | None  # what agents decided since (pending: nobody yet)
    cached_pair_id: int | None  # the approved pair it was sent from (answer cache), if any
    rated_at: datetime | None
    label: str = NEGATIVE_LABEL


def rating_changed(
    *, session: Session, conversation_id: int, message_id: int, rating: int | None
) -> bool:
    """The customer's rating of bot message `message_id` is now `rating` (None: taken
    back): flag its reply for review on -1, unflag it otherwise. True when the reply's
    review status changed."""
    shown_reply = (
        DialogueReply.conversation_id == conversation_id,
        DialogueReply.reply_message_id == message_id,
        DialogueReply.decision.in_(SHOWN_DECISIONS),
    )
    if rating == -1:
        statement = (
            update(DialogueReply)
            .where(*shown_reply, DialogueReply.review_status.is_(None))
            .values(review_status=ReviewState.PENDING)
        )
    else:
        statement = (
            update(DialogueReply)
            .where(
                *shown_reply,
                DialogueReply.decision.not_in(_QUEUED_BY_ASSISTANT),
                DialogueReply.review_status == ReviewState.PENDING,
            )
            .values(review_status=None)
        )
    result = session.execute(statement.execution_options(synchronize_session=False))
    return matched_rows(result) > 0


def customer_negatives(*, session: Session, limit: int | None = None) -> list[NegativeExample]:
    """Every reply a customer gave a thumbs-down to (and has not taken back), with the
    turns it answered, oldest thumbs-down first."""
    query = (
        select(Feedback, DialogueReply, Message.text)
        .join(
            DialogueReply,
            (DialogueReply.conversation_id == Feedback.conversation_id)
            & (DialogueReply.reply_message_id == Feedback.message_id),
        )
        .join(Message, Message.id == Feedback.message_id)
        .where(Feedback.rating == -1, DialogueReply.decision.in_(SHOWN_DECISIONS))
        .order_by(Feedback.id)
    )
    if limit is not None:
        query = query.limit(limit)
    out = []
    for feedback, reply, text in session.execute(query).all():
        if not (text or "").strip():
            continue
        out.append(
            NegativeExample(
                context=context_before(session, reply.conversation_id, reply.message_id),
                text=text,
                comment=feedback.comment,
                conversation_id=reply.conversation_id,
                reply_id=reply.id,
                decision=reply.decision,
                review_status=reply.review_status,
                cached_pair_id=cached_pair_id(reply.candidates),
                rated_at=aware(feedback.created_at),
            )
        )
    return out
