"""Support analytics over a chosen period: how many live conversations there were, how
many the assistant resolved alone, how many went to a human and why, what agents did
with the assistant's suggestions, what customers thought of the replies, and how fast
the assistant and the humans answered. Read-only queries plus the arithmetic; turning
the figures into tables and plots is `ui.admin_analytics`' job.

Definitions (the admin console shows them under the numbers):

- Only live conversations count (`conversations.channel == "live"`); imported history
  never does. Times are UTC; a period includes its start and excludes its end; a day
  in the per-day series is a UTC calendar day.
- **Conversations**: live conversations created in the period. The conversation
  figures below (automated resolution, hand-offs, the per-day series) are about these.
- **Handed off**: the conversation was given to a human: the assistant decided to hand
  it off (a reply record with decision `handoff`), or it has a hand-off time
  (`handed_off_at`), or it is in the `handed_off` state now. Its **reason** is the
  reason of its first hand-off reply, else `handoff_reason`, else "unknown"; reasons
  are grouped by their prefix ("loop: asked 3 times" -> "loop", "out_of_scope: past
  answers are labelled billing" -> "out_of_scope", "past answers hand off (returns)"
  -> "past answers hand off"). Hand-off rate = handed off / conversations.
- **Automated resolution**: the assistant sent at least one answer (a reply record
  with decision `answer` or `answer_flagged` that was sent), no human was ever
  involved, and the customer never said a reply was wrong. Not an answer: a
  conversation act (`act`: a greeting or thanks answered), a polite decline of an
  out-of-domain question (`decline`) or a clarifying question (`clarify`), so a
  conversation whose only replies are those is not a resolution. No human involved:
  not handed off (an agent's take-over is a hand-off too), no assigned agent, no agent
  message (what an agent sends, including an approved or edited suggestion, is stored
  as one), no agent reply or take-over; an agent approving an answer the customer
  already had is a review, not involvement. Said wrong: a thumbs-down (standing, with
  or without a comment) on any of the assistant's messages in the conversation.
  Rate = automated / conversations.
- **Agents' decisions**: approve / edit / reject actions on suggested replies taken in
  the period (by `agent_actions.created_at`); each rate is over all three together.
- **Thumbs-up ratio**: ups / (ups + downs) over customers' ratings given in the period.
- **Assistant's time to first reply**: for each customer message written in the
  period that the assistant replied to (an answer, a conversation act, a decline, a
  clarifying question, a hold notice or a hand-off notice: every reply record with a
  bot message), the time from the customer message to the bot message that replied to it.
- **Humans' time to first reply**: for each hand-off that began in the period, the
  time from its start (the customer message that triggered it; `handed_off_at` when
  no reply record marks it) to the first message an agent sent after it. A hand-off
  handed back to the assistant before any agent message, or still waiting, has no
  time and is counted as unanswered.
- Median and p95 interpolate linearly between the closest ranks (numpy's default
  method); every figure carries its count n, so a 100% from one conversation shows
  as such.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import overload

from sqlalchemy import ColumnElement, exists, func, select, union_all
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from chatbot.dialogue.records import ANSWERED
from chatbot.errors import InputError
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.enums import AgentActionKind
from chatbot.store.schema import Conversation, Message
from chatbot.store.support_schema import AgentAction, Feedback

LIVE = "live"
DECISION_ACTIONS = (AgentActionKind.APPROVE, AgentActionKind.EDIT, AgentActionKind.REJECT)
ANSWER_DECISIONS = ANSWERED
# Actions that put a human in the conversation (whatever an agent sends is also an
# "agent" message; approving an answer already sent is a review, not involvement).
HUMAN_ACTIONS = (AgentActionKind.REPLY, AgentActionKind.TAKE_OVER)
# Series of the per-day figures, in the order they are plotted.
DAILY_SERIES = ("conversations", "hand-offs", "automated")
# A period longer than this is not padded with empty days beyond the data.
MAX_PADDED_DAYS = 1000


@overload
def to_utc(value: datetime) -> datetime: ...
@overload
def to_utc(value: None) -> None: ...
def to_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime; SQLite hands back naive ones, which are UTC here."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# -- periods -----------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """[start, end) in UTC; None means unbounded on that side."""

    start: datetime | None
    end: datetime | None
    label: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", to_utc(self.start))
        object.__setattr__(self, "end", to_utc(self.end))
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InputError(
                f"period {self.label!r} ends ({self.end:%Y-%m-%d %H:%M}) before it starts "
                f"({self.start:%Y-%m-%d %H:%M})"
            )

    def contains(self, moment: datetime) -> bool:
        moment = to_utc(moment)
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


def last(*, hours: float = 0, days: float = 0, now: datetime | None = None) -> Period:
    """The `hours`/`days` up to `now`."""
    span = timedelta(hours=hours, days=days)
    if span <= timedelta(0):
        raise InputError(f"a period must be longer than zero (got {span})")
    end = to_utc(now) if now is not None else datetime.now(UTC)
    if days and not hours:
        label = f"last {days:g} day{'s' if days != 1 else ''}"
    else:
        label = f"last {span.total_seconds() / 3600:g} hours"
    return Period(end - span, end, label)


def all_time() -> Period:
    return Period(None, None, "all time")


def between(first: date | None, final: date | None) -> Period:
    """Whole UTC days from `first` to `final`, both included; either may be open."""
    if first is not None and final is not None and final < first:
        raise InputError(
            f"the end date {final.isoformat()} is before the start date {first.isoformat()}"
        )
    start = datetime.combine(first, time(), UTC) if first is not None else None
    end = datetime.combine(final + timedelta(days=1), time(), UTC) if final is not None else None
    label = f"{first.isoformat() if first else 'the beginning'} to {final.isoformat() if final else 'now'}"
    return Period(start, end, label)


def parse_day(text: str | None, *, what: str) -> date | None:
    """A YYYY-MM-DD date (a time after it is ignored), None when blank."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        raise InputError(
            f"the {what} date {text!r} is not a date; write it as YYYY-MM-DD"
        ) from None


