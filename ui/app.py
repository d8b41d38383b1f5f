"""The Gradio app: a customer chat widget and a status page over what exists.

Builds the Blocks from services passed in (settings, database, a reply function);
loading models and migrating the store happen before, in `chatbot.bootstrap`.
Errors from the library are shown to the user as messages, never as tracebacks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from typing import Any

from chatbot.errors import ChatbotError
from chatbot.store.conversations import add_message, start_conversation, table_counts
from chatbot.store.database import Database

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000

# (history as [{"role": "user"|"assistant", "content": str}], new message) -> streamed reply pieces
ReplyStream = Callable[[list[dict[str, str]], str], Iterator[str]]


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


def answer_customer(
    *, database: Database, reply_stream: ReplyStream, conversation_id: int | None,
    history: list[dict[str, Any]], message: str,
) -> Iterator[ChatTurn]:
    """Store the customer's message, then stream the reply into the history.

    The message is committed before any reply is attempted, so a failing model never
    loses what the customer said; the reply is stored once complete."""
    message = (message or "").strip()
    history = [{"role": m["role"], "content": _text_of(m["content"])} for m in (history or [])]
    if not message:
        yield ChatTurn(history, conversation_id, "Please type a message first.")
        return
    if len(message) > MAX_MESSAGE_CHARS:
        yield ChatTurn(
            history, conversation_id,
            f"That message is {len(message)} characters long; please keep it under {MAX_MESSAGE_CHARS}.",
            keep_input=True,
        )
        return
    try:
        with database.session() as session:
            if conversation_id is None:
                conversation_id = start_conversation(session=session).id
            add_message(session=session, conversation_id=conversation_id, role="customer", text=message)
    except ChatbotError as exc:
        yield ChatTurn(history, conversation_id, f"Your message could not be saved: {exc}", keep_input=True)
        return
    prior = list(history)
    history = history + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
    reply = ""
    try:
        for piece in reply_stream(prior, message):
            reply += piece
            history[-1]["content"] = reply
            yield ChatTurn(history, conversation_id)
    except ChatbotError as exc:
        log.warning("reply failed for conversation %s: %s", conversation_id, exc)
        history[-1]["content"] = "Sorry, I cannot answer right now. A human agent will pick this up."
        yield ChatTurn(history, conversation_id, f"The assistant failed: {exc}")
        return
    with database.session() as session:
        add_message(session=session, conversation_id=conversation_id, role="bot", text=reply.strip())
    yield ChatTurn(history, conversation_id)


def build_app(*, database: Database, reply_stream: ReplyStream, title: str = "Support assistant"):
    import gradio as gr

    def respond(message: str, history: list[dict[str, Any]], conversation_id: int | None):
        for turn in answer_customer(
            database=database, reply_stream=reply_stream, conversation_id=conversation_id,
            history=history, message=message,
        ):
            if turn.warning:
                gr.Warning(turn.warning)
            yield turn.history, turn.conversation_id, message if turn.keep_input else ""

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
            box = gr.Textbox(placeholder="Ask about an order, a return, a refund…", label="Your message")
            send = gr.Button("Send", variant="primary")
            for trigger in (box.submit, send.click):
                trigger(respond, [box, chat, conversation], [chat, conversation, box])
        with gr.Tab("Status"):
            table = gr.Markdown()
            refresh = gr.Button("Refresh")
            refresh.click(status, None, table)
            app.load(status, None, table)
    return app
