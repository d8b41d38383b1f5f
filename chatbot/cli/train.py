"""`chatbot train`: fine-tune the reply model on the stored training pairs and record
the result as a model version. Parses options, builds the evidence callable from the
retriever when there is one, shows progress; the run itself is
`chatbot.training.run.run_training`. Works the same under `torchrun` and
`accelerate launch` (only the first process prints)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:
    from tqdm import tqdm

    from chatbot.settings import Settings
    from chatbot.store.database import Database
    from chatbot.training.ranker import RankerResult
    from chatbot.training.run import TrainResult


def _fmt(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


class _ProgressPrinter:
    """A progress callback drawing a tqdm bar on stderr with loss and ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: tqdm[NoReturn] | None = None

    def _new_bar(self, total: int, initial: int = 0) -> tqdm[NoReturn]:
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc="training",
            unit="step",
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def __call__(self, event: dict[str, Any]) -> None:
        if not self.enabled:
            return
        kind = event["event"]
        if kind == "baseline":
            click.echo(f"validation loss before training: {event['val_loss']:.4f}", err=True)
            self.bar = self._new_bar(event["total_steps"])
        elif kind == "step":
            if self.bar is None:  # resumed: no baseline event
                self.bar = self._new_bar(event["total_steps"], initial=event["step"] - 1)
            bar = self.bar
            per_step = event["elapsed_s"] / max(1, event["step"] - bar.initial)
            eta = (event["total_steps"] - event["step"]) * per_step
            if event.get("budget_s"):
                eta = min(eta, event["budget_s"] - event["elapsed_s"])
            bar.set_postfix_str(
                f"loss={event['train_loss']:.3f} lr={event['lr']:.1e} eta={_fmt(eta)}",
                refresh=False,
            )
            bar.update(1)
        elif kind == "validation":
            text = f"step {event['step']}: validation loss {event['val_loss']:.4f} (best {event['best_val_loss']:.4f})"
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                click.echo(text, err=True)
        elif kind == "finishing":
            if self.bar is not None:
                self.bar.close()
            click.echo(event["message"], err=True)


@click.command("train")
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    help="Optimizer steps (default: one pass over the pairs).",
)
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0, min_open=True),
    help="Wall-clock budget of the whole run, finishing included (default 13).",
)
@click.option(
    "--lora/--full", "lora", default=None, help="LoRA adapters (default) or full fine-tuning."
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the most recent interrupted run from its last checkpoint.",
)
@click.option(
    "--no-promote", is_flag=True, help="Register the version but never promote it automatically."
)
@click.option(
    "--no-ranker",
    is_flag=True,
    help="Do not train the ranker after the reply model (by default it is trained beside it: chatbot ranker train).",
)
@json_option
@pass_app
def command(
    app: AppContext,
    max_steps: int | None,
    max_minutes: float | None,
    lora: bool | None,
    resume: bool,
    no_promote: bool,
    no_ranker: bool,
    as_json: bool,
) -> None:
    """Fine-tune the reply model on the stored training pairs.

    Each example is the chat prompt serving uses (instruction, retrieved past answers,
    recent conversation) with the agent's reply as the target. The result becomes a
    model version, promoted when it beats the promoted one on the same validation pairs.
    Then the ranker that chooses among candidate replies is trained beside the new
    version (`chatbot ranker train`; its own budget, ranker.max_minutes) unless
    --no-ranker or ranker.enabled is off.
    Run under `torchrun --nproc_per_node=N -m chatbot train` for several processes.
    """
    from chatbot.config import ensure_home
    from chatbot.store.database import Database, require_schema
    from chatbot.training.evidence import open_evidence
    from chatbot.training.run import run_training

    settings = _with_options(app.settings, max_steps, max_minutes, lora, no_promote)
    main_process = int(os.environ.get("RANK", "0")) == 0
    ensure_home(settings.paths)
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        evidence_for, note = open_evidence(
            settings.paths, settings.retrieval, settings.prompt.evidence_k, database
        )
        if main_process and not as_json:
            click.echo(f"evidence: {note}", err=True)
        try:
            result = run_training(
                settings.paths,
                settings.training,
                settings.prompt,
                database,
                evidence_for=evidence_for,
                evidence_note=note,
                resume=resume,
                progress=_ProgressPrinter(main_process),
            )
        except KeyboardInterrupt:
            if main_process:
                click.echo(
                    "\ntraining interrupted; continue from the last checkpoint with: chatbot train --resume",
                    err=True,
                )
            raise
        ranker, ranker_note = (
            None,
            "not trained (--no-ranker)" if no_ranker else "not trained (ranker.enabled is off)",
        )
        if result is not None and not no_ranker and settings.ranker.enabled:
            ranker, ranker_note = _train_ranker(settings, database, result.version_name, as_json)
    finally:
        database.dispose()
    if result is None:
        return
    _report(result, ranker, ranker_note, as_json)