# -- records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    """`count` of `total`; `value` is None when there is nothing to divide by."""

    count: int
    total: int

    @property
    def value(self) -> float | None:
        return self.count / self.total if self.total else None


@dataclass(frozen=True)
class Durations:
    """Seconds; median and p95 are None when n is 0."""

    n: int
    median: float | None
    p95: float | None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Durations:
        values = sorted(seconds)
        if not values:
            return cls(0, None, None)
        return cls(len(values), quantile(values, 0.5), quantile(values, 0.95))


@dataclass(frozen=True)
class ReasonCount:
    reason: str  # the reason group
    handoffs: Rate  # conversations handed off for it / conversations


@dataclass(frozen=True)
class AgentDecisions:
    username: str
    approve: int
    edit: int
    reject: int

    @property
    def total(self) -> int:
        return self.approve + self.edit + self.reject


@dataclass(frozen=True)
class DayCounts:
    day: date
    conversations: int
    handoffs: int
    automated: int


@dataclass(frozen=True)
class Analytics:
    period: Period
    conversations: int
    automated: Rate
    handed_off: Rate
    handoff_reasons: list[ReasonCount]
    approved: Rate
    edited: Rate
    rejected: Rate
    decisions_by_agent: list[AgentDecisions]
    thumbs_up: Rate
    assistant_first_reply: Durations
    human_first_reply: Durations
    human_unanswered: int  # hand-offs begun in the period with no agent message after them
    daily: list[DayCounts] = field(default_factory=list)

    @property
    def decisions(self) -> int:
        return self.approved.total


