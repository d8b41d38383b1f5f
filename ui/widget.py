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

This module lays the page out, keeps the limits per client address (messages, hand-offs)
and wires the events, each returning its outputs by component (`ChatWidgets` names what
a drawn chat updates). Where the job ends: what each event does is `ui.widget_chat`'s
(plain functions over `Services`, tested without a browser), deciding what to answer is
the dialogue manager's, access rules are `chatbot.support.customer`'s, and mounting the
page (with `run_history=False`) is `chatbot.app`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.errors import AccessDenied, ChatbotError, InputError
from chatbot.support import customer
from chatbot.ui.handlers import ReplyEventOptions, UnlimitedEventOptions, fills
from chatbot.ui.views import Outputs, components, skip, unchanged
from chatbot.ui.widget_chat import (
    UNAVAILABLE,
    ChatView,
    Rating,
    answer,
    chat_as_it_stands,
    comment,
    on_load,
    poll,
    rate,
    start_over,
    talk_to_person,
    token_or_new,
)

if TYPE_CHECKING:
    import gradio as gr
    from pydantic import SecretStr

    from chatbot.accounts.ratelimit import LoginRateLimiter
    from chatbot.store.database import Database
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

TITLE = "Customer support"
BANNER = "A member of our team is handling your conversation. Their replies will appear here."
TOO_FAST = "You are sending messages faster than we can answer. Please wait {seconds} seconds, then send it again."
TOO_MANY_HANDOFFS = (
    "Our team already has several conversations from you. Please wait {seconds} seconds, "
    "or carry on in the conversation a person is handling."
)
STORAGE_KEY = "chatbot-widget-token"
# Replies written at once across all customers (each runs the reply model).
REPLY_CONCURRENCY = 4
LIGHT: UnlimitedEventOptions = {"concurrency_limit": None, "api_visibility": "private"}


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


# -- the page's components ---------------------------------------------------------------


@dataclass
class ChatWidgets:
    """What a drawn chat updates: the chat, the message id behind each entry, the last
    turn shown, whether a person is in charge, and the banner saying so."""

    chat: gr.Chatbot
    message_ids: gr.State
    last_turn: gr.State
    human: gr.State
    banner: gr.Markdown

    def drawn(self, view: ChatView) -> Outputs:
        import gradio as gr

        return {
            self.chat: view.chat,
            self.message_ids: view.message_ids,
            self.last_turn: view.last_turn,
            self.human: view.human,
            self.banner: gr.Markdown(visible=view.human),
        }

    def unchanged(self) -> Outputs:
        return unchanged(self)


@dataclass
class CustomerWidget:
    """The built page and its components, by name."""

    page: gr.Blocks
    token: gr.BrowserState
    shown: ChatWidgets
    box: gr.Textbox
    send_button: gr.Button
    human_button: gr.Button
    new_button: gr.Button
    timer: gr.Timer
    rated: gr.State
    feedback_row: gr.Row
    feedback: gr.Textbox
    feedback_button: gr.Button


def build_widget(services: Services) -> gr.Blocks:
    return customer_widget(services).page


def customer_widget(services: Services) -> CustomerWidget:
    """Lay the page out, then wire its events."""
    import gradio as gr

    page = gr.Blocks(title=TITLE, analytics_enabled=False)
    with page:
        ui = _layout(services, page)
        _wire_conversation(services, ui)
        _wire_messages(services, ui, Limits.of(services))
        _wire_feedback(services, ui)
    return ui


def _layout(services: Services, page: gr.Blocks) -> CustomerWidget:
    import gradio as gr

    token = gr.BrowserState(
        None, storage_key=STORAGE_KEY, secret=browser_secret(services.settings.web.session_secret)
    )
    message_ids = gr.State([])
    last_turn = gr.State(-1)
    human = gr.State(False)
    rated = gr.State(None)
    timer = gr.Timer(services.settings.web.poll_seconds)

    gr.Markdown(f"## {TITLE}")
    banner = gr.Markdown(BANNER, elem_id="status-banner", visible=False)
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
        send_button = gr.Button("Send", elem_id="send", variant="primary", scale=1, min_width=80)
    with gr.Row(visible=False) as feedback_row:
        feedback = gr.Textbox(
            elem_id="feedback-comment", label="Tell us more (optional)", lines=2, scale=5
        )
        feedback_button = gr.Button("Send feedback", elem_id="send-feedback", scale=1, min_width=80)
    with gr.Row():
        human_button = gr.Button("Talk to a person", elem_id="talk-to-human", size="sm")
        new_button = gr.Button(
            "New conversation", elem_id="new-conversation", size="sm", variant="secondary"
        )
    return CustomerWidget(
        page=page,
        token=token,
        shown=ChatWidgets(chat, message_ids, last_turn, human, banner),
        box=box,
        send_button=send_button,
        human_button=human_button,
        new_button=new_button,
        timer=timer,
        rated=rated,
        feedback_row=feedback_row,
        feedback=feedback,
        feedback_button=feedback_button,
    )


