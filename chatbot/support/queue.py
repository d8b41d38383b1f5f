"""The agents' queue and what an agent sees when opening one conversation.

The queue holds the conversations that need a human: those handed off (with the
reason, waiting since the hand-off, and the agent who took it, if any) and those with a
suggested reply waiting for review (held: not sent yet; flagged: sent, to be checked;
customer said wrong: sent, and the customer gave it a thumbs-down, see
`chatbot.support.feedback`). Oldest waiting first, with counts per reason group and an
optional filter by group. `conversation_detail` gives every message (with the customer's
thumbs and comment on it), the suggestion under review (or the last one) with its
confidence, the customer's verdict on it, the approved pair it was served from when it
came from the answer cache, the past answers it cites (with their full text from the
training pairs, so the agent can open them), the refinement trace and the candidates.

Read-only: what agents do about it is `chatbot.support.review`'s job, showing it
`ui/agent.py`'s. Functions take the session first (by keyword, as the repository convention has it,
or by position).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from chatbot.errors import InputError, StoreError
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.enums import PairOrigin, ReviewState
from chatbot.store.schema import Conversation, Message, TrainingPair
from chatbot.store.support_schema import Feedback, User

# Reason groups, in the order the filter lists them: key -> label.
REASON_GROUPS: dict[str, str] = {
    "customer_asked": "customer asked",
    "out_of_scope": "out of scope",
    "handoff_topic": "past answers hand off",
    "low_confidence": "low confidence",
    "loop": "loop",
    "assistant_failed": "assistant failed",
    "interrupted": "interrupted (server restarted)",
    "taken_over": "taken over by agent",
    "customer_said_wrong": "customer said wrong",
    "held": "held for review",
    "flagged": "flagged",
    "other": "other",
}
TAKEN_OVER_REASON = "taken_over_by_agent"
# The reason a reply the customer gave a thumbs-down to waits for review.
CUSTOMER_SAID_WRONG = "customer said wrong"
# Decisions whose text the customer saw as the assistant's reply (not a hold or
# hand-off notice): those a thumbs-down flags, and those an approval does not send again.
SHOWN_DECISIONS = ("answer", "answer_flagged", "act", "decline", "clarify")
# Which group an open conversation shows when replies of several groups wait: the first.
_PENDING_RANK = ("held", "customer_said_wrong", "flagged")
PREVIEW_CHARS = 160


def reason_group(reason: str | None) -> str:
    """The group of a hand-off reason as the dialogue manager writes it
    ("customer_asked_for_human", "out_of_scope: ...", "loop: asked 3 times", ...)."""
    r = (reason or "").strip().lower()
    if r.startswith("customer_asked"):
        return "customer_asked"
    if r.startswith("out_of_scope"):
        return "out_of_scope"
    if r.startswith("past answers hand off"):
        return "handoff_topic"
    if r.startswith("low_confidence"):
        return "low_confidence"
    if r.startswith("loop"):
        return "loop"
    if r.startswith(("assistant_failed", "no_candidate")):
        return "assistant_failed"
    if r.startswith("interrupted"):
        return "interrupted"
    if r.startswith(TAKEN_OVER_REASON):
        return "taken_over"
    return "other"


@overload
def aware(moment: datetime) -> datetime: ...
@overload
def aware(moment: None) -> None: ...
def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass
class QueueItem:
    conversation_id: int
    state: str  # "handed_off", or "open" with a reply waiting for review
    # The hand-off reason, or why a reply waits for review: its decision ("held" /
    # "answer_flagged") or CUSTOMER_SAID_WRONG.
    reason: str
    group: str  # key of REASON_GROUPS
    waiting_since: datetime
    owner: str | None  # username of the agent who took it
    owner_id: int | None
    pending_replies: int
    preview: str  # the customer's last message, shortened
    last_message_at: datetime | None
    source: str

    @property
    def group_label(self) -> str:
        return REASON_GROUPS[self.group]


@dataclass
class QueueView:
    items: list[QueueItem]
    counts: dict[str, int]  # per reason group, before the filter
    total: int


def load_queue(session: Session, reason: str | None = None, limit: int = 500) -> QueueView:
    """The conversations that need a human, oldest waiting first; `reason` is a key of
    REASON_GROUPS (None or "all": every one)."""
    if reason in ("", "all"):
        reason = None
    if reason is not None and reason not in REASON_GROUPS:
        raise InputError(
            f"unknown reason filter {reason!r}; expected one of {', '.join(REASON_GROUPS)}"
        )
    items: dict[int, QueueItem] = {}
    handed = session.execute(
        select(
            Conversation.id,
            Conversation.handoff_reason,
            Conversation.handed_off_at,
            Conversation.updated_at,
            Conversation.assigned_user_id,
            User.username,
            Conversation.source,
        )
        .outerjoin(User, User.id == Conversation.assigned_user_id)
        .where(Conversation.state == "handed_off")
    )
    for cid, why, at, updated, owner_id, owner, source in handed:
        items[cid] = QueueItem(
            cid,
            "handed_off",
            why or "",
            reason_group(why),
            aware(at or updated),
            owner,
            owner_id,
            0,
            "",
            None,
            source,
        )
    # Feedback holds one row per message: the outer join counts the thumbs-downs without
    # repeating a reply.
    pending = session.execute(
        select(
            DialogueReply.conversation_id,
            DialogueReply.decision,
            func.count(Feedback.id),
            func.count(),
            func.min(DialogueReply.created_at),
            Conversation.source,
        )
        .join(Conversation, Conversation.id == DialogueReply.conversation_id)
        .outerjoin(
            Feedback,
            and_(Feedback.message_id == DialogueReply.reply_message_id, Feedback.rating == -1),
        )
        .where(DialogueReply.review_status == ReviewState.PENDING, Conversation.state != "closed")
        .group_by(DialogueReply.conversation_id, DialogueReply.decision, Conversation.source)
    )
    for cid, decision, said_wrong, count, since, source in pending:
        since = aware(since)
        group = _pending_group(decision, said_wrong > 0)
        why = CUSTOMER_SAID_WRONG if group == "customer_said_wrong" else decision
        item = items.get(cid)
        if item is None:
            items[cid] = QueueItem(
                cid, "open", why, group, since, None, None, count, "", None, source
            )
            continue
        if item.state == "open" and _PENDING_RANK.index(group) < _PENDING_RANK.index(item.group):
            item.reason, item.group = why, group  # held, then customer said wrong, then flagged
        item.pending_replies += count
        item.waiting_since = min(item.waiting_since, since)
    counts = {key: 0 for key in REASON_GROUPS}
    for item in items.values():
        counts[item.group] += 1
    chosen = sorted(
        (i for i in items.values() if reason is None or i.group == reason),
        key=lambda i: (i.waiting_since, i.conversation_id),
    )[:limit]
    _add_previews(session, chosen)
    return QueueView(items=chosen, counts=counts, total=len(items))


def _pending_group(decision: str, said_wrong: bool) -> str:
    """The group of a reply waiting for review: held (not sent), customer said wrong (a
    thumbs-down on what the customer saw) or flagged."""
    if decision == "held":
        return "held"
    if said_wrong and decision in SHOWN_DECISIONS:
        return "customer_said_wrong"
    return "flagged"


def _add_previews(session: Session, items: list[QueueItem]) -> None:
    if not items:
        return
    by_id = {i.conversation_id: i for i in items}
    ids = list(by_id)
    last_customer = (
        select(Message.conversation_id, func.max(Message.turn_index).label("turn"))
        .where(Message.conversation_id.in_(ids), Message.role == "customer")
        .group_by(Message.conversation_id)
        .subquery()
    )
    for cid, text in session.execute(
        select(Message.conversation_id, Message.text).join(
            last_customer,
            and_(
                Message.conversation_id == last_customer.c.conversation_id,
                Message.turn_index == last_customer.c.turn,
            ),
        )
    ):
        flat = " ".join(text.split())
        by_id[cid].preview = flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"
    for cid, at in session.execute(
        select(Message.conversation_id, func.max(Message.created_at))
        .where(Message.conversation_id.in_(ids))
        .group_by(Message.conversation_id)
    ):
        by_id[cid].last_message_at = aware(at)


# -- one conversation ---------------------------------------------------------------


@dataclass(frozen=True)
class CustomerFeedback:
    """The customer's thumbs on one reply: +1 or -1, with their comment if they wrote one."""

    rating: int
    comment: str | None
    created_at: datetime | None

    @property
    def said_wrong(self) -> bool:
        return self.rating == -1


