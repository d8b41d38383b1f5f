"""`chatbot eval replies`: the reply variants side by side on held-out conversations.
Options, progress bars and the printed table only; the run is
`chatbot.evaluation.replies.evaluate_replies`, the files `chatbot.evaluation.report`."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app
from chatbot.evaluation.variants import VARIANTS as VARIANT_NAMES
from chatbot.evaluation.variants import check_variant

if TYPE_CHECKING:
    from tqdm import tqdm

    from chatbot.evaluation.replies import ProgressFactory
    from chatbot.evaluation.settings import EvaluationSettings
    from chatbot.settings import Settings


def _progress_factory(enabled: bool) -> ProgressFactory | None:
    if not enabled:
        return None

    def factory(iterable: Iterable[object] | None = None, **kwargs: object) -> tqdm[object]:
        from tqdm import tqdm

        return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)

    return factory


def _evaluation_settings(settings: Settings) -> EvaluationSettings:
    """The sections the evaluation runs with, and the data paths."""
    from chatbot.evaluation.settings import EvaluationSettings

    return EvaluationSettings(
        paths=settings.paths,
        ingest=settings.ingest,
        retrieval=settings.retrieval,
        dialogue=settings.dialogue,
        prompt=settings.prompt,
        ranker=settings.ranker,
        training=settings.training,
    )


@click.command("replies")
@click.option(
    "--train",
    "train_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Transcript file(s) the assistant learns from (imported into a temporary store). Repeatable.",
)
@click.option(
    "--test",
    "test_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Transcript file(s) to answer and score. Repeatable. Default: a held-out share of the train conversations.",
)
@click.option(
    "--variants",
    default=",".join(VARIANT_NAMES),
    show_default=True,
    help="Comma-separated: knn (the plain nearest-neighbour floor), retrieval, ranker (retrieved answers "
    "reordered by a ranker trained on the train files), base, trained (the promoted version of the live "
    "store), refined (the dialogue manager); refined@N: N refinement rounds and a draft on every turn.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="A quick run: evaluate at most N test turns, sampled deterministically. Default: every test turn.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the --limit sample and of the bootstrap.",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=100),
    default=1000,
    show_default=True,
    help="Bootstrap resamples (of the conversations) behind every 95% interval.",
)
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    help="Without --test: share of the train conversations held out as the test set (default: ingest.test_fraction).",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of the train conversations held out of the index to calibrate out-of-scope "
    "(default: ingest.val_fraction; 0 indexes all, uncalibrated).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.json, report.md, meta.json and PNG plots here.",
)
@click.option(
    "--no-record",
    is_flag=True,
    help="Do not store the figures as the promoted version's latest evaluation.",
)
@click.option(
    "--model-version",
    "model_version",
    metavar="NAME",
    help="Evaluate this reply-model version of the live store as `trained` (and as refined's drafter) "
    "instead of the promoted one; its latest evaluation is recorded unless --no-record.",
)
@json_option
@pass_app
def replies_command(
    app: AppContext,
    train_files: tuple[Path, ...],
    test_files: tuple[Path, ...],
    variants: str,
    limit: int | None,
    seed: int,
    resamples: int,
    test_fraction: float | None,
    val_fraction: float | None,
    out_dir: Path | None,
    no_record: bool,
    model_version: str | None,
    as_json: bool,
) -> None:
    """Answer every held-out customer turn with each variant and score what the customer
    was sent against the agents' real replies. A hand-off or a reply held for an agent
    is not an answer and is never scored: each variant reports the share of turns
    answered beside the quality of the answered ones (ROUGE-L, embedding similarity,
    BLEU and, where the agent sent a help document, how often the reply or its citations
    point to it), the quality over all turns with an unanswered turn scoring 0, latency
    p50/p95, and paired differences between every two variants. Every figure comes with
    its 95% bootstrap interval; a variant is better only where the interval of the
    difference excludes 0.

    The train files go into a temporary store with its own database and index; the
    live store is only read (its promoted model version is the `trained` variant) and,
    unless --no-record, that version's latest evaluation is updated.
    """
    from chatbot.evaluation.replies import evaluate_replies

    chosen = [v.strip() for v in variants.split(",") if v.strip()]
    bad = [why for v in chosen if (why := check_variant(v)) is not None]
    if bad or not chosen:
        raise click.BadParameter(
            f"{'; '.join(bad) or 'no variant given'}; choose from {', '.join(VARIANT_NAMES)} "
            "(refined@N for N rounds)",
            param_hint="--variants",
        )
    result = evaluate_replies(
        _evaluation_settings(app.settings),
        train_files,
        test_files,
        variants=chosen,
        limit=limit,
        seed=seed,
        resamples=resamples,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        record=not no_record,
        progress=_progress_factory(not as_json),
        trained_version_name=model_version,
    )
    files = []
    if out_dir is not None:
        from chatbot.evaluation.report import write_report

        files = write_report(result, out_dir)
    if as_json:
        payload = result.to_dict()
        if files:
            payload["files"] = [str(f) for f in files]
        emit_json(payload)
        return
    from chatbot.evaluation.report import markdown_table, turns_line

    d = result.data
    held = "" if d["test_from"] == "files" else f" ({d['test_from']})"
    click.echo(
        f"Evaluated {turns_line(result)}{held}; index of {d['index']['pairs']} pairs; "
        f"{result.meta['seconds']:.0f} s"
    )
    click.echo("")
    click.echo(markdown_table(result))
    click.echo("")
    click.echo(
        "answered: the customer was sent a reply; a hand-off or a reply held for an agent is never scored. "
        "[low, high]: 95% bootstrap interval (resampling conversations); a variant is better only where the "
        "interval of a difference excludes 0."
    )
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.recorded_version:
        click.echo(f"recorded as the latest evaluation of model version {result.recorded_version}")
    if files and out_dir is not None:
        click.echo(
            f"report: {out_dir / 'report.md'} (+ report.json, meta.json, metrics.png, latency.png)"
        )
