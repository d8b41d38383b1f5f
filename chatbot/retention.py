"""Retention: live conversations with no activity for N days are deleted, or anonymised
(their texts blanked, their counts, decisions, timings and ratings kept), together
with their messages, reply records, customers' feedback, agents' actions and held answers.

A conversation has expired when it was created and last updated before the cut-off and
none of its messages is newer. Imported history is left alone unless asked for
(`include_imported`). Training pairs made from an expired conversation (agents'
approvals and edits) are the company's answers and are kept, detached from the
deleted conversation, unless `delete_pairs` is given.

Work goes in batches, one transaction each: a batch is done completely or not at all,
and a run that is stopped can simply be run again. Inside a batch the conversations
are locked first and checked again, so a customer who writes at that moment keeps
their conversation. Scheduling (cron, a systemd timer) and printing are the caller's
job (`chatbot retention run`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import ColumnElement, delete, exists, func, select, update
from sqlalchemy.orm import Session

from chatbot.errors import InputError
from chatbot.settings_section import Section
from chatbot.store.database import Database
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message, TrainingPair, core_table, utcnow
from chatbot.store.support_schema import AgentAction, Feedback, PrivateAnswer


class RetentionSettings(Section):
    """The `retention` section (`CHATBOT_RETENTION__*`): how long live conversations are
    kept; `chatbot retention run` applies it (from cron, for instance)."""

    days: int | None = Field(
        default=None,
        ge=1,
        description="Live conversations with no activity for this many days are deleted or anonymised; None: kept for ever.",
    )
    mode: Literal["delete", "anonymise"] = Field(
        default="delete",
        description="delete: remove them; anonymise: keep counts and decisions, blank every text.",
    )
    batch_size: int = Field(
        default=200, ge=1, le=10_000, description="Conversations per transaction."
    )


log = logging.getLogger(__name__)

Mode = Literal["delete", "anonymise"]
MODES = ("delete", "anonymise")
# What an anonymised message says instead of its text.
REMOVED = "[removed]"
_MARK = "retention"  # conversations.meta key of an anonymised conversation
# The tables whose rows belong to a conversation.
_Child = (
    type[Message] | type[DialogueReply] | type[Feedback] | type[AgentAction] | type[TrainingPair]
)


@dataclass
class RetentionReport:
    """What a run did (or, with dry_run, would do)."""

    mode: Mode
    days: int
    cutoff: datetime
    dry_run: bool
    include_imported: bool
    delete_pairs: bool
    conversations: int = 0
    messages: int = 0
    replies: int = 0
    feedback: int = 0
    agent_actions: int = 0
    pairs_deleted: int = 0
    pairs_kept: int = 0
    batches: int = 0
    conversation_ids: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(self).items()
        }

    def describe(self) -> str:
        verb = {"delete": "deleted", "anonymise": "anonymised"}[self.mode]
        if self.dry_run:
            verb = "would be " + verb
        kinds = "live and imported" if self.include_imported else "live"
        pairs = (
            f"{self.pairs_deleted} training pairs deleted"
            if self.delete_pairs
            else f"{self.pairs_kept} training pairs made from them kept"
        )
        if self.dry_run:
            pairs = pairs.replace("deleted", "would be deleted").replace(" kept", " would be kept")
        return (
            f"{self.conversations} {kinds} conversations with no activity for {self.days} days "
            f"(before {self.cutoff:%Y-%m-%d %H:%M} UTC) {verb}: {self.messages} messages, {self.replies} reply records, "
            f"{self.feedback} feedback, {self.agent_actions} agent actions; {pairs}"
        )


def _expired(cutoff: datetime, channels: tuple[str, ...]) -> tuple[ColumnElement[bool], ...]:
    newer_message = exists().where(
        Message.conversation_id == Conversation.id, Message.created_at >= cutoff
    )
    return (
        Conversation.channel.in_(channels),
        Conversation.created_at < cutoff,
        Conversation.updated_at < cutoff,
        ~newer_message,
    )


def _count(session: Session, model: _Child, ids: list[int]) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(model).where(model.conversation_id.in_(ids))
        )
        or 0
    )


def _counts(session: Session, ids: list[int]) -> dict[str, int]:
    return {
        "messages": _count(session, Message, ids),
        "replies": _count(session, DialogueReply, ids),
        "feedback": _count(session, Feedback, ids),
        "agent_actions": _count(session, AgentAction, ids),
        "pairs": _count(session, TrainingPair, ids),
    }


def apply_retention(
    database: Database,
    *,
    days: int,
    mode: Mode = "delete",
    include_imported: bool = False,
    delete_pairs: bool = False,
    dry_run: bool = False,
    batch_size: int = 200,
    now: datetime | None = None,
) -> RetentionReport:
    """Delete or anonymise the conversations with no activity for `days` days; see the
    module docstring. InputError for bad arguments, StoreError when the store fails."""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InputError(f"retention days must be a whole number of at least 1, not {days!r}")
    if mode not in MODES:
        raise InputError(f"retention mode must be one of {', '.join(MODES)}, not {mode!r}")
    if batch_size < 1:
        raise InputError(f"retention batch size must be at least 1, not {batch_size!r}")
    cutoff = (now or utcnow()) - timedelta(days=days)
    channels = ("live", "import") if include_imported else ("live",)
    report = RetentionReport(mode, days, cutoff, dry_run, include_imported, delete_pairs)
    after_id = 0
    while True:
        with database.session() as session:
            candidates = list(
                session.execute(
                    select(Conversation.id, Conversation.meta)
                    .where(Conversation.id > after_id, *_expired(cutoff, channels))
                    .order_by(Conversation.id)
                    .limit(batch_size)
                )
            )
            if not candidates:
                break
            after_id = candidates[-1].id
            ids = [
                row.id for row in candidates if mode == "delete" or _MARK not in (row.meta or {})
            ]
            if not ids:
                continue
            if not dry_run:
                # Lock them (a row lock on PostgreSQL, the write lock on SQLite), then
                # check again: a message that arrived meanwhile keeps its conversation.
                table = core_table(Conversation)
                session.execute(  # a write that changes nothing (updated_at named: no onupdate)
                    update(table)
                    .where(table.c.id.in_(ids))
                    .values(id=table.c.id, updated_at=table.c.updated_at)
                )
                ids = list(
                    session.scalars(
                        select(Conversation.id).where(
                            Conversation.id.in_(ids), *_expired(cutoff, channels)
                        )
                    )
                )
                if not ids:
                    continue
            counts = _counts(session, ids)
            if not dry_run:
                (_delete if mode == "delete" else _anonymise)(session, ids, delete_pairs)
        report.batches += 1
        report.conversations += len(ids)
        report.conversation_ids.extend(ids)
        report.messages += counts["messages"]
        report.replies += counts["replies"]
        report.feedback += counts["feedback"]
        report.agent_actions += counts["agent_actions"]
        if delete_pairs:
            report.pairs_deleted += counts["pairs"]
        else:
            report.pairs_kept += counts["pairs"]
    log.info("retention: %s", report.describe())
    return report


def _delete(session: Session, ids: list[int], delete_pairs: bool) -> None:
    """Children first, so that nothing depends on the database's cascades."""
    if delete_pairs:
        session.execute(delete(TrainingPair).where(TrainingPair.conversation_id.in_(ids)))
    else:
        session.execute(
            update(TrainingPair)
            .where(TrainingPair.conversation_id.in_(ids))
            .values(conversation_id=None)
        )
    for model in (PrivateAnswer, AgentAction, Feedback, DialogueReply, Message):
        session.execute(delete(model).where(model.conversation_id.in_(ids)))
    session.execute(delete(Conversation).where(Conversation.id.in_(ids)))


