"""The customer chat widget at `/`: a Gradio page a company embeds in its site.

The conversation belongs to a random token kept in the customer's browser
(`gr.BrowserState`), so it survives a reload; every handler resolves the conversation
from that token on the server (`chatbot.support.customer`) and never trusts the chat the
browser sends back: the chat is rebuilt from the store. Replies stream in as the
dialogue manager writes them (a draft word by word as the model writes it, replaced when
a better answer wins),
with their sources folded under them; a clarifying question ("which of these is it
about?") offers its choices as buttons under it (Gradio's own message options: a click
sends the label as the customer's next message, through the same handler as typing);
"Talk to a person" hands the conversation to the agents, whose messages arrive by
polling; thumbs up/down and a comment are stored per reply. Everything a customer or a
model wrote is shown as escaped text.

Where the job ends: deciding what to answer is the dialogue manager's, access rules are
`chatbot.support.customer`'s, and mounting the page (with `run_history=False`) is
`chatbot.app`'s. The handler logic is plain functions over `Services` (tested
without a browser); `build_widget` only wires them to components.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, NotRequired, TypeAlias, TypedDict

from chatbot.dialogue.records import numbered_choices
from chatbot.errors import AccessDenied, ChatbotError, InputError
from chatbot.support import customer
from chatbot.text.sanitize import clean_text, visible
from chatbot.ui.handlers import ChatMessage, UnlimitedEventOptions, Update, fills

if TYPE_CHECKING:
    import gradio as gr
    from pydantic import SecretStr

    from chatbot.store.database import Database
    from chatbot.web.services import Services

    # What a drawn chat sends to its outputs: chat, message ids, last turn, human, banner.
    # (A string: ChatEntry is defined below.)
    Drawn: TypeAlias = "tuple[list[ChatEntry], list[int | None], int, bool, gr.Markdown]"

log = logging.getLogger(__name__)

TITLE = "Customer support"
BANNER = "A member of our team is handling your conversation. Their replies will appear here."
FAILED = "Sorry, I cannot answer right now. Please try again in a moment, or press \u201cTalk to a person\u201d."
UNAVAILABLE = "Sorry, the chat is unavailable right now. Please try again in a moment."
EMPTY = "Please type a message first."
TOO_FAST = "You are sending messages faster than we can answer. Please wait {seconds} seconds, then send it again."
TOO_MANY_HANDOFFS = (
    "Our team already has several conversations from you. Please wait {seconds} seconds, "
    "or carry on in the conversation a person is handling."
)
THINKING = "\u2026"
STORAGE_KEY = "chatbot-widget-token"
# Replies written at once across all customers (each runs the reply model).
REPLY_CONCURRENCY = 4


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
        yield ChatView(warning=EMPTY, keep_input=True, **_unchanged(database, token))
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
        yield ChatView(warning=UNAVAILABLE, keep_input=True, **_unchanged(database, token))
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
    yield view


class _Shown(TypedDict):
    chat: list[ChatEntry]
    message_ids: list[int | None]
    last_turn: int
    human: bool


def _unchanged(database: Database, token: object) -> _Shown:
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


def browser_secret(configured: SecretStr | None) -> str:
    """The key the browser's copy of the token is encrypted with. Gradio sends it to the
    page, so it is derived (one-way) from the session secret when one is configured
    (`configured`, the setting `web.session_secret`), never the secret itself; what keeps
    the token private is the browser's per-site storage."""
    seed = configured.get_secret_value() if configured is not None else "chatbot-widget"
    return hmac.new(seed.encode(), b"customer widget browser state", hashlib.sha256).hexdigest()[
        :32
    ]


