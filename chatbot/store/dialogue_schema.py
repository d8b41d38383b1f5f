"""SQLAlchemy table for the dialogue manager's reply records: one row per customer
message answered (or not), with the decision, its reason, the confidence, citations,
the refinement trace and the time spent per stage. Structure only; the queries live in
`chatbot.dialogue.repository`. Created by migration 0002_dialogue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from chatbot.store.enums import ReviewState, values
from chatbot.store.schema import Base, EnumString, one_of, utcnow

REPLY_DECISIONS = (
    "answer",
    "answer_flagged",
    "held",
    "handoff",
    "silent",
    "act",
    "decline",
    "clarify",
)


class DialogueReply(Base):
    """What the assistant did with one customer message."""

    __tablename__ = "dialogue_replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), unique=True
    )
    reply_message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    decision: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(60))
    text: Mapped[str] = mapped_column(Text, default="")
    shown_text: Mapped[str] = mapped_column(Text, default="")
    sent: Mapped[bool] = mapped_column(Boolean, default=False)
    confidence: Mapped[float | None] = mapped_column(Float)
    smoothed_confidence: Mapped[float | None] = mapped_column(Float)
    citations: Mapped[list[Any]] = mapped_column(JSON, default=list)
    trace: Mapped[list[Any]] = mapped_column(JSON, default=list)
    candidates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    model_version: Mapped[str | None] = mapped_column(String(200))
    review_status: Mapped[ReviewState | None] = mapped_column(
        EnumString(ReviewState, 20), index=True
    )
    options: Mapped[list[Any]] = mapped_column(JSON, default=list)  # a clarification's choices
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint(one_of("decision", REPLY_DECISIONS), name="decision"),
        CheckConstraint(one_of("review_status", values(ReviewState)), name="review_status"),
    )
