"""`chatbot db`: create and migrate the SQL store."""

from __future__ import annotations

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app


@click.group("db")
def group() -> None:
    """Database schema management."""


@group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@json_option
@pass_app
def upgrade(app: AppContext, revision: str, as_json: bool) -> None:
    """Apply the migrations (creates the database on first use)."""
    from chatbot.config import ensure_home
    from chatbot.store.database import redact_url
    from chatbot.store.migrations import upgrade as run_upgrade

    settings = app.settings
    ensure_home(settings.paths)
    before, after = run_upgrade(settings.resolved_database_url, revision)
    url = redact_url(settings.resolved_database_url)
    if as_json:
        emit_json({"database": url, "before": before, "after": after, "changed": before != after})
    elif before == after:
        click.echo(f"{url}: already at revision {after}")
    else:
        click.echo(f"{url}: migrated {before or 'empty'} -> {after}")


@group.command("current")
@json_option
@pass_app
def current(app: AppContext, as_json: bool) -> None:
    """Show the database's revision and the newest one available."""
    from chatbot.store.database import redact_url
    from chatbot.store.migrations import current_revision, head_revision

    url = app.settings.resolved_database_url
    now, head = current_revision(url), head_revision()
    if as_json:
        emit_json(
            {"database": redact_url(url), "current": now, "head": head, "up_to_date": now == head}
        )
    else:
        state = "up to date" if now == head else "needs: chatbot db upgrade"
        click.echo(f"{redact_url(url)}: revision {now or 'none'} (head {head}, {state})")
