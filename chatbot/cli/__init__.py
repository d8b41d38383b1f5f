"""The `chatbot` command line: the front door to every capability.

Each command group lives in its own module and imports heavy libraries only inside
the command that needs them, so `chatbot --help` stays fast. Library errors
(`ChatbotError`) become one line on stderr and exit code 1 here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from chatbot import __version__
from chatbot.errors import ChatbotError

if TYPE_CHECKING:  # the settings import every section: only when a command needs them
    from chatbot.settings import Settings

F = TypeVar("F", bound=Callable[..., object])


class AppContext:
    """What every command gets: the configuration file named on the command line and
    the settings built from it on first use."""

    def __init__(self, config_file: Path | None) -> None:
        self.config_file = config_file
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from chatbot.settings import load_settings

            self._settings = load_settings(self.config_file)
        return self._settings


class ChatbotGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ChatbotError as exc:
            from chatbot.text.sanitize import clean_text

            # Messages may quote a file's or a customer's text: no raw control characters.
            raise click.ClickException(clean_text(str(exc))) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)


pass_app = click.make_pass_decorator(AppContext)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")(
        func
    )


def emit_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


@click.group(cls=ChatbotGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chatbot")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CHATBOT_CONFIG",
    help="TOML configuration file (also CHATBOT_CONFIG). CHATBOT_* variables override it.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, verbose: int) -> None:
    """Self-hosted customer-service assistant.

    Typical first run: chatbot db upgrade, chatbot models prepare, chatbot serve.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = AppContext(config_file)


def _register() -> None:
    from chatbot.cli import (
        config_cmd,
        db,
        dialogue,
        evaluate,
        ingest,
        jobs,
        models,
        orders,
        ranker,
        retention,
        retrieval,
        serve,
        train,
        users,
    )

    for module in (config_cmd, db, models, serve, ingest, retrieval, evaluate, users, retention):
        main.add_command(module.group)
    main.add_command(ingest.import_command)
    main.add_command(dialogue.ask)
    main.add_command(dialogue.chat)
    main.add_command(train.command)
    main.add_command(jobs.group)  # list and cancel; `jobs run` is the hidden background-job worker
    main.add_command(ranker.group)
    main.add_command(orders.group)


_register()