@dataclass
class MessageView:
    id: int
    turn_index: int
    role: str  # customer, bot, agent, system
    text: str
    created_at: datetime | None
    agent: str | None = None  # who sent it, for agents' messages
    feedback: CustomerFeedback | None = None  # the customer's thumbs on it


@dataclass
class CitedAnswer:
    """A past answer a suggestion cites: the citation, and the whole pair behind it."""

    pair_id: int
    conversation_id: int | None
    turn_index: int | None
    source: str
    score: float | None
    snippet: str
    question: str = ""  # the customer message the past answer replied to
    answer: str = ""  # the full past answer ("" when the pair is gone)
    origin: PairOrigin | None = None
    found: bool = False


@dataclass
class Suggestion:
    reply_id: int
    message_id: int  # the customer message it answers
    question: str
    decision: str
    reason: str
    text: str
    confidence: float | None
    smoothed_confidence: float | None
    review_status: ReviewState | None
    sent: bool
    model_version: str | None
    created_at: datetime | None
    citations: list[CitedAnswer] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    # The customer's thumbs on the message that showed it (a thumbs-down: "customer said wrong").
    feedback: CustomerFeedback | None = None
    # The approved pair it was sent from when it came from the answer cache (see `citations`).
    cached_pair_id: int | None = None

    @property
    def shown_to_customer(self) -> bool:
        """The suggestion's text already reached the customer (an answer, flagged or not,
        a conversation act, a decline or a clarifying question)."""
        return self.decision in SHOWN_DECISIONS

    @property
    def customer_said_wrong(self) -> bool:
        """The customer gave what they were shown of it a thumbs-down (not a notice)."""
        return self.shown_to_customer and self.feedback is not None and self.feedback.said_wrong


