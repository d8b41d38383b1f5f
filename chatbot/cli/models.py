"""`chatbot models`: prepare and check the models that ship inside packages.

Training adds list / promote / rollback to this group."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app


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
    ensure_home(settings)
    embedder = embedder_path(settings)
    if not as_json:
        click.echo(f"embedder: {embedder}", err=True)
        click.echo(f"reply model: preparing {converted_dir(settings)} ...", err=True)
    result = prepare_reply_model(settings, force=force)
    if as_json:
        emit_json({"embedder": str(embedder), "reply_model": asdict(result)})
        return
    if result.action == "converted":
        click.echo(
            f"reply model: converted {result.source} -> {result.path} "
            f"({result.parameters / 1e6:.0f}M parameters) in {result.seconds:.1f}s"
        )
    else:
        click.echo(f"reply model: cache {result.path} is up to date (checked in {result.seconds:.2f}s)")


@group.command("check")
@json_option
@pass_app
def check(app: AppContext, as_json: bool) -> None:
    """Load every model as serving would; exit 1 if any fails."""
    from chatbot.models.check import run_checks

    results = run_checks(app.settings)
    if as_json:
        emit_json({"ok": all(r.ok for r in results), "checks": [asdict(r) for r in results]})
    else:
        for r in results:
            click.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail} ({r.seconds:.2f}s)")
    if not all(r.ok for r in results):
        sys.exit(1)