# -- what the handlers share ---------------------------------------------------------------


@dataclass
class Limits:
    """Per client address, in this process: messages before any reaches the reply model,
    and conversations handed to the agents (the button, or a message the assistant hands
    off): an address over it sends nothing that could add another."""

    messages: LoginRateLimiter
    handoffs: LoginRateLimiter

    @classmethod
    def of(cls, services: Services) -> Limits:
        from chatbot.accounts.ratelimit import LoginRateLimiter

        web = services.settings.web
        return cls(
            LoginRateLimiter(web.message_limit, web.message_window_seconds),
            LoginRateLimiter(web.handoff_limit, web.handoff_window_seconds),
        )


def _with_person(database: Database, token: str) -> bool:
    try:
        return customer.human_in_charge(database, token)
    except ChatbotError:
        return False


def _warn(view: ChatView) -> None:
    import gradio as gr

    if view.warning:
        gr.Warning(view.warning)


def _trouble(exc: Exception) -> None:
    """A refused request says why; anything else is ours to fix, not the customer's
    to read (no error text from the store reaches an anonymous page)."""
    import gradio as gr

    if isinstance(exc, InputError):
        gr.Warning(exc.reason)
    elif isinstance(exc, AccessDenied):
        gr.Warning(str(exc))
    else:
        log.error("customer widget: %s", exc, exc_info=not isinstance(exc, ChatbotError))
        gr.Warning(UNAVAILABLE)


def _refused(database: Database, token: str, warning: str) -> ChatView:
    """A message not sent: the chat as it stands, the warning, the text kept in the box."""
    view = ChatView(warning=warning, keep_input=True, **chat_as_it_stands(database, token))
    _warn(view)
    return view


def replies(
    services: Services, limits: Limits, token: object, message: str, request: gr.Request
) -> Iterator[tuple[str, ChatView]]:
    """The one path of a customer's message, typed or a choice clicked: the message
    limit, then the reply as it streams (the token, and each view to draw)."""
    database = services.database
    # A message sent before the page's load event gave the browser its token (a
    # quick typist, a slow start) still gets a conversation, not a refusal.
    token = token_or_new(token, services.customer_token_key())
    client = client_address(request)
    person_before = _with_person(database, token)
    if (message or "").strip():
        if not limits.messages.hit(client):  # too many messages from this address: not sent
            seconds = max(1, round(limits.messages.retry_after(client)))
            yield token, _refused(database, token, TOO_FAST.format(seconds=seconds))
            return
        wait = 0.0 if person_before else limits.handoffs.retry_after(client)
        if wait > 0:  # it could hand off one conversation too many: not sent
            warning = TOO_MANY_HANDOFFS.format(seconds=max(1, round(wait)))
            yield token, _refused(database, token, warning)
            return
    last = None
    for view in answer(services, token, message):
        _warn(view)
        last = view
        yield token, view
    # The last view is the chat as stored after the reply: whether a person has it now.
    if last is not None and not person_before and last.human:
        limits.handoffs.hit(client)  # this message handed the conversation off


# -- the events ------------------------------------------------------------------------------


def _wire_conversation(services: Services, ui: CustomerWidget) -> None:
    """Loading the page, polling for an agent's messages, starting over."""
    import gradio as gr

    database, key, shown = services.database, services.customer_token_key(), ui.shown

    def load_page(token: object) -> Outputs:
        try:
            token, view = on_load(database, token, key)
        except Exception as exc:
            _trouble(exc)
            return {ui.token: skip(), **shown.unchanged()}
        return {ui.token: token, **shown.drawn(view)}

    def new_conversation() -> Outputs:
        token, view = start_over(key)
        return {
            ui.token: token,
            **shown.drawn(view),
            ui.rated: None,
            ui.feedback_row: gr.Row(visible=False),
            ui.feedback: "",
        }

    def refresh(token: object, last_turn: int, human: bool) -> Outputs:
        try:
            view = poll(database, token, last_turn, human)
        except Exception as exc:
            log.warning("customer widget: polling failed: %s", exc)
            view = None
        return shown.unchanged() if view is None else shown.drawn(view)

    view_outputs = components(shown)
    ui.page.load(load_page, [ui.token], [ui.token, *view_outputs], **LIGHT)
    ui.timer.tick(
        refresh,
        [ui.token, shown.last_turn, shown.human],
        view_outputs,
        show_progress="hidden",
        **LIGHT,
    )
    # The chat's own "clear" (bin) button starts over as well: the chat is the store's.
    for trigger in (ui.new_button.click, shown.chat.clear):
        trigger(
            new_conversation,
            None,
            [ui.token, *view_outputs, ui.rated, ui.feedback_row, ui.feedback],
            **LIGHT,
        )


