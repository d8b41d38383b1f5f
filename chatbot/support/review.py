"""What an agent does with a conversation and its suggested replies: take it over,
approve a suggestion and send it, edit it then send, reject it (with a reason), reply
freely, release it to the queue, or hand it back to the assistant.

Each action is one transaction and writes one `AgentAction` row (who, when, the
original suggestion). Ownership: the first agent to take a conversation owns it (a
conditional UPDATE, so two agents at once cannot both win); every action by another
agent is refused with AccessDenied naming the owner; approving, editing or replying to a
handed-off conversation nobody has taken takes it first, and a free reply always does
(a human speaking is a human in charge). Approvals and edits become training pairs
(origin `agent_approved` / `agent_edited`, split "train", source "agent-review") that
the answer cache serves at once, and the next index build and training run use
(training weights them by origin), in their slotted form; one that holds personal data
slotting cannot hide (an IBAN, a passport number) stays private to its conversation
until an admin approves it (`chatbot.support.sharing`). What an agent sends reaches
its own customer exactly as written; the copy in `agent_actions` is redacted with the
serving redactor when one is given. A rejection stays in `agent_actions` as a negative
example (`rejected_examples`). A reply a customer gave a thumbs-down to waits here like
a flagged one (`chatbot.support.feedback`); the agent's decision on it stands whatever
the customer clicks afterwards.

Where its job ends: checking the caller's login and role is `chatbot.web.auth`'s; the
queue and the conversation view are `chatbot.support.queue`'s; the training pair an
approval or edit becomes, and the rejected examples, `chatbot.support.review_pairs`'.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypedDict, Unpack

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from chatbot.dialogue import repository as dialogue_repo
from chatbot.errors import AccessDenied, InputError, StoreError
from chatbot.store.conversations import add_message
from chatbot.store.database import Database, matched_rows
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.enums import AgentActionKind, ReviewState
from chatbot.store.schema import Conversation, Message, utcnow
from chatbot.store.support_schema import AgentAction, User
from chatbot.support.queue import SHOWN_DECISIONS, TAKEN_OVER_REASON
from chatbot.support.review_pairs import share_answer
from chatbot.text.redact import Redactor

MAX_TEXT_CHARS = 4000
MAX_REASON_CHARS = 1000
# Replies the customer already has (an answer, or an act, decline or clarifying question a
# customer's thumbs-down sent for review): approving one sends nothing new.
_SHOWN_DECISIONS = SHOWN_DECISIONS


class Agent(Protocol):
    """Who acts: `chatbot.accounts.users.UserInfo` (or anything with these two, read-only)."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


@dataclass
class ActionResult:
    action: AgentActionKind
    conversation_id: int
    message: str  # what happened, in words an agent reads
    reply_id: int | None = None
    message_id: int | None = None  # the message the customer sees
    pair_id: int | None = None  # the training pair written
    took_over: bool = False
    held_id: int | None = None  # the answer kept private for personal data (no pair)


# -- checks --------------------------------------------------------------------------


def _text(text: str | None, what: str, limit: int = MAX_TEXT_CHARS) -> str:
    if text is None or not str(text).strip():
        raise InputError(f"the {what} is empty")
    text = str(text).strip()
    if len(text) > limit:
        raise InputError(f"the {what} is {len(text)} characters long; the limit is {limit}")
    return text


def _agent(user: Agent | None) -> Agent:
    if (
        user is None
        or not isinstance(getattr(user, "id", None), int)
        or not getattr(user, "username", None)
    ):
        raise AccessDenied("no agent is logged in")
    return user


def _owner_name(session: Session, user_id: int | None) -> str:
    name = (
        session.scalar(select(User.username).where(User.id == user_id))
        if user_id is not None
        else None
    )
    return name or "another agent"


def _lock(session: Session, conversation_id: int) -> Conversation:
    """Lock the conversation's row for the rest of the transaction (an UPDATE: a row lock
    on PostgreSQL, the write lock on SQLite) and read it fresh."""
    result = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    conversation = (
        session.get(Conversation, conversation_id, populate_existing=True)
        if matched_rows(result)
        else None
    )
    if conversation is None:
        raise StoreError(f"conversation {conversation_id} does not exist")
    return conversation


