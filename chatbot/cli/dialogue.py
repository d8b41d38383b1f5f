"""`chatbot ask` and `chatbot chat`: the dialogue manager from the terminal. Both store
the conversation like the web widget does; rendering only, the answering is
`chatbot.dialogue.manager`'s. Everything printed that a customer, an agent or a model
wrote goes through `chatbot.text.sanitize.clean_text` first (rows stored before
messages were cleaned may still hold terminal escape sequences)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app
from chatbot.dialogue.records import Decision, Reply
from chatbot.text.sanitize import clean_text

if TYPE_CHECKING:
    from chatbot.dialogue.manager import DialogueManager
    from chatbot.settings import Settings
    from chatbot.store.database import Database

_LABEL = {
    Decision.ANSWER: "answered",
    Decision.ANSWER_FLAGGED: "answered, flagged for agent review",
    Decision.HELD: "held for agent review (not sent)",
    Decision.HANDOFF: "handed off to a human",
    Decision.SILENT: "a human agent is in charge; the assistant stays silent",
    Decision.ACT: "answered a greeting, thanks or the like",
    Decision.DECLINE: "declined: not the kind of question we answer",
    Decision.CLARIFY: "asked which topic is meant",
}
NEEDS_CASE_LABEL = "asked for the order number"
CHOICE_HINT = "(answer with a number from 1 to {n}, or the topic's words)"


def build_manager(settings: Settings) -> tuple[DialogueManager, Database]:
    """(manager, database); a separate function so tests can build it their way."""
    from chatbot.cli.manager import open_manager

    return open_manager(settings)


def _label(reply: Reply) -> str:
    if reply.decision == Decision.CLARIFY and not reply.options:
        return NEEDS_CASE_LABEL
    return _LABEL.get(reply.decision, str(reply.decision))


def _footer(reply: Reply) -> str:
    confidence = "n/a" if reply.confidence is None else f"{reply.confidence:.2f}"
    smoothed = "n/a" if reply.smoothed_confidence is None else f"{reply.smoothed_confidence:.2f}"
    lines = [
        f"[{_label(reply)}; reason: {reply.reason}; confidence {confidence} "
        f"(smoothed {smoothed}); conversation {reply.conversation_id}; {reply.timings.get('total', 0):.2f}s]"
    ]
    for c in reply.citations:
        snippet = " ".join(clean_text(c.snippet).split())
        lines.append(
            f"  source: conversation {c.conversation_id} turn {c.turn_index} ({c.source}): "
            f"{snippet[:120]}"
        )
    return clean_text("\n".join(lines))


@click.command("ask")
@click.argument("message")
@click.option(
    "--conversation",
    "conversation_id",
    type=int,
    default=None,
    help="Continue this conversation (id).",
)
@json_option
@pass_app
def ask(app: AppContext, message: str, conversation_id: int | None, as_json: bool) -> None:
    """Answer one customer MESSAGE, with citations, confidence and the decision."""
    manager, database = build_manager(app.settings)
    try:
        reply = manager.respond(message, conversation_id, source="cli")
    finally:
        database.dispose()
    if as_json:
        emit_json(reply.to_dict())
        return
    if reply.shown_text:
        click.echo(clean_text(reply.shown_text))
    if reply.options:
        click.echo(
            f"(answer with: chatbot ask NUMBER --conversation {reply.conversation_id}; "
            f"a number from 1 to {len(reply.options)}, or the topic's words)",
            err=True,
        )
    click.echo(_footer(reply), err=True)


@click.command("chat")
@click.option(
    "--conversation",
    "conversation_id",
    type=int,
    default=None,
    help="Continue this conversation (id).",
)
@click.option(
    "--details/--no-details",
    default=True,
    show_default=True,
    help="Show decision, confidence and sources.",
)
@pass_app
def chat(app: AppContext, conversation_id: int | None, details: bool) -> None:
    """An interactive session in the terminal (empty line or Ctrl-D to quit).

    A clarifying question lists its choices by number: type the number (or the topic's
    words) as the next message."""
    from chatbot.dialogue.manager import EventKind
    from chatbot.errors import InputError

    manager, database = build_manager(app.settings)
    interactive = sys.stdin.isatty()
    click.echo("Type your message (empty line or Ctrl-D to quit).", err=True)
    try:
        while True:
            try:
                message = input("you> " if interactive else "")
            except EOFError:
                break
            if not message.strip():
                break
            try:
                stream = manager.respond_stream(message, conversation_id, source="cli")
                started = False
                for event in stream:
                    if event.kind == EventKind.STAGE and details and event.text not in ("done",):
                        click.echo(f"  ({event.text}…)", err=True)
                    elif event.kind == EventKind.ROUND and details:
                        click.echo(f"  ({clean_text(event.text)})", err=True)
                    elif event.kind == EventKind.TOKEN:
                        if not started:
                            click.echo("bot> ", nl=False)
                            started = True
                        click.echo(clean_text(event.text), nl=False)
                    elif (
                        event.kind == EventKind.REPLACE
                    ):  # the words so far were a draft; this is the answer
                        click.echo(
                            ("\n" if started else "") + "bot> " + clean_text(event.text), nl=False
                        )
                        started = True
                    elif event.kind == EventKind.DONE:
                        reply = event.reply
                        assert reply is not None  # `done` always carries the reply
                        conversation_id = reply.conversation_id
                        if started:
                            click.echo()
                        if reply.options:
                            click.echo(CHOICE_HINT.format(n=len(reply.options)), err=True)
                        if details:
                            click.echo(_footer(reply), err=True)
            except InputError as exc:
                click.echo(f"error: {clean_text(str(exc))}", err=True)
    finally:
        database.dispose()
