"""The Gradio app: a customer chat widget over the dialogue manager, and a status page.

Builds the Blocks from services passed in (the database, the dialogue manager);
loading models and migrating the store happen before, in `chatbot.bootstrap`.
Errors from the library are shown to the user as messages, never as tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from chatbot.errors import ChatbotError, InputError
from chatbot.store.conversations import table_counts
from chatbot.store.database import Database

log = logging.getLogger(__name__)


class Responder(Protocol):
    """What the widget needs of the dialogue manager."""

    def respond_stream(self, message: str, conversation_id: int | None = None, *, source: str = "widget") -> Iterator[Any]:
        ...


def _text_of(content: Any) -> str:
    """Gradio 6 may hand message content back as a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(_text_of(part.get("text", "")) if isinstance(part, dict) else str(part) for part in content)
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return str(content)


@dataclass
class ChatTurn:
    """What the chat widget shows after each step of answering one message."""

    history: list[dict[str, str]]
    conversation_id: int | None
    warning: str | None = None
    keep_input: bool = False
    details: str = ""


def describe(reply: Any) -> str:
    """The line under the chat: decision, confidence and the sources of the answer."""
    parts = [f"**{reply.decision.replace('_', ' ')}** ({reply.reason.replace('_', ' ')})"]
    if reply.confidence is not None:
        parts.append(f"confidence {reply.confidence:.2f}")
    sources = [
        f"conversation {c.get('conversation_id')} turn {c.get('turn_index')}" for c in reply.citations[:3]
    ]
    if sources:
        parts.append("sources: " + "; ".join(sources))
    return " · ".join(parts)


def answer_customer(
    *, responder: Responder, conversation_id: int | None, history: list[dict[str, Any]], message: str
) -> Iterator[ChatTurn]:
    """Hand the message to the dialogue manager and stream its reply into the history.

    The manager stores the message before anything else, so a failing model never
    loses what the customer said."""
    history = [{"role": m["role"], "content": _text_of(m["content"])} for m in (history or [])]
    text = (message or "").strip()
    shown = history + [{"role": "user", "content": text}, {"role": "assistant", "content": "_thinking…_"}]
    reply_text = ""
    try:
        for event in responder.respond_stream(text, conversation_id):
            if event.kind == "token":
                reply_text += event.text
                shown[-1]["content"] = reply_text
                yield ChatTurn(shown, conversation_id)
            elif event.kind == "round":
                shown[-1]["content"] = f"_thinking… (refining, round {event.data.round + 1})_"
                yield ChatTurn(shown, conversation_id)
            elif event.kind == "done":
                reply = event.reply
                if reply.shown_text:
                    shown[-1]["content"] = reply.shown_text
                else:
                    shown = shown[:-1]  # a human is in charge: the assistant stays silent
                yield ChatTurn(shown, reply.conversation_id, details=describe(reply))
    except InputError as exc:
        yield ChatTurn(history, conversation_id, exc.reason, keep_input=True)
    except ChatbotError as exc:
        log.warning("reply failed for conversation %s: %s", conversation_id, exc)
        shown[-1]["content"] = "Sorry, I cannot answer right now. A human agent will pick this up."
        yield ChatTurn(shown, conversation_id, f"The assistant failed: {exc}")


def build_app(*, database: Database, responder: Responder, title: str = "Support assistant"):
    import gradio as gr

    def respond(message: str, history: list[dict[str, Any]], conversation_id: int | None):
        for turn in answer_customer(
            responder=responder, conversation_id=conversation_id, history=history, message=message
        ):
            if turn.warning:
                gr.Warning(turn.warning)
            yield turn.history, turn.conversation_id, message if turn.keep_input else "", turn.details

    def status() -> str:
        try:
            with database.session() as session:
                counts = table_counts(session=session)
        except ChatbotError as exc:
            return f"Database unavailable: {exc}"
        rows = "\n".join(f"| {name} | {count} |" for name, count in counts.items())
        return f"| table | rows |\n|---|---|\n{rows}"

    with gr.Blocks(title=title) as app:
        gr.Markdown(f"# {title}")
        with gr.Tab("Chat"):
            conversation = gr.State(None)
            chat = gr.Chatbot(label="Conversation", height=480)
            details = gr.Markdown()
            box = gr.Textbox(placeholder="Ask about an order, a return, a refund…", label="Your message")
            send = gr.Button("Send", variant="primary")
            for trigger in (box.submit, send.click):
                trigger(respond, [box, chat, conversation], [chat, conversation, box, details])
        with gr.Tab("Status"):
            table = gr.Markdown()
            refresh = gr.Button("Refresh")
            refresh.click(status, None, table)
            app.load(status, None, table)
    return app
