"""`chatbot models`: prepare and check the models that ship inside packages, and
list / promote / roll back the trained reply-model versions (`chatbot.models.versions`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:
    from chatbot.models.versions import VersionInfo


@click.group("models")
def group() -> None:
    """Prepare, check and manage models."""


@group.command("prepare")
@click.option("--force", is_flag=True, help="Convert again even if a valid cache exists.")
@json_option
@pass_app
def prepare(app: AppContext, force: bool, as_json: bool) -> None:
    """Check the embedder and convert the reply model from GGUF to the cache (once)."""
    from chatbot.config import ensure_home
    from chatbot.models.embedder import embedder_path
    from chatbot.models.reply_model import converted_dir, prepare_reply_model

    settings = app.settings
    ensure_home(settings.paths)
    embedder = embedder_path(settings.paths)
    if not as_json:
        click.echo(f"embedder: {embedder}", err=True)
        click.echo(f"reply model: preparing {converted_dir(settings.paths)} ...", err=True)
    result = prepare_reply_model(settings.paths, force=force)
    if as_json:
        emit_json({"embedder": str(embedder), "reply_model": asdict(result)})
        return
    if result.action == "converted":
        click.echo(
            f"reply model: converted {result.source} -> {result.path} "
            f"({result.parameters / 1e6:.0f}M parameters) in {result.seconds:.1f}s"
        )
    else:
        click.echo(
            f"reply model: cache {result.path} is up to date (checked in {result.seconds:.2f}s)"
        )


@group.command("check")
@json_option
@pass_app
def check(app: AppContext, as_json: bool) -> None:
    """Load every model as serving would; exit 1 if any fails."""
    from chatbot.models.check import run_checks

    results = run_checks(app.settings.paths)
    if as_json:
        emit_json({"ok": all(r.ok for r in results), "checks": [asdict(r) for r in results]})
    else:
        for r in results:
            click.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail} ({r.seconds:.2f}s)")
    if not all(r.ok for r in results):
        sys.exit(1)


@group.command("list")
@json_option
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """List the trained reply-model versions, newest first, and say which one serves
    (with each version's latest `chatbot eval replies` figures, when it has them)."""
    from chatbot.evaluation.record import evaluation_line
    from chatbot.models.versions import list_versions
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    try:
        require_schema(database.engine)
        versions = list_versions(database)
    finally:
        database.dispose()
    serving = next((v.name for v in versions if v.status == "promoted"), "base")
    if as_json:
        emit_json({"serving": serving, "versions": [v.as_dict() for v in versions]})
        return
    if not versions:
        click.echo(
            "no trained versions yet; serving uses the base model (train one: chatbot train)"
        )
        return
    click.echo(f"{'name':<26} {'status':<10} {'val loss':>9} {'before':>9} {'pairs':>6}  created")

    def number(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    for v in versions:
        created = v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else ""
        click.echo(
            f"{v.name:<26} {v.status:<10} {number(v.metrics.get('val_loss')):>9} "
            f"{number(v.metrics.get('val_loss_before')):>9} {v.data_snapshot.get('train_pairs', '-'):>6}  {created}"
        )
        evaluated = evaluation_line(v.evaluation)
        if evaluated:
            click.echo(f"    latest eval: {evaluated}")
    click.echo(f"serving: {serving}")


@group.command("promote")
@click.argument("name")
@click.option(
    "--force",
    is_flag=True,
    help="Promote even a version that evaluated worse than the serving one.",
)
@json_option
@pass_app
def promote_command(app: AppContext, name: str, force: bool, as_json: bool) -> None:
    """Serve version NAME from now on (running servers pick it up within seconds).

    A version whose validation loss was worse than the serving version's on the same
    validation pairs is refused unless --force is given."""
    promote_and_report(app, name, force=force, as_json=as_json)


@group.command("rollback")
@json_option
@pass_app
def rollback_command(app: AppContext, as_json: bool) -> None:
    """Retire the promoted version and serve the one promoted before it (or the base model)."""
    rollback_and_report(
        app, kind="reply", as_json=as_json, fallback_json="base", fallback_text="the base model"
    )


# -- shared with `chatbot ranker promote / rollback` -----------------------------------------


def promote_and_report(
    app: AppContext,
    name: str,
    *,
    force: bool,
    as_json: bool,
    check: Callable[[VersionInfo], None] | None = None,
) -> None:
    """Promote version NAME (after `check`, which raises VersionError to refuse it) and
    print what serves now and what served before."""
    from chatbot.models.versions import get_version, promote
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    try:
        require_schema(database.engine)
        if check is not None:
            check(get_version(database, name))
        version, previous = promote(database, name, force=force)
    finally:
        database.dispose()
    if as_json:
        emit_json({"promoted": version.name, "previous": previous.name if previous else None})
    else:
        was = f" (was {previous.name})" if previous else ""
        click.echo(f"promoted {version.name}{was}")


def rollback_and_report(
    app: AppContext, *, kind: str, as_json: bool, fallback_json: str | None, fallback_text: str
) -> None:
    """Retire the promoted version of `kind` and print what serves now (`fallback_*`
    when no earlier version is left)."""
    from chatbot.models.versions import rollback
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    try:
        require_schema(database.engine)
        retired, restored = rollback(database, kind=kind)
    finally:
        database.dispose()
    if as_json:
        emit_json(
            {"retired": retired.name, "serving": restored.name if restored else fallback_json}
        )
    else:
        now = restored.name if restored else fallback_text
        click.echo(f"rolled back {retired.name}; now serving {now}")
