"""SQLAlchemy tables for the people around the assistant: agents' and admins' accounts,
what agents did with conversations and suggestions, customers' thumbs up/down, and the
background jobs (training, index rebuilds) the admin console starts.

Structure only; the queries live in `chatbot.accounts`, `chatbot.support` and
`chatbot.jobs`. Created by migration 0003_people (which also adds the customer access
token and the assignment columns to `conversations`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from chatbot.store.enums import AgentActionKind, values
from chatbot.store.schema import Base, EnumString, one_of, utcnow

USER_ROLES = ("agent", "admin")
JOB_KINDS = ("train", "index")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


class User(Base):
    """An agent or an admin. Customers have no account: they are anonymous sessions."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped by a password change or removal: every session signed with the old value
    # is refused on its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (CheckConstraint(one_of("role", USER_ROLES), name="role"),)


class AgentAction(Base):
    """One thing an agent did: a decision on a suggested reply (with the original
    suggestion and, for edits, the new text), a free reply, or taking over / handing
    back a conversation. A rejection is kept here as a negative example for rankers."""

    __tablename__ = "agent_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("dialogue_replies.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(80))  # kept when the account is removed
    action: Mapped[AgentActionKind] = mapped_column(EnumString(AgentActionKind, 20))
    text: Mapped[str | None] = mapped_column(Text)  # what was sent (approve, edit, reply)
    original_text: Mapped[str | None] = mapped_column(Text)  # the assistant's suggestion
    reason: Mapped[str | None] = mapped_column(Text)  # why it was rejected
    pair_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_pairs.id", ondelete="SET NULL")
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )

    __table_args__ = (CheckConstraint(one_of("action", values(AgentActionKind)), name="action"),)


class Feedback(Base):
    """A customer's thumbs up (+1) or down (-1) on one reply, with an optional comment.
    One per reply message: a second click replaces the first."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )

    __table_args__ = (
        UniqueConstraint("message_id", name="uq_feedback_message_id"),
        CheckConstraint("rating IN (-1, 1)", name="rating"),
    )


class Job(Base):
    """Long work an admin started from the console (a training run, an index rebuild),
    run in its own process so that serving goes on; its progress events are appended to
    `progress` by that process, and `pid` lets the console cancel it."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    log_path: Mapped[str | None] = mapped_column(String(1000))
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(one_of("kind", JOB_KINDS), name="kind"),
        CheckConstraint(one_of("status", JOB_STATES), name="status"),
    )


PRIVATE_ANSWER_STATES = ("pending", "approved", "discarded")


class PrivateAnswer(Base):
    """An agent's answer (approved or edited) that holds personal data its slotted form
    cannot hide (an IBAN, a passport number, an address): it was sent to its own
    customer, but it becomes a shared answer (a training pair the answer cache, the
    index and training read) only once an admin approves it. Discarding it clears its
    text. Created by migration 0010_private_answers; `chatbot.support.sharing` decides."""

    __tablename__ = "private_answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    reply_id: Mapped[int | None] = mapped_column(
        ForeignKey("dialogue_replies.id", ondelete="SET NULL")
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    turn_index: Mapped[int] = mapped_column(Integer)
    origin: Mapped[str] = mapped_column(String(40))  # the pair's origin once shared
    agent: Mapped[str] = mapped_column(String(80))
    context: Mapped[list[Any]] = mapped_column(JSON, default=list)
    text: Mapped[str | None] = mapped_column(Text)  # None once discarded
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    held_kinds: Mapped[list[Any]] = mapped_column(JSON, default=list)  # why: "iban", "id"...
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    decided_by: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pair_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_pairs.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )

    __table_args__ = (CheckConstraint(one_of("state", PRIVATE_ANSWER_STATES), name="state"),)
