"""Which agent answers become shared answers, and in what form.

An answer an agent approved or edited is sent to its own customer as it is. What other
customers may get (the answer cache), what the index and training read, is its training
pair, and that holds the answer's slotted form (`chatbot.text.specifics`: the
customer's name, order number, e-mail... as `{customer_name}`, `{order_number}`...). Any
personal data still left after slotting (`chatbot.text.pii`: an IBAN, a passport
number, a street address slotting did not catch, a card number), other than the
company's own constants, makes the answer private: no pair is written, a
`PrivateAnswer` row keeps it for an admin, who approves it (the flagged values are the
company's own, or harmless: a pair is written then) or discards it (its text is cleared).

Where its job ends: it decides and writes pairs and held answers; `chatbot.support.review_pairs`
calls it inside the agent's transaction, and the admin console shows the held answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.errors import InputError, StoreError
from chatbot.store.database import Database
from chatbot.store.schema import KnownValue, TrainingPair, utcnow
from chatbot.store.support_schema import PRIVATE_ANSWER_STATES, PrivateAnswer
from chatbot.text.pii import Detector, PiiSpan
from chatbot.text.specifics import Found, find_specifics, slot_summary, slotted, value_key

PENDING, APPROVED, DISCARDED = PRIVATE_ANSWER_STATES
# Ids are INTEGER columns (4 bytes on PostgreSQL): a larger number names no held answer,
# and the database driver would raise on it instead of finding nothing.
_MAX_ID = 2**31 - 1
_UNSLOTTABLE = Detector(kinds=("iban", "card", "id"))


@dataclass
class SharedForm:
    """An answer as it would be shared: its slotted text, the specifics slotted, and the
    personal data left in it (empty: it may be shared)."""

    text: str
    found: list[Found]
    constants: set[tuple[str, str]]
    left: list[PiiSpan] = field(default_factory=list)

    @property
    def private(self) -> bool:
        return bool(self.left)

    @property
    def kinds(self) -> list[str]:
        return sorted({span.kind for span in self.left})


def _constants(session: Session) -> set[tuple[str, str]]:
    return {
        (kind, value)
        for kind, value in session.execute(
            select(KnownValue.kind, KnownValue.value).where(KnownValue.constant.is_(True))
        )
    }


def shared_form(
    session: Session, text: str, context: list[dict[str, str]], allowlist: tuple[str, ...] = ()
) -> SharedForm:
    """`text` slotted with the store's constants, and the personal data left in it
    (except `allowlist` values and the store's constants)."""
    constants = _constants(session)
    # Digit groups of an IBAN, a card or an ID number are not a phone or an order number
    # to slot: such a number is kept whole, to be held back (or allowed) whole.
    whole = _UNSLOTTABLE.find(text)
    found = [
        f
        for f in find_specifics(text, [t.get("text", "") for t in context])
        if not any(f.start < w.end and w.start < f.end for w in whole)
    ]
    form = SharedForm(slotted(text, found, constants), found, constants)
    detector = Detector(allowlist=(*allowlist, *(value for _, value in constants)))
    form.left = [
        span
        for span in detector.find(form.text)
        if (span.kind, value_key(span.kind, span.value)) not in constants
    ]
    return form


def write_pair(
    session: Session,
    *,
    conversation_id: int | None,
    turn_index: int,
    source: str,
    origin: str,
    context: list[dict[str, str]],
    text: str,
    labels: dict[str, Any],
    content_hash: str,
    form: SharedForm,
) -> TrainingPair:
    """The shared pair, already slotted (the cache, index and training read the slotted form)."""
    pair = TrainingPair(
        conversation_id=conversation_id,
        turn_index=turn_index,
        source=source,
        origin=origin,
        split="train",
        context=context,
        target=text,
        target_slotted=form.text,
        slots=slot_summary(form.found, form.constants),
        labels=labels,
        content_hash=content_hash,
    )
    session.add(pair)
    session.flush()
    return pair


def hold(
    session: Session,
    *,
    conversation_id: int,
    reply_id: int | None,
    message_id: int | None,
    turn_index: int,
    origin: str,
    agent: str,
    context: list[dict[str, str]],
    text: str,
    labels: dict[str, Any],
    form: SharedForm,
) -> PrivateAnswer:
    row = PrivateAnswer(
        conversation_id=conversation_id,
        reply_id=reply_id,
        message_id=message_id,
        turn_index=turn_index,
        origin=origin,
        agent=agent,
        context=context,
        text=text,
        labels=labels,
        held_kinds=form.kinds,
        state=PENDING,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class HeldAnswer:
    """A held answer as the admin console lists it."""

    id: int
    conversation_id: int
    agent: str
    kinds: list[str]
    question: str
    text: str
    created_at: Any


def held_answers(database: Database, limit: int = 200) -> list[HeldAnswer]:
    """The answers waiting for an admin, oldest first."""
    with database.session() as session:
        rows = session.scalars(
            select(PrivateAnswer)
            .where(PrivateAnswer.state == PENDING)
            .order_by(PrivateAnswer.id)
            .limit(limit)
        ).all()
        return [
            HeldAnswer(
                r.id,
                r.conversation_id,
                r.agent,
                list(r.held_kinds or []),
                next(
                    (
                        t.get("text", "")
                        for t in reversed(r.context or [])
                        if isinstance(t, dict) and t.get("role") == "customer"
                    ),
                    "",
                ),
                r.text or "",
                r.created_at,
            )
            for r in rows
        ]


def _pending(session: Session, held_id: int) -> PrivateAnswer:
    row = (
        session.get(PrivateAnswer, held_id, with_for_update=True)
        if 0 < held_id <= _MAX_ID
        else None
    )
    if row is None:
        raise StoreError(f"held answer {held_id} does not exist")
    if row.state != PENDING:
        raise InputError(f"held answer {held_id} was already {row.state} by {row.decided_by}")
    return row


def approve(database: Database, held_id: int, admin: str) -> int:
    """Share the held answer: its pair (slotted, the flagged values kept as they are) is
    written now. Returns the pair's id."""
    from chatbot.support.review_pairs import PAIR_SOURCE, pair_hash

    with database.session() as session:
        row = _pending(session, held_id)
        text = row.text
        if text is None:
            raise InputError(f"held answer {held_id} has no text left (retention removed it)")
        form = shared_form(session, text, list(row.context or []))
        pair = write_pair(
            session,
            conversation_id=row.conversation_id,
            turn_index=row.turn_index,
            source=PAIR_SOURCE,
            origin=row.origin,
            context=list(row.context or []),
            text=text,
            labels={**(row.labels or {}), "held_for": row.held_kinds, "approved_by": admin},
            content_hash=pair_hash(row.conversation_id, row.turn_index, text),
            form=form,
        )
        row.state, row.decided_by, row.decided_at, row.pair_id = APPROVED, admin, utcnow(), pair.id
        return pair.id


def discard(database: Database, held_id: int, admin: str) -> None:
    """Never share the held answer; its text is cleared (the customer's copy stays in
    the conversation)."""
    with database.session() as session:
        row = _pending(session, held_id)
        row.state, row.decided_by, row.decided_at = DISCARDED, admin, utcnow()
        row.text, row.context = None, []
