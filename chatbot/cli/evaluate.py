"""`chatbot eval`: evaluation commands. Each capability adds its subcommand here
(`eval intents` comes from `chatbot.cli.retrieval`, `eval replies` from
`chatbot.cli.eval_replies`)."""

from __future__ import annotations

import click

from chatbot.cli.eval_replies import replies_command
from chatbot.cli.retrieval import intents_command


@click.group("eval")
def group() -> None:
    """Measure the assistant on held-out data."""


group.add_command(intents_command)
group.add_command(replies_command)