def _with_options(
    settings: Settings,
    max_steps: int | None,
    max_minutes: float | None,
    lora: bool | None,
    no_promote: bool,
) -> Settings:
    """The settings with the command's options in force."""
    updates: dict[str, object] = {}
    if max_steps is not None:
        updates["max_steps"] = max_steps
    if max_minutes is not None:
        updates["max_minutes"] = max_minutes
    if lora is not None:
        updates["mode"] = "lora" if lora else "full"
    if no_promote:
        updates["auto_promote"] = False
    if updates:
        settings = settings.model_copy(
            update={"training": settings.training.model_copy(update=updates)}
        )
    if no_promote:
        settings = settings.model_copy(
            update={"ranker": settings.ranker.model_copy(update={"auto_promote": False})}
        )
    return settings


def _report(
    result: TrainResult, ranker: RankerResult | None, ranker_note: str, as_json: bool
) -> None:
    """Print what the run made (JSON with --json)."""
    m = result.metrics
    if as_json:
        emit_json(
            {
                "version": result.version_name,
                "path": result.version_path,
                "promoted": result.promoted,
                "run_dir": result.run_dir,
                "evaluation": result.evaluation,
                "metrics": m,
                "ranker": ranker.as_dict() if ranker is not None else {"note": ranker_note},
            }
        )
        return
    fused = (
        f"{m['val_loss_fused']:.4f}" if m["val_loss_fused"] is not None else "n/a (one checkpoint)"
    )
    click.echo(f"version {result.version_name}: {result.version_path}")
    click.echo(
        f"  validation loss: before {m['val_loss_before']:.4f}, best checkpoint {m['val_loss_best_checkpoint']:.4f} "
        f"(step {m['best_step']}), fused {fused} -> kept {m['model']} ({m['val_loss']:.4f})"
    )
    click.echo(
        f"  {m['steps']} steps ({m['stopped_because']}), {m['train_tokens']} tokens, "
        f"{m['tokens_per_second']:.0f} tokens/s, {m['wall_seconds']:.0f}s in all, peak memory {m['peak_memory_mb']:.0f} MB"
    )
    e = result.evaluation
    verdict = (
        "promoted"
        if e["promoted"]
        else ("not promoted (auto-promotion off)" if e["better"] else "not promoted")
    )
    click.echo(
        f"  {verdict}: {e['val_loss']:.4f} vs {e['compared_with']} {e['compared_val_loss']:.4f} on {e['val_pairs']} validation pairs"
    )
    click.echo(f"  loss curve and metrics: {result.run_dir}")
    if ranker is not None:
        verdict = (
            "promoted"
            if ranker.promoted
            else ("kept, not promoted" if ranker.kept else f"not kept: {ranker.why}")
        )
        click.echo(f"ranker {ranker.name}: {verdict} (details: chatbot ranker list)")
    else:
        click.echo(f"ranker: {ranker_note}")


def _train_ranker(
    settings: Settings, database: Database, reply_version: str, quiet: bool
) -> tuple[RankerResult | None, str]:
    """(the ranker trained beside the new reply version, None; or None and why not)."""
    from chatbot.errors import ChatbotError
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.training.ranker import train_ranker

    if not quiet:
        click.echo("training the ranker beside it (chatbot ranker train)", err=True)
    try:
        retriever = open_retriever(settings.paths, settings.retrieval, database)
        return train_ranker(
            settings.paths,
            settings.ranker,
            settings.training,
            database,
            retriever,
            reply_version=reply_version,
        ), ""
    except ChatbotError as exc:
        return None, f"not trained ({exc})"
