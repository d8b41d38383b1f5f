"""What an anonymous customer may do with their own conversation, and nothing else.

A customer has no account: their conversation belongs to whoever holds its random
token (kept in their browser). Tokens are issued by the server only: half random, half a
MAC of that half under a key derived from the session secret (`token_key`), so a token a
client made up ("AAAA…") never starts a conversation. Only the token's SHA-256 is
stored; every function here takes the token, never a conversation id from the browser,
and raises AccessDenied for a malformed, unissued or unknown token or for anything
outside the token's conversation.

Where the job ends: answering a message is the dialogue manager's (the widget resolves
the conversation here and hands its id to the manager); showing anything is `ui.widget`'s.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from chatbot.errors import AccessDenied, InputError
from chatbot.store.database import Database
from chatbot.store.dialogue_schema import DialogueReply
from chatbot.store.schema import Conversation, Message, utcnow
from chatbot.store.support_schema import Feedback
from chatbot.support.feedback import rating_changed
from chatbot.text.sanitize import clean_text

if TYPE_CHECKING:
    from chatbot.dialogue.manager import DialogueManager


# 16 random bytes and a 16-byte MAC of them: 43 characters of the URL-safe base64 alphabet.
NONCE_BYTES = MAC_BYTES = 16
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
SHOWN_ROLES = ("customer", "bot", "agent")
RATED_ROLES = ("bot", "agent")
# Decisions whose text is the assistant's own answer: only those show their sources.
_ANSWERS = ("answer", "answer_flagged")
CLARIFY = "clarify"
MAX_OPTIONS = 5
MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class Source:
    """A past answer the reply drew on, as the customer sees it."""

    conversation_id: int | None
    turn_index: int | None
    snippet: str


@dataclass
class ShownMessage:
    """One message of the customer's chat: role is customer, bot or agent."""

    turn_index: int
    role: str
    text: str
    message_id: int
    sources: list[Source] = field(default_factory=list)
    # A clarifying question's choices (readable topic labels), to offer as buttons.
    options: list[str] = field(default_factory=list)


def token_key(session_secret: str) -> bytes:
    """The key conversation tokens are signed with, derived one-way from the session
    secret (`chatbot.accounts.secret`): every worker derives the same."""
    return hmac.new(session_secret.encode(), b"customer conversation tokens", "sha256").digest()


def _mac(key: bytes, nonce: bytes) -> bytes:
    return hmac.new(key, nonce, hashlib.sha256).digest()[:MAC_BYTES]


def new_token(key: bytes) -> str:
    """A fresh token, issued (signed) with `key`."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return base64.urlsafe_b64encode(nonce + _mac(key, nonce)).decode("ascii").rstrip("=")


def is_issued(token: object, key: bytes) -> bool:
    """The token is well formed and was issued with `key` (not made up by a client)."""
    if not isinstance(token, str) or not is_well_formed(token):
        return False
    raw = base64.urlsafe_b64decode(token + "=")
    nonce, mac = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
    return hmac.compare_digest(mac, _mac(key, nonce))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def is_well_formed(token: object) -> bool:
    """The token has the shape `new_token` gives (it may still belong to no conversation)."""
    return isinstance(token, str) and _TOKEN_SHAPE.fullmatch(token) is not None


def _checked_hash(token: object) -> str:
    if isinstance(token, str) and is_well_formed(token):
        return token_hash(token)
    raise AccessDenied("this conversation's key is not valid; start a new conversation")


def _find(session: Session, token: object) -> Conversation | None:
    digest = _checked_hash(token)
    return session.scalar(select(Conversation).where(Conversation.access_token_hash == digest))


def conversation_of(session: Session, token: object) -> Conversation:
    """The token's conversation, or AccessDenied (malformed or unknown token)."""
    conversation = _find(session, token)
    if conversation is None:
        raise AccessDenied("no conversation belongs to this key")
    return conversation


def open_conversation(database: Database, token: object, key: bytes) -> int:
    """The id of the token's conversation, started (live, from the widget) on first use;
    AccessDenied when the token was not issued with `key`."""
    digest = _checked_hash(token)
    if not is_issued(token, key):
        raise AccessDenied("this conversation's key was not issued here; start a new conversation")
    try:
        with database.session() as session:
            found = _find(session, token)
            if found is not None:
                return found.id
            conversation = Conversation(
                source="widget", channel="live", meta={}, access_token_hash=digest
            )
            session.add(conversation)
            session.flush()
            return conversation.id
    except IntegrityError:
        # Two first messages at once: the other request made it; use theirs.
        with database.session() as session:
            return conversation_of(session, token).id