def _wire_messages(services: Services, ui: CustomerWidget, limits: Limits) -> None:
    """A message typed or a choice clicked (both through `replies`), and "Talk to a person"."""
    import gradio as gr

    shown = ui.shown

    @fills(request=gr.Request)
    def send(token: object, message: str, request: gr.Request) -> Iterator[Outputs]:
        for kept, view in replies(services, limits, token, message, request):
            # A message that was not sent stays in the box.
            box_text = message if view.keep_input else ""
            yield {
                ui.token: kept,
                **shown.drawn(view),
                ui.box: box_text,
                ui.timer: gr.Timer(active=view.final),
            }

    @fills(data=gr.SelectData, request=gr.Request)
    def choose(token: object, data: gr.SelectData, request: gr.Request) -> Iterator[Outputs]:
        """A choice of a clarifying question clicked: its label is sent as the customer's
        next message, as if typed; the box keeps whatever the customer was typing."""
        label = data.value if isinstance(data.value, str) else ""
        for kept, view in replies(services, limits, token, label, request):
            yield {
                ui.token: kept,
                **shown.drawn(view),
                ui.box: skip(),
                ui.timer: gr.Timer(active=view.final),
            }

    @fills(request=gr.Request)
    def person(token: object, request: gr.Request) -> Outputs:
        client = client_address(request)
        if (
            isinstance(token, str)
            and not _with_person(services.database, token)
            and not limits.handoffs.hit(client)
        ):
            seconds = max(1, round(limits.handoffs.retry_after(client)))
            gr.Warning(TOO_MANY_HANDOFFS.format(seconds=seconds))
            return shown.unchanged()
        try:
            view = talk_to_person(services, token)
        except Exception as exc:
            _trouble(exc)
            return shown.unchanged()
        _warn(view)
        return shown.unchanged() if view.warning else shown.drawn(view)

    reply_outputs = [ui.token, *components(shown), ui.box, ui.timer]
    reply_options: ReplyEventOptions = {
        "concurrency_limit": REPLY_CONCURRENCY,
        "concurrency_id": "reply",
        "api_visibility": "private",
        "trigger_mode": "once",
        "show_progress": "hidden",
    }
    gr.on(
        [ui.box.submit, ui.send_button.click],
        send,
        [ui.token, ui.box],
        reply_outputs,
        **reply_options,
    )
    # A clarifying question's buttons (the last message's options): the same path,
    # sharing the same limit of replies written at once.
    shown.chat.option_select(choose, [ui.token], reply_outputs, **reply_options)
    ui.human_button.click(person, [ui.token], components(shown), **LIGHT)


def _wire_feedback(services: Services, ui: CustomerWidget) -> None:
    """Thumbs on a reply, then the optional comment on it."""
    import gradio as gr

    database = services.database

    @fills(data=gr.LikeData)
    def liked(
        token: object, message_ids: list[int | None], data: gr.LikeData
    ) -> tuple[Rating | None, gr.Row]:
        try:
            rated = rate(database, token, message_ids, data.index, data.liked)
        except Exception as exc:
            _trouble(exc)
            return None, gr.Row(visible=False)
        if rated is None:
            return None, gr.Row(visible=False)
        gr.Info("Thank you for your feedback. You can tell us more below.")
        return rated, gr.Row(visible=True)

    def send_comment(token: object, rated: Rating | None, text: str) -> tuple[str, gr.Row]:
        try:
            comment(database, token, rated, text)
        except Exception as exc:
            _trouble(exc)
            return text, gr.Row(visible=True)
        gr.Info("Thank you, your comment is saved.")
        return "", gr.Row(visible=False)

    ui.shown.chat.like(
        liked, [ui.token, ui.shown.message_ids], [ui.rated, ui.feedback_row], **LIGHT
    )
    gr.on(
        [ui.feedback_button.click, ui.feedback.submit],
        send_comment,
        [ui.token, ui.rated, ui.feedback],
        [ui.feedback, ui.feedback_row],
        **LIGHT,
    )
