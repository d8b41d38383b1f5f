"""`chatbot jobs` (hidden): the worker of a background job the admin console started
(`chatbot jobs run ID`, spawned by `chatbot.jobs.control.start_job`), and `list` /
`cancel` for an operator without the console. What a job does is `chatbot.jobs`'."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:
    from chatbot.store.database import Database


@click.group("jobs", hidden=True)
def group() -> None:
    """Background jobs started from the admin console (training, index rebuilds)."""


def _database(app: AppContext) -> Database:
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    require_schema(database.engine)
    return database


@group.command("run", hidden=True)
@click.argument("job_id", type=int)
@pass_app
def run(app: AppContext, job_id: int) -> None:
    """Run job JOB_ID in this process (the console starts this; not for people)."""
    from chatbot.jobs.control import settings_from_environment
    from chatbot.jobs.worker import run_job

    # The settings of the server that started the job travel in the environment; a
    # hand-started worker falls back to the usual file and CHATBOT_* variables.
    settings = settings_from_environment() or app.settings
    sys.exit(run_job(settings, job_id))


@group.command("list")
@click.option("--kind", type=click.Choice(("train", "index")), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@json_option
@pass_app
def list_command(app: AppContext, kind: str | None, limit: int, as_json: bool) -> None:
    """The latest jobs, newest first."""
    from chatbot.jobs.control import list_jobs

    database = _database(app)
    try:
        jobs = list_jobs(database, kind=kind, limit=limit)
    finally:
        database.dispose()
    if as_json:
        emit_json([job.as_dict() for job in jobs])
        return
    if not jobs:
        click.echo("no jobs yet")
    for job in jobs:
        created = job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else ""
        detail = job.error or job.result.get("summary") or job.progress.get("message") or ""
        click.echo(
            f"{job.id:>5} {job.kind:<6} {job.status:<10} {created}  {job.created_by or '-'}  {detail}"
        )


@group.command("cancel")
@click.argument("job_id", type=int)
@pass_app
def cancel(app: AppContext, job_id: int) -> None:
    """Stop job JOB_ID (a training run keeps its checkpoints and can be resumed)."""
    from chatbot.jobs.control import cancel_job

    database = _database(app)
    try:
        job = cancel_job(database, job_id, by="cli")
    finally:
        database.dispose()
    click.echo(
        f"job {job.id}: {'cancelled' if job.status == 'cancelled' else 'asked to stop (status: ' + job.status + ')'}"
    )