def _anonymise(session: Session, ids: list[int], delete_pairs: bool) -> None:
    """Every text gone; the rows, their times, decisions, confidences and ratings stay.
    The conversation is closed and its customer's key no longer opens it."""
    if delete_pairs:
        session.execute(delete(TrainingPair).where(TrainingPair.conversation_id.in_(ids)))
    session.execute(
        update(Message)
        .where(Message.conversation_id.in_(ids))
        .values(text=REMOVED, original_text=None, meta={})
    )
    session.execute(
        update(DialogueReply)
        .where(DialogueReply.conversation_id.in_(ids))
        .values(text="", shown_text="", candidates=[], trace=[])
    )
    session.execute(update(Feedback).where(Feedback.conversation_id.in_(ids)).values(comment=None))
    # A held answer's labels carry the assistant's draft (`original_suggestion`) too.
    for held in session.scalars(
        select(PrivateAnswer).where(PrivateAnswer.conversation_id.in_(ids))
    ):
        held.text, held.context = None, []
        held.labels = {k: v for k, v in (held.labels or {}).items() if k != "original_suggestion"}
    session.execute(
        update(AgentAction)
        .where(AgentAction.conversation_id.in_(ids))
        .values(text=None, original_text=None, reason=None)
    )
    table = core_table(Conversation)
    session.execute(  # updated_at kept: anonymising is no activity (a later delete run still finds it)
        update(table)
        .where(table.c.id.in_(ids))
        .values(
            meta={_MARK: {"anonymised_at": utcnow().isoformat()}},
            external_id=None,
            access_token_hash=None,
            state="closed",
            updated_at=table.c.updated_at,
        )
    )