def messages_after(database: Database, token: object, after_turn: int) -> list[ShownMessage]:
    """The customer's, the assistant's and the agents' messages after `after_turn`
    (-1: the whole chat), oldest first; the assistant's answers with their sources, its
    clarifying questions with their choices."""
    with database.session() as session:
        conversation = conversation_of(session, token)
        rows = session.execute(
            select(Message, DialogueReply.decision, DialogueReply.citations, DialogueReply.options)
            .outerjoin(DialogueReply, DialogueReply.reply_message_id == Message.id)
            .where(
                Message.conversation_id == conversation.id,
                Message.turn_index > int(after_turn),
                Message.role.in_(SHOWN_ROLES),
            )
            .order_by(Message.turn_index)
        )
        shown = []
        for message, decision, citations, options in rows:
            bot = message.role == "bot"
            sources = _sources(citations) if bot and decision in _ANSWERS else []
            choices = (
                _options(message.meta, options if decision == CLARIFY else None) if bot else []
            )
            shown.append(
                ShownMessage(
                    message.turn_index, message.role, message.text, message.id, sources, choices
                )
            )
        return shown


def _options(meta: object, recorded: object) -> list[str]:
    """A clarifying question's choices as its bot message keeps them (`meta["options"]`),
    else as its reply record does: non-empty strings, each once, a few at most."""
    kept = meta.get("options") if isinstance(meta, dict) else None
    found = kept if isinstance(kept, list) and kept else recorded
    options: list[str] = []
    for option in found if isinstance(found, list) else []:
        label = " ".join(option.split()) if isinstance(option, str) else ""
        if label and label not in options:
            options.append(label)
    return options[:MAX_OPTIONS]


def _sources(citations: object) -> list[Source]:
    sources = []
    for c in citations if isinstance(citations, list) else []:
        if isinstance(c, dict) and c.get("snippet"):
            sources.append(Source(c.get("conversation_id"), c.get("turn_index"), str(c["snippet"])))
    return sources


def human_in_charge(database: Database, token: object) -> bool:
    """True while a person (waiting in the queue or already answering) has the
    conversation; a token with no conversation yet has none."""
    with database.session() as session:
        conversation = _find(session, token)
        return conversation is not None and conversation.state == "handed_off"


def give_feedback(
    database: Database, token: object, message_id: int, rating: int, comment: str | None = None
) -> None:
    """Store the customer's thumbs up (+1) or down (-1), with an optional comment, on a
    reply of their own conversation; a second rating of the same reply replaces the first.
    A thumbs-down on the assistant's reply flags it for the agents ("customer said
    wrong"); a thumbs-up takes that flag away (`chatbot.support.feedback`)."""
    if rating not in (1, -1) or isinstance(rating, bool):
        raise InputError(f"a rating is +1 or -1, not {rating!r}")
    comment = clean_text(comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise InputError(
            f"the comment is {len(comment)} characters long; the limit is {MAX_COMMENT_CHARS}"
        )
    for attempt in (1, 2):
        try:
            with database.session() as session:
                conversation_id = _rated_message(session, token, message_id)
                row = session.scalar(select(Feedback).where(Feedback.message_id == message_id))
                if row is None:
                    session.add(
                        Feedback(
                            conversation_id=conversation_id,
                            message_id=message_id,
                            rating=rating,
                            comment=comment,
                        )
                    )
                else:
                    row.rating, row.comment, row.created_at = rating, comment, utcnow()
                rating_changed(
                    session=session,
                    conversation_id=conversation_id,
                    message_id=message_id,
                    rating=rating,
                )
            return
        except IntegrityError:
            if attempt == 2:
                raise
            # Another click on the same reply got there first: replace it.


def withdraw_feedback(database: Database, token: object, message_id: int) -> None:
    """The customer took their thumbs back (a thumbs-down's flag goes with it)."""
    with database.session() as session:
        conversation_id = _rated_message(session, token, message_id)
        session.execute(delete(Feedback).where(Feedback.message_id == message_id))
        rating_changed(
            session=session, conversation_id=conversation_id, message_id=message_id, rating=None
        )


def _rated_message(session: Session, token: object, message_id: object) -> int:
    conversation = conversation_of(session, token)
    valid_id = isinstance(message_id, int) and not isinstance(message_id, bool)
    message = session.get(Message, message_id) if valid_id else None
    if (
        message is None
        or message.conversation_id != conversation.id
        or message.role not in RATED_ROLES
    ):
        raise AccessDenied("only the replies in your own conversation can be rated")
    return conversation.id


def ask_for_person(database: Database, manager: DialogueManager, token: object, key: bytes) -> int:
    """The customer pressed "talk to a person": the conversation (started if need be)
    goes to the agents' queue with the hand-off notice in the chat (once: a second press
    while a person is in charge changes nothing). Returns its id."""
    conversation_id = open_conversation(database, token, key)
    manager.request_human(conversation_id)
    return conversation_id