def client_address(request: gr.Request | None) -> str:
    """The key of the per-client message limit: the address the request came from (no
    proxy header is trusted; behind a proxy, every customer shares the proxy's)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


# -- the page --------------------------------------------------------------------------


def build_widget(services: Services) -> gr.Blocks:
    import gradio as gr

    from chatbot.accounts.ratelimit import LoginRateLimiter

    database = services.database
    web = services.settings.web
    key = services.customer_token_key()
    # Messages per client address (in this process), before any reaches the reply model.
    limiter = LoginRateLimiter(web.message_limit, web.message_window_seconds)
    # Conversations per client address handed to the agents (the button, or a message the
    # assistant hands off): an address over it sends nothing that could add another.
    handoffs = LoginRateLimiter(web.handoff_limit, web.handoff_window_seconds)

    def with_person(token: str) -> bool:
        try:
            return customer.human_in_charge(database, token)
        except ChatbotError:
            return False

    def banner(view: ChatView) -> gr.Markdown:
        return gr.Markdown(visible=view.human)

    def drawn(view: ChatView) -> Drawn:
        """chat, message ids, last turn, human, banner."""
        return view.chat, view.message_ids, view.last_turn, view.human, banner(view)

    def warn(view: ChatView) -> None:
        if view.warning:
            gr.Warning(view.warning)

    def trouble(exc: Exception) -> None:
        """A refused request says why; anything else is ours to fix, not the customer's
        to read (no error text from the store reaches an anonymous page)."""
        if isinstance(exc, InputError):
            gr.Warning(exc.reason)
        elif isinstance(exc, AccessDenied):
            gr.Warning(str(exc))
        else:
            log.error("customer widget: %s", exc, exc_info=not isinstance(exc, ChatbotError))
            gr.Warning(UNAVAILABLE)

    def load_page(token: object) -> tuple[str, *Drawn] | tuple[Update, ...]:
        try:
            token, view = on_load(database, token, key)
        except Exception as exc:
            trouble(exc)
            return (gr.skip(),) * 6
        return (token, *drawn(view))

    def new_conversation() -> tuple[str, *Drawn, None, gr.Row, str]:
        token, view = start_over(key)
        return (token, *drawn(view), None, gr.Row(visible=False), "")

    def refresh(token: object, last_turn: int, human: bool) -> Drawn | tuple[Update, ...]:
        try:
            view = poll(database, token, last_turn, human)
        except Exception as exc:
            log.warning("customer widget: polling failed: %s", exc)
            view = None
        return (gr.skip(),) * 5 if view is None else drawn(view)

    def replies(token: object, message: str, request: gr.Request) -> Iterator[tuple[str, ChatView]]:
        """The one path of a customer's message, typed or a choice clicked: the message
        limit, then the reply as it streams (the token, and each view to draw)."""
        # A message sent before the page's load event gave the browser its token (a
        # quick typist, a slow start) still gets a conversation, not a refusal.
        token = token_or_new(token, key)
        client = client_address(request)
        person_before = with_person(token)
        if (message or "").strip():
            if not limiter.hit(client):  # too many messages from this address: not sent
                seconds = max(1, round(limiter.retry_after(client)))
                view = ChatView(
                    warning=TOO_FAST.format(seconds=seconds),
                    keep_input=True,
                    **_unchanged(database, token),
                )
                warn(view)
                yield token, view
                return
            wait = 0.0 if person_before else handoffs.retry_after(client)
            if wait > 0:  # it could hand off one conversation too many: not sent
                view = ChatView(
                    warning=TOO_MANY_HANDOFFS.format(seconds=max(1, round(wait))),
                    keep_input=True,
                    **_unchanged(database, token),
                )
                warn(view)
                yield token, view
                return
        last = None
        for view in answer(services, token, message):
            warn(view)
            last = view
            yield token, view
        # The last view is the chat as stored after the reply: whether a person has it now.
        if last is not None and not person_before and last.human:
            handoffs.hit(client)  # this message handed the conversation off

    @fills(request=gr.Request)
    def send(
        token: object, message: str, request: gr.Request
    ) -> Iterator[tuple[str, *Drawn, str, gr.Timer]]:
        for kept, view in replies(token, message, request):
            # A message that was not sent stays in the box.
            box_text = message if view.keep_input else ""
            yield (kept, *drawn(view), box_text, gr.Timer(active=view.final))

    @fills(data=gr.SelectData, request=gr.Request)
    def choose(
        token: object, data: gr.SelectData, request: gr.Request
    ) -> Iterator[tuple[str, *Drawn, Update, gr.Timer]]:
        """A choice of a clarifying question clicked: its label is sent as the customer's
        next message, as if typed; the box keeps whatever the customer was typing."""
        label = data.value if isinstance(data.value, str) else ""
        for kept, view in replies(token, label, request):
            yield (kept, *drawn(view), gr.skip(), gr.Timer(active=view.final))

    @fills(request=gr.Request)
    def person(token: object, request: gr.Request) -> Drawn | tuple[Update, ...]:
        client = client_address(request)
        if isinstance(token, str) and not with_person(token) and not handoffs.hit(client):
            seconds = max(1, round(handoffs.retry_after(client)))
            gr.Warning(TOO_MANY_HANDOFFS.format(seconds=seconds))
            return (gr.skip(),) * 5
        try:
            view = talk_to_person(services, token)
        except Exception as exc:
            trouble(exc)
            return (gr.skip(),) * 5
        warn(view)
        return (gr.skip(),) * 5 if view.warning else drawn(view)

    @fills(data=gr.LikeData)
    def liked(
        token: object, message_ids: list[int | None], data: gr.LikeData
    ) -> tuple[Rating | None, gr.Row]:
        try:
            rated = rate(database, token, message_ids, data.index, data.liked)
        except Exception as exc:
            trouble(exc)
            return None, gr.Row(visible=False)
        if rated is None:
            return None, gr.Row(visible=False)
        gr.Info("Thank you for your feedback. You can tell us more below.")
        return rated, gr.Row(visible=True)

    def send_comment(token: object, rated: Rating | None, text: str) -> tuple[str, gr.Row]:
        try:
            comment(database, token, rated, text)
        except Exception as exc:
            trouble(exc)
            return text, gr.Row(visible=True)
        gr.Info("Thank you, your comment is saved.")
        return "", gr.Row(visible=False)

    light: UnlimitedEventOptions = {"concurrency_limit": None, "api_visibility": "private"}
    page = gr.Blocks(title=TITLE, analytics_enabled=False)
    with page:
        token = gr.BrowserState(
            None,
            storage_key=STORAGE_KEY,
            secret=browser_secret(services.settings.web.session_secret),
        )
        message_ids = gr.State([])
        last_turn = gr.State(-1)
        human = gr.State(False)
        rated = gr.State(None)
        timer = gr.Timer(services.settings.web.poll_seconds)

        gr.Markdown(f"## {TITLE}")
        status = gr.Markdown(BANNER, elem_id="status-banner", visible=False)
        chat = gr.Chatbot(
            elem_id="chat",
            label="Conversation",
            show_label=False,
            height=460,
            render_markdown=False,
            sanitize_html=True,
            allow_tags=False,
            buttons=[],
            feedback_options=("Like", "Dislike"),
            placeholder="Ask about an order, a delivery, a return or a refund.",
            group_consecutive_messages=False,
        )
        with gr.Row():
            box = gr.Textbox(
                elem_id="message",
                show_label=False,
                placeholder="Type your message\u2026",
                lines=1,
                max_lines=6,
                scale=5,
                autofocus=True,
            )
            send_button = gr.Button(
                "Send", elem_id="send", variant="primary", scale=1, min_width=80
            )
        with gr.Row(visible=False) as feedback_row:
            feedback = gr.Textbox(
                elem_id="feedback-comment", label="Tell us more (optional)", lines=2, scale=5
            )
            feedback_button = gr.Button(
                "Send feedback", elem_id="send-feedback", scale=1, min_width=80
            )
        with gr.Row():
            human_button = gr.Button("Talk to a person", elem_id="talk-to-human", size="sm")
            new_button = gr.Button(
                "New conversation", elem_id="new-conversation", size="sm", variant="secondary"
            )

        view_outputs = [chat, message_ids, last_turn, human, status]
        page.load(load_page, [token], [token, *view_outputs], **light)
        timer.tick(
            refresh, [token, last_turn, human], view_outputs, show_progress="hidden", **light
        )
        gr.on(
            [box.submit, send_button.click],
            send,
            [token, box],
            [token, *view_outputs, box, timer],
            concurrency_limit=REPLY_CONCURRENCY,
            concurrency_id="reply",
            api_visibility="private",
            trigger_mode="once",
            show_progress="hidden",
        )
        # A clarifying question's buttons (the last message's options): the same path,
        # sharing the same limit of replies written at once.
        chat.option_select(
            choose,
            [token],
            [token, *view_outputs, box, timer],
            concurrency_limit=REPLY_CONCURRENCY,
            concurrency_id="reply",
            api_visibility="private",
            trigger_mode="once",
            show_progress="hidden",
        )
        human_button.click(person, [token], view_outputs, **light)
        # The chat's own "clear" (bin) button starts over as well: the chat is the store's.
        for trigger in (new_button.click, chat.clear):
            trigger(
                new_conversation,
                None,
                [token, *view_outputs, rated, feedback_row, feedback],
                **light,
            )
        chat.like(liked, [token, message_ids], [rated, feedback_row], **light)
        gr.on(
            [feedback_button.click, feedback.submit],
            send_comment,
            [token, rated, feedback],
            [feedback, feedback_row],
            **light,
        )
    return page