# -- arithmetic ------------------------------------------------------------------------


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    position = (len(sorted_values) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def reason_group(reason: str | None) -> str:
    """The stable part of a hand-off reason: what comes before ':' or ' ('."""
    text = (reason or "").strip()
    group = re.split(r":|\s\(", text, maxsplit=1)[0].strip()
    return group or "unknown"


# -- queries -------------------------------------------------------------------------


def _within(
    column: InstrumentedAttribute[datetime] | ColumnElement[datetime], period: Period
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if period.start is not None:
        conditions.append(column >= period.start)
    if period.end is not None:
        conditions.append(column < period.end)
    return conditions


@dataclass(frozen=True)
class _ConversationRow:
    id: int
    created_at: datetime
    handed_off: bool
    reason: str
    answered: bool
    human: bool
    said_wrong: bool  # a thumbs-down on one of the assistant's messages


def _conversation_rows(session: Session, period: Period) -> list[_ConversationRow]:
    c = Conversation
    handoff_reply = exists().where(
        DialogueReply.conversation_id == c.id, DialogueReply.decision == "handoff"
    )
    first_handoff_reason = (
        select(DialogueReply.reason)
        .where(DialogueReply.conversation_id == c.id, DialogueReply.decision == "handoff")
        .order_by(DialogueReply.id)
        .limit(1)
        .scalar_subquery()
    )
    answered = exists().where(
        DialogueReply.conversation_id == c.id,
        DialogueReply.decision.in_(ANSWER_DECISIONS),
        DialogueReply.sent.is_(True),
    )
    agent_message = exists().where(Message.conversation_id == c.id, Message.role == "agent")
    rated = aliased(Message)
    said_wrong = exists().where(
        Feedback.conversation_id == c.id,
        Feedback.rating == -1,
        rated.id == Feedback.message_id,
        rated.role == "bot",
    )
    agent_took_part = exists().where(
        AgentAction.conversation_id == c.id, AgentAction.action.in_(HUMAN_ACTIONS)
    )
    query = select(
        c.id,
        c.created_at,
        c.state,
        c.handoff_reason,
        c.handed_off_at,
        c.assigned_user_id,
        handoff_reply.label("handoff_reply"),
        first_handoff_reason.label("first_reason"),
        answered.label("answered"),
        agent_message.label("agent_message"),
        agent_took_part.label("agent_took_part"),
        said_wrong.label("said_wrong"),
    ).where(c.channel == LIVE, *_within(c.created_at, period))
    rows = []
    for r in session.execute(query):
        handed_off = bool(r.handoff_reply) or r.handed_off_at is not None or r.state == "handed_off"
        human = (
            handed_off
            or r.assigned_user_id is not None
            or bool(r.agent_message)
            or bool(r.agent_took_part)
        )
        rows.append(
            _ConversationRow(
                id=r.id,
                created_at=to_utc(r.created_at),
                handed_off=handed_off,
                reason=reason_group(r.first_reason or r.handoff_reason) if handed_off else "",
                answered=bool(r.answered),
                human=human,
                said_wrong=bool(r.said_wrong),
            )
        )
    return rows


def _agent_decisions(session: Session, period: Period) -> list[AgentDecisions]:
    query = (
        select(AgentAction.username, AgentAction.action, func.count())
        .join(Conversation, Conversation.id == AgentAction.conversation_id)
        .where(
            Conversation.channel == LIVE,
            AgentAction.action.in_(DECISION_ACTIONS),
            *_within(AgentAction.created_at, period),
        )
        .group_by(AgentAction.username, AgentAction.action)
    )
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for username, action, count in session.execute(query):
        counts[username][action] += count
    return sorted(
        (AgentDecisions(name, c["approve"], c["edit"], c["reject"]) for name, c in counts.items()),
        key=lambda a: (-a.total, a.username),
    )


def _thumbs(session: Session, period: Period) -> Rate:
    query = (
        select(Feedback.rating, func.count())
        .join(Conversation, Conversation.id == Feedback.conversation_id)
        .where(Conversation.channel == LIVE, *_within(Feedback.created_at, period))
        .group_by(Feedback.rating)
    )
    counts = {rating: count for rating, count in session.execute(query)}
    ups, downs = counts.get(1, 0), counts.get(-1, 0)
    return Rate(ups, ups + downs)


def _assistant_seconds(session: Session, period: Period) -> list[float]:
    asked, answered = aliased(Message), aliased(Message)
    query = (
        select(asked.created_at, answered.created_at)
        .select_from(DialogueReply)
        .join(asked, asked.id == DialogueReply.message_id)
        .join(answered, answered.id == DialogueReply.reply_message_id)
        .join(Conversation, Conversation.id == DialogueReply.conversation_id)
        .where(Conversation.channel == LIVE, *_within(asked.created_at, period))
    )
    return [
        max(0.0, (to_utc(sent) - to_utc(received)).total_seconds())
        for received, sent in session.execute(query)
    ]


def _human_waits(session: Session, period: Period) -> tuple[list[float], int]:
    """(seconds from each hand-off begun in the period to the first agent message after
    it, how many such hand-offs had none)."""
    live = Conversation.channel == LIVE
    # When each hand-off began: the customer message behind a hand-off reply, or the
    # conversation's hand-off time (a hand-off no reply record marks, e.g. a button).
    reply_starts = (
        select(
            DialogueReply.conversation_id.label("conversation_id"), Message.created_at.label("at")
        )
        .join(Message, Message.id == DialogueReply.message_id)
        .join(Conversation, Conversation.id == DialogueReply.conversation_id)
        .where(live, DialogueReply.decision == "handoff")
    )
    marked_starts = select(
        Conversation.id.label("conversation_id"), Conversation.handed_off_at.label("at")
    ).where(live, Conversation.handed_off_at.is_not(None))
    starts = union_all(reply_starts, marked_starts).subquery()
    in_period = select(starts.c.conversation_id).where(*_within(starts.c.at, period)).distinct()
    conversation_ids = [row[0] for row in session.execute(in_period)]
    if not conversation_ids:
        return [], 0

    # (time, order, kind): at equal times a start comes before a hand-back, and both
    # before a human message, so a reply stamped with the same time still answers.
    events: dict[int, list[tuple[datetime, int, str]]] = defaultdict(list)
    for chunk in _chunks(conversation_ids, 500):
        for conversation_id, at in session.execute(
            select(starts.c.conversation_id, starts.c.at).where(starts.c.conversation_id.in_(chunk))
        ):
            events[conversation_id].append((to_utc(at), 0, "start"))
        for conversation_id, at in session.execute(
            select(AgentAction.conversation_id, AgentAction.created_at).where(
                AgentAction.conversation_id.in_(chunk), AgentAction.action == "hand_back"
            )
        ):
            events[conversation_id].append((to_utc(at), 1, "back"))
        # Everything an agent sends (a free reply, an approved or edited suggestion) is
        # an "agent" message; an approval of an answer the customer already had sends
        # nothing new and points at the bot's message, so actions are not read here.
        for conversation_id, at in session.execute(
            select(Message.conversation_id, Message.created_at).where(
                Message.conversation_id.in_(chunk), Message.role == "agent"
            )
        ):
            events[conversation_id].append((to_utc(at), 2, "human"))

    waits: list[float] = []
    unanswered = 0
    for timeline in events.values():
        waiting_since: datetime | None = None
        for at, _, kind in sorted(timeline):
            if kind == "start":
                if waiting_since is None:
                    waiting_since = at
            elif waiting_since is not None:
                if kind == "human":
                    if period.contains(waiting_since):
                        waits.append((at - waiting_since).total_seconds())
                elif period.contains(waiting_since):  # handed back unanswered
                    unanswered += 1
                waiting_since = None
        if waiting_since is not None and period.contains(waiting_since):
            unanswered += 1
    return waits, unanswered


def _chunks(values: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]


def _daily(rows: Sequence[_ConversationRow], period: Period) -> list[DayCounts]:
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in rows:
        counts = per_day[row.created_at.date()]
        counts[0] += 1
        counts[1] += row.handed_off
        counts[2] += _is_automated(row)
    data_first = min(per_day) if per_day else None
    data_final = max(per_day) if per_day else None
    first = period.start.date() if period.start is not None else data_first
    final = (
        (period.end - timedelta(microseconds=1)).date() if period.end is not None else data_final
    )
    if first is None or final is None:
        return []
    if (final - first).days > MAX_PADDED_DAYS and data_first is not None and data_final is not None:
        first, final = max(first, data_first), min(final, data_final)
    days = (final - first).days + 1
    return [
        DayCounts(day, *per_day.get(day, (0, 0, 0)))
        for day in (first + timedelta(days=i) for i in range(max(days, 0)))
    ]


def _is_automated(row: _ConversationRow) -> bool:
    return row.answered and not row.human and not row.said_wrong


def compute_analytics(*, session: Session, period: Period) -> Analytics:
    """Every figure of the analytics page for `period`."""
    rows = _conversation_rows(session, period)
    total = len(rows)
    handed_off = [row for row in rows if row.handed_off]
    reasons = Counter(row.reason for row in handed_off)
    agents = _agent_decisions(session, period)
    decided = sum(a.total for a in agents)
    waits, unanswered = _human_waits(session, period)
    return Analytics(
        period=period,
        conversations=total,
        automated=Rate(sum(_is_automated(row) for row in rows), total),
        handed_off=Rate(len(handed_off), total),
        handoff_reasons=[
            ReasonCount(reason, Rate(count, total))
            for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
        approved=Rate(sum(a.approve for a in agents), decided),
        edited=Rate(sum(a.edit for a in agents), decided),
        rejected=Rate(sum(a.reject for a in agents), decided),
        decisions_by_agent=agents,
        thumbs_up=_thumbs(session, period),
        assistant_first_reply=Durations.of(_assistant_seconds(session, period)),
        human_first_reply=Durations.of(waits),
        human_unanswered=unanswered,
        daily=_daily(rows, period),
    )