@dataclass
class ConversationDetail:
    conversation_id: int
    state: str
    source: str
    channel: str
    created_at: datetime | None
    handoff_reason: str | None
    handed_off_at: datetime | None
    owner: str | None
    owner_id: int | None
    messages: list[MessageView]
    suggestion: Suggestion | None
    pending_reply_ids: list[int]


def conversation_detail(session: Session, conversation_id: int) -> ConversationDetail:
    """Everything the agent needs to act on one conversation. The suggestion is the
    oldest reply still waiting for review, or else the newest reply (whose text may be
    empty: a hand-off without a draft, which the agent answers by writing one)."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None:
        raise StoreError(f"conversation {conversation_id} does not exist")
    owner = (
        session.get(User, conversation.assigned_user_id) if conversation.assigned_user_id else None
    )
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.turn_index)
        )
    )
    feedback = {
        row.message_id: CustomerFeedback(row.rating, row.comment, aware(row.created_at))
        for row in session.scalars(
            select(Feedback).where(Feedback.conversation_id == conversation_id)
        )
    }
    views = [
        MessageView(
            m.id,
            m.turn_index,
            m.role,
            m.text,
            aware(m.created_at),
            (m.meta or {}).get("agent"),
            feedback.get(m.id),
        )
        for m in messages
    ]
    replies = list(
        session.scalars(
            select(DialogueReply)
            .where(DialogueReply.conversation_id == conversation_id)
            .order_by(DialogueReply.id)
        )
    )
    pending = [r for r in replies if r.review_status == ReviewState.PENDING]
    chosen = pending[0] if pending else (replies[-1] if replies else None)
    return ConversationDetail(
        conversation_id=conversation.id,
        state=conversation.state,
        source=conversation.source,
        channel=conversation.channel,
        created_at=aware(conversation.created_at),
        handoff_reason=conversation.handoff_reason,
        handed_off_at=aware(conversation.handed_off_at),
        owner=owner.username if owner else None,
        owner_id=conversation.assigned_user_id,
        messages=views,
        suggestion=_suggestion(session, chosen, messages, feedback) if chosen else None,
        pending_reply_ids=[r.id for r in pending],
    )


def _suggestion(
    session: Session,
    reply: DialogueReply,
    messages: list[Message],
    feedback: dict[int, CustomerFeedback],
) -> Suggestion:
    question = next((m.text for m in messages if m.id == reply.message_id), "")
    shown = reply.reply_message_id
    return Suggestion(
        reply_id=reply.id,
        message_id=reply.message_id,
        question=question,
        decision=reply.decision,
        reason=reply.reason,
        text=reply.text or "",
        confidence=reply.confidence,
        smoothed_confidence=reply.smoothed_confidence,
        review_status=reply.review_status,
        sent=reply.sent,
        model_version=reply.model_version,
        created_at=aware(reply.created_at),
        citations=cited_answers(session=session, citations=reply.citations or []),
        trace=list(reply.trace or []),
        candidates=list(reply.candidates or []),
        feedback=feedback.get(shown) if shown is not None else None,
        cached_pair_id=cached_pair_id(reply.candidates),
    )


def cached_pair_id(candidates: object) -> int | None:
    """The approved pair a reply was sent from, when the answer cache answered it (its
    one candidate has origin "cache"); None otherwise."""
    for c in candidates if isinstance(candidates, list) else []:
        if isinstance(c, dict) and c.get("origin") == "cache" and isinstance(c.get("pair_id"), int):
            return int(c["pair_id"])
    return None


def cited_answers(*, session: Session, citations: list[dict[str, Any]]) -> list[CitedAnswer]:
    """The stored citations with the full pair each one points at."""
    ids = [
        c["pair_id"] for c in citations if isinstance(c, dict) and isinstance(c.get("pair_id"), int)
    ]
    pairs: dict[int, tuple[PairOrigin, str, str]] = {}
    if ids:
        for pair_id, origin, context, target in session.execute(
            select(
                TrainingPair.id, TrainingPair.origin, TrainingPair.context, TrainingPair.target
            ).where(TrainingPair.id.in_(ids))
        ):
            customer = [
                t.get("text", "")
                for t in (context or [])
                if isinstance(t, dict) and t.get("role") == "customer"
            ]
            pairs[pair_id] = (origin, customer[-1] if customer else "", target or "")
    out = []
    for c in citations:
        if not isinstance(c, dict) or not isinstance(c.get("pair_id"), int):
            continue
        found = pairs.get(c["pair_id"])
        out.append(
            CitedAnswer(
                pair_id=c["pair_id"],
                conversation_id=c.get("conversation_id"),
                turn_index=c.get("turn_index"),
                source=str(c.get("source") or ""),
                score=c.get("score"),
                snippet=str(c.get("snippet") or ""),
                question=found[1] if found else "",
                answer=found[2] if found else "",
                origin=found[0] if found else None,
                found=found is not None,
            )
        )
    return out
