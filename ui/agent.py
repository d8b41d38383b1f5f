"""The agent console (`/agent`): the queue of conversations that need a human, with
live counts and a filter by reason; one conversation opened in full with the suggested
reply, its confidence, the past answers it cites (each openable in full) and the
refinement trace; and the actions — take over, approve and send, edit then send,
reject with a reason, reply freely, release, hand back to the assistant.

The page polls (`settings.web.poll_seconds`): the queue and the opened conversation
update by themselves (a new customer message appears without a reload), while the
suggestion box keeps what the agent is typing until another suggestion comes up.
Everything a customer, an agent or a model wrote is shown as text: escaped before it
reaches the chat, and in plain-text cells and boxes elsewhere.

Who is asking comes from the login (`chatbot.web.auth.current_user`); what an action
does, and who may do it, is `chatbot.support.review`'s; what the queue and a
conversation hold is `chatbot.support.queue`'s. The handlers below are plain functions
of (services, agent, values) so they can be tested without a browser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatbot.errors import ChatbotError
from chatbot.support.queue import CitedAnswer
from chatbot.ui.agent_actions import agent_of, run_action
from chatbot.ui.agent_conversation import (
    ConversationColumn,
    ConversationWidgets,
    conversation_column,
    conversation_view,
    evidence_text,
)
from chatbot.ui.agent_queue import QueueColumn, queue_column, queue_view, selected_conversation
from chatbot.ui.agent_text import md_text
from chatbot.ui.handlers import EventOptions, QuietEventOptions, fills
from chatbot.ui.views import Outputs, components, skip, unchanged, updates

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.accounts.users import UserInfo
    from chatbot.web.services import Services

TITLE = "Agent console"
PRIVATE: EventOptions = {"api_visibility": "private"}
QUIET: QuietEventOptions = {"api_visibility": "private", "show_progress": "hidden"}


@dataclass
class AgentConsole:
    """The built page and its panels' components, by name."""

    page: gr.Blocks
    whoami: gr.Markdown
    timer: gr.Timer
    queue: QueueColumn
    conversation: ConversationColumn


def build_agent_console(services: Services) -> gr.Blocks:
    return agent_console(services).page


def agent_console(services: Services) -> AgentConsole:
    """Lay the page out, then wire its events panel by panel."""
    import gradio as gr

    from chatbot.web.auth import LOGOUT_FORM

    page = gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True)
    with page:
        timer = gr.Timer(services.settings.web.poll_seconds)
        with gr.Row():
            gr.Markdown(f"## {TITLE}")
            whoami = gr.Markdown(elem_id="whoami", latex_delimiters=[])
            # A form posted in this tab: the session ends in the store, the page goes.
            gr.HTML(LOGOUT_FORM, elem_id="logout-form", elem_classes=["logout-form"])
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=380):
                queue = queue_column()
            with gr.Column(scale=3, min_width=480):
                conversation = conversation_column(queue.number)
        console = AgentConsole(page, whoami, timer, queue, conversation)
        _wire_queue(services, console)
        _wire_opening(services, console)
        _wire_actions(services, console)
    return console


def _viewer(services: Services, request: gr.Request) -> UserInfo | None:
    try:
        return agent_of(services, request)
    except ChatbotError:
        return None


def _opened(
    services: Services,
    widgets: ConversationWidgets,
    conversation_id: int | None,
    viewer: UserInfo | None,
    shown_reply: int | None,
    shown_signature: str | None,
    *,
    redraw: bool = False,
    fresh: bool = False,
) -> Outputs:
    """The conversation panel's outputs: every one a skip when nothing changed."""
    if conversation_id is None:
        return unchanged(widgets)
    view = conversation_view(
        services,
        conversation_id,
        viewer,
        shown_reply,
        shown_signature,
        redraw=redraw,
        fresh=fresh,
    )
    return updates(view, widgets) if view is not None else unchanged(widgets)


def _wire_queue(services: Services, console: AgentConsole) -> None:
    """The page's load, the poll, the filter and the refresh button."""
    import gradio as gr

    queue, opened = console.queue.widgets, console.conversation.widgets

    @fills(request=gr.Request)
    def on_load(reason: str | None, request: gr.Request) -> Outputs:
        who = _viewer(services, request)
        name = md_text(who.username) if who else "nobody"
        return {
            **updates(queue_view(services, reason), queue),
            console.whoami: f"Logged in as **{name}**",
        }

    @fills(request=gr.Request)
    def on_tick(
        reason: str | None,
        conversation_id: int | None,
        shown_reply: int | None,
        shown_signature: str,
        request: gr.Request,
    ) -> Outputs:
        viewer = _viewer(services, request)
        return {
            **updates(queue_view(services, reason), queue),
            **_opened(services, opened, conversation_id, viewer, shown_reply, shown_signature),
        }

    def on_filter(reason: str | None) -> Outputs:
        return updates(queue_view(services, reason), queue)

    reason = console.queue.reason
    queue_out = components(queue)
    console.page.load(on_load, [reason], [*queue_out, console.whoami], **PRIVATE)
    console.timer.tick(
        on_tick,
        [reason, opened.opened, opened.reply_id, opened.signature],
        [*queue_out, *components(opened)],
        **QUIET,
    )
    reason.change(on_filter, [reason], queue_out, **PRIVATE)
    console.queue.refresh.click(on_filter, [reason], queue_out, **PRIVATE)


