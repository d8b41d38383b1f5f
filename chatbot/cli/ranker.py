"""`chatbot ranker ...`: train the learned ranker on the stored pairs, list its versions,
promote or roll one back. Parses options, opens the store and the retriever, shows
progress; the work is `chatbot.training.ranker.train_ranker` and `chatbot.models.versions`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:
    from tqdm import tqdm

    from chatbot.models.versions import VersionInfo


@click.group("ranker")
def group() -> None:
    """The learned ranker: the probability that a candidate reply fits a conversation."""


class _ProgressPrinter:
    """A progress callback: a tqdm bar on stderr with the loss and the time left."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm[NoReturn] | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        err = sys.stderr
        kind = event["event"]
        if kind == "start":
            click.echo(
                f"{event['train_pairs']} train pairs -> {event['examples']} examples ({event['positives']} true "
                f"replies, {event['hard_negatives']} retrieved, {event['random_negatives']} random and "
                f"{event['rejected_negatives']} rejected negatives); {event['val_pairs']} validation pairs; "
                f"device {event['device']}",
                err=True,
            )
            self.bar = tqdm(
                total=event["total_steps"],
                desc="training",
                unit="step",
                file=err,
                dynamic_ncols=True,
            )
        elif kind == "step" and self.bar is not None:
            bar = self.bar
            if event["total_steps"] and bar.total != event["total_steps"]:
                bar.total = event["total_steps"]
            left = ""
            if event.get("budget_s"):
                left = f" budget left={max(0, int(event['budget_s'] - event['elapsed_s']))}s"
            loss = f"loss={event['loss']:.3f}" if event.get("loss") is not None else ""
            bar.set_postfix_str(loss + left, refresh=False)
            bar.update(event["step"] - bar.n)
        elif kind == "validation":
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            click.echo(f"validated on {event['val_pairs_scored']} pairs", err=True)


@group.command("train")
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Wall-clock budget of the training (default 5).",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    help="Optimizer steps (default: one pass over the examples).",
)
@click.option(
    "--no-promote", is_flag=True, help="Register the version but never promote it automatically."
)
@json_option
@pass_app
def train_command(
    app: AppContext,
    max_minutes: float | None,
    max_steps: int | None,
    no_promote: bool,
    as_json: bool,
) -> None:
    """Train a ranker on the stored pairs and keep it if it picks better replies.

    Each train pair gives the agent's real reply as a positive and replies retrieved
    for similar questions in other conversations (plus suggestions agents rejected) as
    negatives. On the validation pairs the new ranker's pick among the retrieved replies
    must beat retrieval's own pick, and the promoted ranker's, by ROUGE-L against the
    agent's real reply, by more than its standard error; then it is promoted.
    Needs a retrieval index: chatbot index.
    """
    from chatbot.config import ensure_home
    from chatbot.models.versions import promoted_version
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.store.database import Database, require_schema
    from chatbot.training.ranker import train_ranker

    settings = app.settings
    updates: dict[str, object] = {}
    if max_minutes is not None:
        updates["max_minutes"] = max_minutes
    if max_steps is not None:
        updates["max_steps"] = max_steps
    if no_promote:
        updates["auto_promote"] = False
    if updates:
        settings = settings.model_copy(
            update={"ranker": settings.ranker.model_copy(update=updates)}
        )
    ensure_home(settings.paths)
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        retriever = open_retriever(settings.paths, settings.retrieval, database)
        reply = promoted_version(database, "reply")
        result = train_ranker(
            settings.paths,
            settings.ranker,
            settings.training,
            database,
            retriever,
            progress=_ProgressPrinter(True),
            reply_version=reply.name if reply is not None else "base",
        )
    finally:
        database.dispose()
    m = result.metrics
    if as_json:
        emit_json(result.as_dict())
        return
    verdict = (
        "promoted" if result.promoted else ("kept, not promoted" if result.kept else "not kept")
    )
    click.echo(f"ranker {result.name}: {verdict}")
    click.echo(f"  {result.path}")
    if "rouge_l_ranker" in m:
        promoted = (
            f", promoted {m['promoted']} {m['rouge_l_promoted']:.4f}"
            if "rouge_l_promoted" in m
            else ""
        )
        click.echo(
            f"  ROUGE-L of the pick on {m['val_pairs_scored']} validation pairs: ranker {m['rouge_l_ranker']:.4f}, "
            f"retrieval {m['rouge_l_retrieval']:.4f}{promoted} (best candidate {m['rouge_l_oracle']:.4f})"
        )
        click.echo(
            f"  gain over {m['compared_with']}: {m['gain']:+.4f} (standard error {m['gain_stderr']:.4f}); "
            f"true reply among the candidates: MRR {m['true_reply_mrr']:.3f}, "
            f"first {100 * m['true_reply_accuracy_at_1']:.0f}%"
        )
    click.echo(
        f"  {m['steps']} steps ({m['stopped_because']}) on {m['examples']} examples in {m['train_seconds']:.0f}s, "
        f"{m['total_seconds']:.0f}s in all"
    )
    click.echo(f"  {result.why}")


