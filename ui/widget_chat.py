"""What the customer chat widget does, as plain functions over `Services` (tested without
a browser): the chat drawn from the store (`ChatView`: text escaped, sources folded under
each reply, a clarifying question's choices as buttons), loading and starting over,
polling for an agent's messages, a reply streamed as it is written, handing the
conversation to a person, thumbs and a comment on a reply.

Where its job ends: deciding what to answer is the dialogue manager's, access rules are
`chatbot.support.customer`'s; the page, its limits per client address and its events
are `ui.widget`'s.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, NotRequired, TypedDict

from chatbot.dialogue.records import numbered_choices
from chatbot.errors import AccessDenied, ChatbotError, InputError
from chatbot.support import customer
from chatbot.text.sanitize import clean_text, visible
from chatbot.ui.handlers import ChatMessage

if TYPE_CHECKING:
    from chatbot.store.database import Database
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

FAILED = "Sorry, I cannot answer right now. Please try again in a moment, or press \u201cTalk to a person\u201d."
UNAVAILABLE = "Sorry, the chat is unavailable right now. Please try again in a moment."
EMPTY = "Please type a message first."
THINKING = "\u2026"


class Option(TypedDict):
    """One button under a chat message (Gradio's `OptionDict`): the text it shows, and
    what a click sends back (the same text)."""

    value: str
    label: str


class ChatEntry(ChatMessage):
    """A chat entry of the widget: a message, and for the last one, when it is a
    clarifying question, its choices (Gradio shows the options of the last message only)."""

    options: NotRequired[list[Option]]


def as_text(text: str) -> str:
    """Text as the chat shows it: HTML-escaped, so that markup reads as written and is
    never run. The chat renders without Markdown, and keeps line breaks itself."""
    return html.escape(text or "", quote=True)


def sources_html(sources: list[customer.Source]) -> str:
    """The sources of a reply, folded under its text: our own <details> around escaped
    text. One bubble and one pair of thumbs per reply: a Gradio "thought" message
    (metadata title) would get thumbs of its own, or, with consecutive messages grouped,
    merge the replies around it into one bubble rated as one."""
    lines = []
    for source in sources:
        where = "A past conversation"
        if source.conversation_id is not None:
            where = f"Past conversation {source.conversation_id}"
            if source.turn_index is not None:
                where += f", turn {source.turn_index}"
        lines.append(f"<div>{as_text(where)}: \u201c{as_text(source.snippet)}\u201d</div>")
    return f'<details class="sources"><summary>Sources</summary>{"".join(lines)}</details>'


def options_of(choices: Sequence[str]) -> list[Option]:
    """A clarifying question's choices as the chat's buttons. A label is plain text, not
    escaped: Gradio sets it as the button's text (never as HTML), and a click sends it back
    exactly as written, as the customer's next message."""
    return [{"value": label, "label": label} for label in choices]


def without_choices(text: str, choices: Sequence[str]) -> str:
    """A clarifying question's text without the numbered list of its choices at its end
    (the buttons under it say the same); the text as it is when it does not end so."""
    listed = numbered_choices(choices)
    question = text[: -len(listed)].rstrip() if listed and text.endswith(listed) else ""
    return question or text


@dataclass
class ChatView:
    """What the widget shows: the chat (Gradio message dicts, text escaped), the stored
    message id behind each chat entry (None for the customer's own and unsaved ones),
    the last turn shown, whether a person is in charge, and what to tell the customer."""

    chat: list[ChatEntry] = field(default_factory=list)
    message_ids: list[int | None] = field(default_factory=list)
    last_turn: int = -1
    human: bool = False
    warning: str | None = None
    keep_input: bool = False
    final: bool = True  # False while a reply is still being written


def render(
    messages: list[customer.ShownMessage], *, offer: bool = True
) -> tuple[list[ChatEntry], list[int | None]]:
    """Chat entries (Gradio message dicts) and the stored message id behind each (None
    for the customer's own messages: only replies are rated). With `offer`, a clarifying
    question that is the last message gets its choices as buttons, which then stand for
    the numbered list at the end of its text; any other keeps its text as stored."""
    chat: list[ChatEntry] = []
    ids: list[int | None] = []
    for i, m in enumerate(messages):
        if m.role == "customer":
            chat.append({"role": "user", "content": as_text(m.text)})
            ids.append(None)
            continue
        entry: ChatEntry = {"role": "assistant", "content": as_text(m.text)}
        if offer and m.options and i == len(messages) - 1:
            entry = {
                "role": "assistant",
                "content": as_text(without_choices(m.text, m.options)),
                "options": options_of(m.options),
            }
        if m.sources:
            entry["content"] += sources_html(m.sources)
        chat.append(entry)
        ids.append(m.message_id)
    return chat, ids


def current_view(database: Database, token: object, *, offer: bool = True) -> ChatView:
    """The whole chat of the token's conversation, rebuilt from the store; an empty one
    while the token has no conversation yet. A malformed token raises AccessDenied.
    With `offer`, a clarifying question still waiting for its answer (the last message,
    with no person in charge) shows its choices as buttons."""
    try:
        messages = customer.messages_after(database, token, -1)
    except AccessDenied:
        if not customer.is_well_formed(token):
            raise
        return ChatView()
    human = customer.human_in_charge(database, token)
    chat, ids = render(messages, offer=offer and not human)
    last_turn = messages[-1].turn_index if messages else -1
    return ChatView(chat, ids, last_turn, human)


def token_or_new(token: object, key: bytes) -> str:
    """The browser's token when this server issued it (with `key`), else a new one: a
    token the browser made up is never used."""
    if isinstance(token, str) and customer.is_issued(token, key):
        return token
    return customer.new_token(key)


def on_load(database: Database, token: object, key: bytes) -> tuple[str, ChatView]:
    """The page opened (or reloaded): keep the browser's token if this server issued it
    (its conversation, if any, comes back), else give it a new one."""
    token = token_or_new(token, key)
    return token, current_view(database, token)


def start_over(key: bytes) -> tuple[str, ChatView]:
    """A new token, so a new conversation; the old one stays with the agents."""
    return customer.new_token(key), ChatView()


def poll(database: Database, token: object, last_turn: int, human: bool) -> ChatView | None:
    """What changed since the chat was last drawn (an agent's message, a hand-off or a
    hand-back), or None when nothing did."""
    try:
        new = customer.messages_after(database, token, last_turn)
    except AccessDenied:
        return None
    if not new and customer.human_in_charge(database, token) == bool(human):
        return None
    return current_view(database, token)


def answer(services: Services, token: object, message: str) -> Iterator[ChatView]:
    """Send the customer's message to the dialogue manager and stream its reply.

    The manager stores the message before anything else; a bad message (empty, too long)
    is refused with a warning and left in the box; any failure ends in a polite notice.
    The text is cleaned as the store cleans it first (a lone UTF-16 surrogate, which a
    browser's JSON may carry, cannot be sent back as UTF-8 and would break the stream)."""
    database = services.database
    text = clean_text(message or "").strip()
    if not visible(text):  # the manager's own rule (chatbot.dialogue.stages.admit)
        yield ChatView(warning=EMPTY, keep_input=True, **chat_as_it_stands(database, token))
        return
    try:
        conversation_id = customer.open_conversation(database, token, services.customer_token_key())
        # The chat as it was, its clarifying question's buttons gone: this message
        # answers it (or moves on), whether it is a click on one or typed.
        before = current_view(database, token, offer=False)
    except AccessDenied as exc:
        yield ChatView(warning=str(exc), keep_input=True)
        return
    except ChatbotError as exc:
        log.warning("the widget cannot open a conversation: %s", exc)
        yield ChatView(warning=UNAVAILABLE, keep_input=True, **chat_as_it_stands(database, token))
        return
    chat: list[ChatEntry] = [
        *before.chat,
        {"role": "user", "content": as_text(text)},
        {"role": "assistant", "content": THINKING},
    ]
    ids = before.message_ids + [None, None]

    def writing(shown: str) -> ChatView:
        chat[-1] = {"role": "assistant", "content": as_text(shown) if shown.strip() else THINKING}
        return ChatView(list(chat), list(ids), before.last_turn, before.human, final=False)

    final = ""
    try:
        events = services.manager.respond_stream(text, conversation_id)
        # The first event comes once the message is stored, or a bad message is refused:
        # only then does the chat show it.
        first = next(events, None)
        yield writing("")
        for event in chain([first] if first is not None else [], events):
            if event.kind in ("token", "replace"):
                # The reply's next words as soon as they are known, or (replace) a better
                # answer than the draft shown so far; a piece that changes nothing on screen
                # (a first line break) sends no update.
                was = chat[-1]["content"]
                final = final + event.text if event.kind == "token" else event.text
                view = writing(final)
                if view.chat[-1]["content"] != was:
                    yield view
            elif event.kind == "done":
                break
        yield current_view(database, token)  # as stored: the reply with its sources, or silence
        return
    except InputError as exc:
        # Refused before it was stored: the chat as it stands, buttons included.
        try:
            refused = current_view(database, token)
        except ChatbotError:
            refused = before
        refused.warning, refused.keep_input = exc.reason, True
        yield refused
        return
    except Exception as exc:
        if isinstance(exc, ChatbotError):
            log.warning("reply failed for conversation %s: %s", conversation_id, exc)
        else:
            log.exception("reply failed for conversation %s", conversation_id)
    yield _failed(database, token, before)


def _failed(database: Database, token: object, before: ChatView) -> ChatView:
    """The chat after a reply failed: as stored, with the polite notice last; the
    message stays in the box unless the store took it."""
    try:
        view = current_view(database, token, offer=False)  # the notice below comes last
    except ChatbotError:
        view = ChatView(before.chat, before.message_ids, before.last_turn, before.human)

    # Stored text is redacted and cleaned, so count the customer's messages rather than
    # compare texts: one more than before means the store took it.
    def customer_turns(chat: list[ChatEntry]) -> int:
        return sum(1 for entry in chat if entry.get("role") == "user")

    stored = customer_turns(view.chat) > customer_turns(before.chat)
    view.keep_input = not stored  # a message the store did not take stays in the box
    view.chat.append({"role": "assistant", "content": as_text(FAILED)})
    view.message_ids.append(None)
    return view


class ShownChat(TypedDict):
    chat: list[ChatEntry]
    message_ids: list[int | None]
    last_turn: int
    human: bool


def chat_as_it_stands(database: Database, token: object) -> ShownChat:
    """The chat as it stands (or an empty one when it cannot be read)."""
    try:
        view = current_view(database, token)
    except ChatbotError:
        view = ChatView()
    return {
        "chat": view.chat,
        "message_ids": view.message_ids,
        "last_turn": view.last_turn,
        "human": view.human,
    }


def talk_to_person(services: Services, token: object) -> ChatView:
    """The customer asked for a person: hand off, and show the notice and the banner."""
    try:
        customer.ask_for_person(
            services.database, services.manager, token, services.customer_token_key()
        )
    except AccessDenied as exc:
        return ChatView(warning=str(exc))
    return current_view(services.database, token)


@dataclass
class Rating:
    """The reply the customer last rated, for the comment that may follow."""

    message_id: int
    rating: int


def rate(
    database: Database,
    token: object,
    message_ids: list[int | None],
    index: int | Sequence[int] | None,
    liked: bool | str,
) -> Rating | None:
    """A thumbs up (liked True), down (False) or taken back ("") on the chat entry at
    `index`; returns what was rated, or None when a rating was taken back."""
    row = (index[0] if index else None) if isinstance(index, (list, tuple)) else index
    message_id = (
        message_ids[row] if isinstance(row, int) and 0 <= row < len(message_ids or []) else None
    )
    if message_id is None:
        raise AccessDenied("only the replies in your own conversation can be rated")
    if liked is True or liked is False:
        rating = 1 if liked else -1
        customer.give_feedback(database, token, message_id, rating)
        return Rating(message_id, rating)
    customer.withdraw_feedback(database, token, message_id)
    return None


def comment(database: Database, token: object, rated: Rating | None, text: str) -> None:
    """The optional comment on the reply last rated (stored with that rating)."""
    if rated is None:
        raise InputError("rate a reply with a thumb first, then add your comment")
    if not (text or "").strip():
        raise InputError("the comment is empty")
    customer.give_feedback(database, token, rated.message_id, rated.rating, text)
