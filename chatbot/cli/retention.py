"""`chatbot retention run`: delete or anonymise live conversations with no activity for
N days (the `retention` settings, or the flags). Printing only; the work is
`chatbot.retention`'s. Run it from cron or a systemd timer, e.g. nightly."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:
    from chatbot.retention import Mode


@click.group("retention")
def group() -> None:
    """How long conversations are kept (settings section `retention`)."""


@group.command("run")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Conversations with no activity for this many days (default: retention.days).",
)
@click.option(
    "--anonymise",
    "--anonymize",
    "mode",
    flag_value="anonymise",
    default=None,
    help="Blank every text, keep the counts, decisions and ratings.",
)
@click.option(
    "--delete",
    "mode",
    flag_value="delete",
    help="Delete them with everything they hold (default: retention.mode).",
)
@click.option(
    "--include-imported", is_flag=True, help="Imported support history too (left alone by default)."
)
@click.option(
    "--delete-pairs",
    is_flag=True,
    help="Also delete the training pairs made from them (agents' approvals; kept by default).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@json_option
@pass_app
def run(
    app: AppContext,
    days: int | None,
    mode: Mode | None,
    include_imported: bool,
    delete_pairs: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Delete or anonymise conversations older than the retention period."""
    from chatbot.errors import ConfigError
    from chatbot.retention import apply_retention
    from chatbot.store.database import Database, require_schema

    settings = app.settings
    days = days or settings.retention.days
    if days is None:
        raise ConfigError(
            "no retention period: pass --days N or set retention.days (CHATBOT_RETENTION__DAYS, or [retention] days in the config file)"
        )
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        report = apply_retention(
            database,
            days=days,
            mode=mode or settings.retention.mode,
            include_imported=include_imported,
            delete_pairs=delete_pairs,
            dry_run=dry_run,
            batch_size=settings.retention.batch_size,
        )
    finally:
        database.dispose()
    if as_json:
        payload = report.to_dict()
        payload.pop("conversation_ids")
        emit_json(payload)
        return
    click.echo(report.describe())