@group.command("list")
@json_option
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """List the ranker versions, newest first, and say which one serves."""
    from chatbot.models.versions import list_versions
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    try:
        require_schema(database.engine)
        versions = list_versions(database, kind="ranker")
    finally:
        database.dispose()
    serving = next((v.name for v in versions if v.status == "promoted"), None)
    if as_json:
        emit_json(
            {
                "serving": serving,
                "enabled": app.settings.ranker.enabled,
                "versions": [v.as_dict() for v in versions],
            }
        )
        return
    if not versions:
        click.echo(
            "no ranker versions yet; serving ranks by retrieval alone (train one: chatbot ranker train)"
        )
        return

    def number(value: object, fmt: str = ".4f") -> str:
        return (
            format(value, fmt)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else "-"
        )

    click.echo(
        f"{'name':<26} {'status':<10} {'ranker':>7} {'retriev.':>8} {'gain':>8} {'MRR':>6} {'pairs':>6}  created"
    )
    for v in versions:
        m = v.metrics
        created = v.created_at.strftime("%Y-%m-%d %H:%M") if v.created_at else ""
        click.echo(
            f"{v.name:<26} {v.status:<10} {number(m.get('rouge_l_ranker')):>7} {number(m.get('rouge_l_retrieval')):>8} "
            f"{number(m.get('gain'), '+.4f'):>8} {number(m.get('true_reply_mrr'), '.3f'):>6} "
            f"{v.data_snapshot.get('train_pairs', '-'):>6}  {created}"
        )
    state = (
        ""
        if app.settings.ranker.enabled
        else " (but ranker.enabled is false: serving does not use it)"
    )
    click.echo(f"serving: {serving or 'none (retrieval alone)'}{state}")


@group.command("promote")
@click.argument("name")
@click.option(
    "--force", is_flag=True, help="Promote even a version that did not win on validation."
)
@json_option
@pass_app
def promote_command(app: AppContext, name: str, force: bool, as_json: bool) -> None:
    """Serve ranker version NAME from now on (running servers pick it up within seconds).
    A version that did not win on validation is refused unless --force is given."""
    from chatbot.cli.models import promote_and_report

    def check(version: VersionInfo) -> None:
        from chatbot.models.versions import VersionError

        if version.kind != "ranker":
            raise VersionError(
                f"{name!r} is a {version.kind} version, not a ranker; see: chatbot ranker list"
            )

    promote_and_report(app, name, force=force, as_json=as_json, check=check)


@group.command("rollback")
@json_option
@pass_app
def rollback_command(app: AppContext, as_json: bool) -> None:
    """Retire the promoted ranker and serve the one promoted before it (or none)."""
    from chatbot.cli.models import rollback_and_report

    rollback_and_report(
        app,
        kind="ranker",
        as_json=as_json,
        fallback_json=None,
        fallback_text="no ranker (retrieval alone)",
    )
