"""`chatbot config`: show the effective configuration and where it came from."""

from __future__ import annotations

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app


@click.group("config")
def group() -> None:
    """Inspect the configuration."""


@group.command("show")
@json_option
@pass_app
def show(app: AppContext, as_json: bool) -> None:
    """Print the effective settings (defaults, file, CHATBOT_* variables)."""
    from chatbot.store.database import redact_url

    settings = app.settings
    values = settings.model_dump(mode="json")
    values["database_url"] = redact_url(settings.resolved_database_url)
    values["model_cache"] = str(settings.model_cache_dir)
    values["config_file"] = str(app.config_file) if app.config_file else None
    if as_json:
        emit_json(values)
        return
    for key, value in values.items():
        click.echo(f"{key} = {value}")
