"""SQLAlchemy 2.x table definitions: the shape of everything the product keeps.

Tables are created only by the Alembic migrations in `migrations/`; a test checks that
the migration chain and these models agree. This module defines structure only:
queries live in the repository modules that use them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from chatbot.store.enums import PairOrigin, values

MESSAGE_ROLES = ("customer", "agent", "bot", "system")
SPLITS = ("train", "val", "test")
CONVERSATION_STATES = ("open", "handed_off", "closed")
VERSION_STATES = ("candidate", "promoted", "retired")

# Explicit constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def one_of(column: str, allowed: tuple[str, ...]) -> str:
    """A CHECK constraint's text: `column` holds one of `allowed` (the SQL the migrations hold)."""
    return f"{column} IN ({', '.join(repr(v) for v in allowed)})"


E = TypeVar("E", bound=StrEnum)


class EnumString(TypeDecorator[E]):
    """A `StrEnum` in a VARCHAR column: written as its value (rows hold the strings they
    always did), read back as the member. A string that is no member is refused before
    it reaches the database; the column's CHECK constraint still guards other writers."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[E], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: object, dialect: Dialect) -> E | None:
        return None if value is None else self.enum(str(value))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


def core_table(model: type[Base]) -> Table:
    """A model's Core table, for statements that bypass the ORM (SQLAlchemy declares
    `__table__` as any FromClause)."""
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to a table")
    return table


class Import(Base):
    """One run of importing one file: what came in, and what became of it."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(200))
    file_name: Mapped[str] = mapped_column(String(1000))
    file_sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint(one_of("status", ("running", "done", "failed")), name="status"),
    )


class Conversation(Base):
    """A support conversation: imported history or a live chat."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(300))
    source: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20), default="import")
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), index=True
    )
    content_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    split: Mapped[str | None] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(20), default="open")
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # A live chat's customer proves it is theirs with a random token kept in their
    # browser; only its SHA-256 is stored.
    access_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # While a human is in charge: who took it (None = waiting in the queue), why and since when.
    assigned_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    handoff_reason: Mapped[str | None] = mapped_column(String(200))
    handed_off_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.turn_index", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint(one_of("channel", ("import", "live")), name="channel"),
        CheckConstraint(one_of("split", SPLITS), name="split"),
        CheckConstraint(one_of("state", CONVERSATION_STATES), name="state"),
        Index("ix_conversations_source_external_id", "source", "external_id"),
        Index("ix_conversations_state", "state"),  # the agents' queue, polled by every open console
    )


class Message(Base):
    """One turn of a conversation. `original_text` is kept only when an admin asks."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    turn_index: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    original_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")

    __table_args__ = (
        UniqueConstraint("conversation_id", "turn_index", name="uq_messages_conversation_turn"),
        CheckConstraint(one_of("role", MESSAGE_ROLES), name="role"),
    )


class TrainingPair(Base):
    """Customer context -> agent reply, with where it came from and which split it is in."""

    __tablename__ = "training_pairs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    turn_index: Mapped[int | None] = mapped_column(Integer)
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("imports.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(200), index=True)
    origin: Mapped[PairOrigin] = mapped_column(
        EnumString(PairOrigin, 20), default=PairOrigin.IMPORTED
    )
    split: Mapped[str] = mapped_column(String(10), index=True)
    # [{"role": "customer", "text": "..."}, ...] oldest first; the last item is the
    # customer message the target answers.
    context: Mapped[list[Any]] = mapped_column(JSON)
    target: Mapped[str] = mapped_column(Text)
    # The target with typed slots ("{order_number}", "{customer_name}"...) for what belonged
    # to its own conversation, and what was found (chatbot.text.specifics / constants).
    target_slotted: Mapped[str | None] = mapped_column(Text)
    slots: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True))
    quality: Mapped[float | None] = mapped_column(Float)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(one_of("origin", values(PairOrigin)), name="origin"),
        CheckConstraint(one_of("split", SPLITS), name="split"),
        Index(
            "ix_training_pairs_origin_id", "origin", "id"
        ),  # the answer cache reads agents' pairs, newest first
    )


class ModelVersion(Base):
    """A trained reply model (or adapted embedder): where it is, what made it, how good it is."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="reply")
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="candidate")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    data_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint(one_of("kind", ("reply", "embedder", "ranker")), name="kind"),
        CheckConstraint(one_of("status", VERSION_STATES), name="status"),
    )


class KnownValue(Base):
    """A value found in past agent replies, counted over the whole store: a company
    constant (in at least `ingest.constant_min_conversations` conversations) or the name
    of a person (never a constant). Rewritten as a whole after each import."""

    __tablename__ = "known_values"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    value: Mapped[str] = mapped_column(String(300))
    conversations: Mapped[int] = mapped_column(Integer, default=0)
    constant: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Tables defined in their own modules, imported here so that Alembic sees them.
from chatbot.store import (  # noqa: E402,F401
    access_schema,
    dialogue_schema,
    orders_schema,
    support_schema,
)
