"""`chatbot eval`: evaluation commands. Each capability adds its subcommand here
(`eval intents` comes from `chatbot.cli.retrieval`, `eval replies` from
`chatbot.cli.eval_replies`, `eval fit` from `chatbot.cli.eval_fit`)."""

from __future__ import annotations

import click

from chatbot.cli.eval_fit import fit_command
from chatbot.cli.eval_replies import replies_command
from chatbot.cli.retrieval import intents_command


@click.group("eval")
def group() -> None:
    """Measure the assistant on held-out data."""


group.add_command(intents_command)
group.add_command(replies_command)
group.add_command(fit_command)