def _wire_opening(services: Services, console: AgentConsole) -> None:
    """Opening a conversation: a queue row, its number, the chat's clear, the evidence picker."""
    import gradio as gr

    opened, status = console.conversation.widgets, console.conversation.actions.status

    @fills(evt=gr.SelectData, request=gr.Request)
    def on_select(ids: list[int], evt: gr.SelectData, request: gr.Request) -> Outputs:
        conversation_id = selected_conversation(ids, evt.index, evt.row_value)
        viewer = _viewer(services, request) if conversation_id is not None else None
        return {
            **_opened(services, opened, conversation_id, viewer, None, None, fresh=True),
            status: "",
        }

    @fills(request=gr.Request)
    def on_open(number: float | None, request: gr.Request) -> Outputs:
        try:
            conversation_id = int(number) if number is not None else None
        except (TypeError, ValueError):
            conversation_id = None
        if conversation_id is None:
            return {**unchanged(opened), status: "Type a conversation number to open it."}
        viewer = _viewer(services, request)
        return {
            **_opened(services, opened, conversation_id, viewer, None, None, fresh=True),
            status: "",
        }

    @fills(request=gr.Request)
    def on_reload(
        conversation_id: int | None, shown_reply: int | None, request: gr.Request
    ) -> Outputs:
        """The chat's own clear button empties only the browser's copy: draw it again."""
        viewer = _viewer(services, request) if conversation_id is not None else None
        return _opened(services, opened, conversation_id, viewer, shown_reply, None, redraw=True)

    def on_evidence(evidence: list[CitedAnswer] | None, pair_id: int | None) -> str:
        return evidence_text(evidence or [], pair_id)

    panel_out = components(opened)
    console.queue.widgets.table.select(
        on_select, [console.queue.widgets.ids], [*panel_out, status], **PRIVATE
    )
    console.queue.open_button.click(on_open, [opened.number], [*panel_out, status], **PRIVATE)
    opened.chat.clear(on_reload, [opened.opened, opened.reply_id], panel_out, **PRIVATE)
    opened.evidence_choice.change(
        on_evidence, [opened.evidence, opened.evidence_choice], [opened.evidence_text], **QUIET
    )


def _wire_actions(services: Services, console: AgentConsole) -> None:
    """Each action button: act, then redraw the queue and the opened conversation."""
    import gradio as gr

    actions = console.conversation.actions
    wiring = [
        (actions.take, "take_over", None, None),
        (actions.approve, "approve", None, None),
        (actions.send_edit, "edit", console.conversation.widgets.suggestion, None),
        (actions.reject, "reject", actions.reject_reason, actions.reject_reason),
        (actions.send_reply, "reply", actions.free_reply, actions.free_reply),
        (actions.back, "hand_back", None, None),
        (actions.release, "release", None, None),
    ]
    opened = console.conversation.widgets
    for button, action, source, cleared in wiring:
        cleared_box = cleared if cleared is not None else gr.State(None)
        text_in = source if source is not None else gr.State("")
        button.click(
            _acting(services, console, action, cleared_box, clears=cleared is not None),
            [opened.opened, opened.reply_id, text_in, console.queue.reason],
            [actions.status, cleared_box, *components(console.queue.widgets), *components(opened)],
            trigger_mode="once",
            **PRIVATE,
        )


def _acting(
    services: Services,
    console: AgentConsole,
    action: str,
    cleared_box: gr.Component,
    *,
    clears: bool,
) -> Callable[..., Outputs]:
    import gradio as gr

    status, queue = console.conversation.actions.status, console.queue.widgets
    opened = console.conversation.widgets

    @fills(request=gr.Request)
    def handler(
        conversation_id: int | None,
        reply_id: int | None,
        text: str,
        reason: str | None,
        request: gr.Request,
    ) -> Outputs:
        try:
            agent = agent_of(services, request)
        except ChatbotError as exc:
            return {
                status: md_text(f"Refused: {exc}."),
                cleared_box: skip(),
                **unchanged(queue),
                **unchanged(opened),
            }
        outcome = run_action(services, agent, action, conversation_id, reply_id, text)
        # The suggestion box keeps what the agent typed unless another suggestion is up now.
        return {
            status: md_text(outcome.line),
            cleared_box: "" if (clears and outcome.done) else skip(),
            **updates(queue_view(services, reason), queue),
            **_opened(services, opened, conversation_id, agent, reply_id, None, redraw=True),
        }

    handler.__name__ = handler.__qualname__ = f"do_{action}"
    return handler