def _refuse_if_owned_by_another(session: Session, conversation: Conversation, user: Agent) -> None:
    owner = conversation.assigned_user_id
    if owner is not None and owner != user.id:
        raise AccessDenied(
            f"conversation {conversation.id} is being handled by {_owner_name(session, owner)}"
        )


def _take(session: Session, conversation_id: int, user: Agent) -> bool:
    """Make `user` the owner: True when taken now, False when it was theirs already;
    AccessDenied when another agent has it. One conditional UPDATE decides, so of two
    agents taking it at once exactly one wins. A conversation that was not handed off
    is handed to the human now (reason "taken_over_by_agent")."""
    now = utcnow()
    handed_off = Conversation.state == "handed_off"
    result = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.assigned_user_id.is_(None))
        .values(
            assigned_user_id=user.id,
            handoff_reason=case(
                (handed_off, func.coalesce(Conversation.handoff_reason, TAKEN_OVER_REASON)),
                else_=TAKEN_OVER_REASON,
            ),
            handed_off_at=case(
                (handed_off, func.coalesce(Conversation.handed_off_at, now)), else_=now
            ),
            state="handed_off",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if matched_rows(result) == 1:
        return True
    conversation = _lock(session, conversation_id)
    _refuse_if_owned_by_another(session, conversation, user)
    return False


def _pending_suggestion(session: Session, conversation_id: int) -> DialogueReply | None:
    return session.scalar(
        select(DialogueReply)
        .where(
            DialogueReply.conversation_id == conversation_id,
            DialogueReply.review_status == ReviewState.PENDING,
        )
        .order_by(DialogueReply.id)
        .limit(1)
    )


class _ActionFields(TypedDict, total=False):
    """What an `AgentAction` row may say besides who did what to which conversation."""

    reply_id: int | None
    text: str | None
    original_text: str | None
    reason: str | None
    pair_id: int | None
    message_id: int | None


def _record(
    session: Session,
    user: Agent,
    action: AgentActionKind,
    conversation_id: int,
    **fields: Unpack[_ActionFields],
) -> AgentAction:
    row = AgentAction(
        conversation_id=conversation_id,
        user_id=user.id,
        username=user.username,
        action=action,
        created_at=utcnow(),
        **fields,
    )
    session.add(row)
    session.flush()
    return row


def _record_take_over(session: Session, user: Agent, conversation_id: int) -> None:
    pending = _pending_suggestion(session, conversation_id)
    _record(
        session,
        user,
        AgentActionKind.TAKE_OVER,
        conversation_id,
        reply_id=pending.id if pending else None,
        original_text=pending.text if pending else None,
    )


# -- taking and giving back ------------------------------------------------------------


def take_over(database: Database, conversation_id: int, user: Agent) -> ActionResult:
    """`user` takes the conversation; the second of two agents gets AccessDenied
    ("conversation N is being handled by alice"). Taking one's own again changes nothing."""
    user = _agent(user)
    with database.session() as session:
        took = _take(session, conversation_id, user)
        if took:
            _record_take_over(session, user, conversation_id)
    message = (
        f"you took conversation {conversation_id}"
        if took
        else f"conversation {conversation_id} is already yours"
    )
    return ActionResult(AgentActionKind.TAKE_OVER, conversation_id, message, took_over=took)


def hand_back(database: Database, conversation_id: int, user: Agent) -> ActionResult:
    """The conversation goes back to the assistant, which answers the next message."""
    user = _agent(user)
    with database.session() as session:
        conversation = _lock(session, conversation_id)
        _refuse_if_owned_by_another(session, conversation, user)
        if conversation.state != "handed_off":
            raise InputError(
                f"conversation {conversation_id} is not with a human; the assistant is answering it"
            )
        dialogue_repo.hand_back(session=session, conversation_id=conversation_id)
        pending = _pending_suggestion(session, conversation_id)
        _record(
            session,
            user,
            AgentActionKind.HAND_BACK,
            conversation_id,
            reply_id=pending.id if pending else None,
            original_text=pending.text if pending else None,
        )
    return ActionResult(
        AgentActionKind.HAND_BACK,
        conversation_id,
        f"conversation {conversation_id} is back with the assistant; it answers the next message",
    )


def release(database: Database, conversation_id: int, user: Agent) -> ActionResult:
    """The owner puts the conversation back in the queue (still with a human) for another agent."""
    user = _agent(user)
    with database.session() as session:
        conversation = _lock(session, conversation_id)
        _refuse_if_owned_by_another(session, conversation, user)
        if conversation.assigned_user_id is None:
            raise InputError(f"conversation {conversation_id} is not assigned to you")
        conversation.assigned_user_id = None
        _record(session, user, AgentActionKind.RELEASE, conversation_id)
    return ActionResult(
        AgentActionKind.RELEASE,
        conversation_id,
        f"conversation {conversation_id} is back in the queue",
    )


# -- messages --------------------------------------------------------------------------


def reply(
    database: Database,
    conversation_id: int,
    user: Agent,
    text: str,
    *,
    redactor: Redactor | None = None,
) -> ActionResult:
    """A message the agent writes; the agent takes the conversation if nobody has. The
    customer gets it as written; with `redactor` (serving passes the dialogue manager's),
    the copy kept in `agent_actions` is redacted. A free reply is never shared."""
    user = _agent(user)
    text = _text(text, "reply")
    kept = redactor.redact(text) if redactor is not None else text
    with database.session() as session:
        took = _take(session, conversation_id, user)
        if took:
            _record_take_over(session, user, conversation_id)
        message = add_message(
            session=session,
            conversation_id=conversation_id,
            role="agent",
            text=text,
            meta={"action": AgentActionKind.REPLY, "agent": user.username},
        )
        _record(
            session, user, AgentActionKind.REPLY, conversation_id, text=kept, message_id=message.id
        )
    return ActionResult(
        AgentActionKind.REPLY,
        conversation_id,
        "your reply was sent",
        message_id=message.id,
        took_over=took,
    )


def approve(
    database: Database, reply_id: int, user: Agent, *, redactor: Redactor | None = None
) -> ActionResult:
    """Send the suggestion as it is (once: a reply the customer already saw is only
    marked approved) and keep it as an `agent_approved` training pair (or held back,
    see `chatbot.support.sharing`)."""
    return _decide(database, reply_id, _agent(user), edited_text=None, redactor=redactor)


def edit(
    database: Database, reply_id: int, user: Agent, text: str, *, redactor: Redactor | None = None
) -> ActionResult:
    """Send the agent's version of the suggestion and keep it as an `agent_edited`
    pair with the original in its labels. An "edit" that changes nothing is an approval;
    a reply without a draft (a hand-off) can be "edited" too: the agent writes the
    answer to the customer message it belongs to."""
    text = _text(text, "edited reply")
    # The customer gets it as written; what is shared is its slotted form, or nothing
    # until an admin approves it (`chatbot.support.sharing`).
    return _decide(database, reply_id, _agent(user), edited_text=text, redactor=redactor)


def reject(database: Database, reply_id: int, user: Agent, reason: str) -> ActionResult:
    """The suggestion is wrong: nothing is sent; the rejection (suggestion and reason)
    is kept as a negative example."""
    user = _agent(user)
    reason = _text(reason, "reason for rejecting", MAX_REASON_CHARS)
    with database.session() as session:
        row = _reply(session, reply_id)
        conversation = _lock(session, row.conversation_id)
        _refuse_if_owned_by_another(session, conversation, user)
        _mark(session, row, ReviewState.REJECTED)
        _record(
            session,
            user,
            AgentActionKind.REJECT,
            row.conversation_id,
            reply_id=row.id,
            original_text=row.text,
            reason=reason,
        )
    return ActionResult(
        AgentActionKind.REJECT,
        row.conversation_id,
        f"suggestion {reply_id} rejected; nothing was sent",
        reply_id=reply_id,
    )


def _reply(session: Session, reply_id: int, *, need_text: bool = True) -> DialogueReply:
    row = session.get(DialogueReply, reply_id)
    if row is None:
        raise StoreError(f"suggested reply {reply_id} does not exist")
    if need_text and not (row.text or "").strip():
        raise InputError(
            f"reply {reply_id} has no suggested text to review ({row.decision}: {row.reason}); "
            "write the answer instead"
        )
    if row.review_status not in (None, ReviewState.PENDING):
        raise InputError(f"suggestion {reply_id} was already {row.review_status}")
    return row


def _mark(session: Session, row: DialogueReply, status: ReviewState) -> None:
    """Set the review status once: a decision already taken (by a double click, or in
    another worker a moment ago) is not taken again."""
    result = session.execute(
        update(DialogueReply)
        .where(
            DialogueReply.id == row.id,
            or_(
                DialogueReply.review_status.is_(None),
                DialogueReply.review_status == ReviewState.PENDING,
            ),
        )
        .values(review_status=status)
        .execution_options(synchronize_session=False)
    )
    if matched_rows(result) != 1:
        now = session.scalar(select(DialogueReply.review_status).where(DialogueReply.id == row.id))
        raise InputError(f"suggestion {row.id} was already {now}")


def _decide(
    database: Database,
    reply_id: int,
    user: Agent,
    *,
    edited_text: str | None,
    redactor: Redactor | None = None,
) -> ActionResult:
    with database.session() as session:
        # A hand-off without a draft (out of scope, asked for a person) has nothing to
        # approve, but the agent's answer to that message is an edit all the same.
        row = _reply(session, reply_id, need_text=edited_text is None)
        original = row.text or ""
        if edited_text is not None and edited_text != original.strip():
            action, text = AgentActionKind.EDIT, edited_text
        else:
            action, text = AgentActionKind.APPROVE, original
        conversation = _lock(session, row.conversation_id)
        _refuse_if_owned_by_another(session, conversation, user)
        took = False
        if conversation.state == "handed_off" and conversation.assigned_user_id is None:
            took = _take(session, conversation.id, user)
            if took:
                _record_take_over(session, user, conversation.id)
        _mark(
            session,
            row,
            ReviewState.APPROVED if action == AgentActionKind.APPROVE else ReviewState.EDITED,
        )
        if (
            action == AgentActionKind.APPROVE
            and row.decision in _SHOWN_DECISIONS
            and row.reply_message_id is not None
        ):
            # The customer already has this text: don't send it twice.
            sent: Message | None = session.get(Message, row.reply_message_id)
            sent_now = False
        else:
            sent = add_message(
                session=session,
                conversation_id=row.conversation_id,
                role="agent",
                text=text,
                meta={"reply_id": row.id, "action": action, "agent": user.username},
            )
            sent_now = True
        if sent is None:  # deleted a moment ago (retention): nothing to keep a pair of
            raise StoreError(f"the message suggestion {reply_id} was sent as no longer exists")
        pair, held = share_answer(
            session,
            row,
            user.username,
            action=action,
            text=text,
            message=sent,
            allowlist=redactor.allow if redactor is not None else (),
        )
        _record(
            session,
            user,
            action,
            row.conversation_id,
            reply_id=row.id,
            text=redactor.redact(text) if redactor is not None else text,
            original_text=original,
            pair_id=pair.id if pair is not None else None,
            message_id=sent.id,
        )
    verb = "approved" if action == AgentActionKind.APPROVE else "edited"
    message = (
        f"suggestion {reply_id} {verb} and sent"
        if sent_now
        else f"suggestion {reply_id} approved (the customer already had it)"
    )
    if held is not None:
        message += (
            f"; it holds personal data ({', '.join(held.held_kinds)}), so it stays private to "
            "this conversation until an admin approves it as a shared answer"
        )
    return ActionResult(
        action,
        row.conversation_id,
        message,
        reply_id=row.id,
        message_id=sent.id,
        pair_id=pair.id if pair is not None else None,
        took_over=took,
        held_id=held.id if held is not None else None,
    )
