"""`chatbot index` (build or update the retrieval index from the stored training
pairs; `--adapt` first adapts the embedder to them) and `chatbot eval intents`
(intent routing on labelled-request files)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@click.command("index")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Embed every pair again into a new version, even if nothing changed.",
)
@click.option(
    "--no-calibrate", is_flag=True, help="Skip the out-of-scope calibration on validation pairs."
)
@click.option(
    "--adapt",
    is_flag=True,
    help="Fine-tune the embedder on the train pairs, measure it on the validation pairs, and rebuild the "
    "index with it only when it beats the base embedder (retrieval.adapt_min_gain, "
    "retrieval.adapt_min_gain_stderrs).",
)
@json_option
@pass_app
def group(app: AppContext, rebuild: bool, no_calibrate: bool, adapt: bool, as_json: bool) -> None:
    """Embed the stored training pairs into the retrieval index.

    New pairs are added to a copy of the current version; a rebuild (asked for, or
    needed because pairs were deleted or changed, or the embedder changed) writes a
    new version beside the old one and switches only when it is complete.
    """
    from chatbot.config import ensure_home
    from chatbot.store.database import Database, require_schema

    settings = app.settings
    ensure_home(settings.paths)
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        if adapt:
            from chatbot.indexing.adapt import adapt_and_index

            adapted = adapt_and_index(
                settings.paths,
                settings.retrieval,
                settings.dialogue,
                database,
                progress=not as_json,
                calibrate=not no_calibrate,
            )
        else:
            from chatbot.indexing.builder import update_index

            report = update_index(
                settings.paths,
                settings.retrieval,
                settings.dialogue,
                database,
                rebuild=rebuild,
                progress=not as_json,
                calibrate=not no_calibrate,
            )
    finally:
        database.dispose()
    if adapt:
        _echo_adapt(adapted.to_dict(), as_json, no_calibrate)
        return
    if as_json:
        emit_json(report.to_dict())
        return
    _echo_index(report.to_dict(), no_calibrate)


def _echo_adapt(report: dict[str, Any], as_json: bool, no_calibrate: bool) -> None:
    if as_json:
        emit_json(report)
        return
    base, adapted, t = report["base"], report["adapted"], report["training"]
    click.echo(
        f"adapted the embedder on {report['counts']['train']} train pairs: {t['steps']} steps "
        f"({t['epochs']} epochs, stopped by {t['stopped_by']}) in {t['seconds']:.0f}s"
    )
    click.echo(
        f"on {base['n']} validation pairs, reply similarity of the top hit (base-embedder judge): "
        f"base {base['reply_similarity']:.4f}, adapted {adapted['reply_similarity']:.4f}, "
        f"gain {report['gain']:+.4f} ± {report['gain_stderr']:.4f}; "
        f"fit rate {_percent(base['fit_rate'])} -> {_percent(adapted['fit_rate'])}"
    )
    if report["kept"]:
        click.echo(f"kept as {report['embedder_path']} ({report['seconds']:.0f}s)")
        _echo_index(report["index"], no_calibrate)
    else:
        why = (
            f"the gain is not above retrieval.adapt_min_gain {report['min_gain']}"
            if report["gain"] <= report["min_gain"]
            else f"the gain is within {report['min_gain_stderrs']:g} standard errors of none"
        )
        click.echo(f"not kept: {why}; the index is unchanged ({report['seconds']:.0f}s)")


def _echo_index(report: dict[str, Any], no_calibrate: bool) -> None:
    if report["action"] == "unchanged":
        click.echo(f"index {report['version']} is up to date: {report['pair_count']} pairs")
        return
    line = (
        f"index {report['version']}: {report['action']} ({report['reason']}); {report['pair_count']} pairs, "
        f"{report['kind']} search, {report['seconds']:.1f}s"
    )
    if report["recall_at_10"] is not None:
        line += f", recall@10 vs exact {report['recall_at_10']:.3f}"
    click.echo(line)
    calibration = report["calibration"]
    if calibration and calibration.get("criterion") == "youden_j_with_prior":
        feature = "top dense cosine" if calibration.get("feature") == "dense" else "top fused score"
        line = f"out-of-scope gate: hand off below {calibration['raw_threshold']:.3f} ({feature})"
        if calibration.get("raw_threshold_low") is not None:
            line += f", 95% interval [{calibration['raw_threshold_low']:.3f}, {calibration['raw_threshold_high']:.3f}]"
        prior_share = calibration.get("prior_weight") or 0.0
        line += (
            f"; {calibration['n_in_scope']} validation questions vs {calibration['n_out_of_scope']} off-topic ones, "
            f"prior {calibration.get('prior_threshold', 0.0):.3f} weighs {prior_share:.0%}"
        )
        click.echo(line)
        if (
            calibration.get("in_scope_accepted") is not None
            and calibration.get("out_of_scope_rejected") is not None
        ):
            click.echo(
                f"  on them: {calibration['in_scope_accepted']:.0%} of validation questions answered, "
                f"{calibration['out_of_scope_rejected']:.0%} of off-topic ones handed off"
                + (
                    "; questions about what the history never mentions hand off too"
                    if calibration.get("unknown_terms")
                    else ""
                )
            )
        domain = calibration.get("domain")
        if domain:
            click.echo(
                f"  domain check: hand off below {domain['threshold']:.3f} (the {domain['quantile']:.0%} "
                f"quantile of {domain['questions']} indexed questions, out of fold); "
                f"{domain['background_rejected_out_of_fold']:.0%} of off-topic ones handed off by it"
            )
    elif calibration:
        click.echo(
            f"out-of-scope threshold {calibration['raw_threshold']:.3f} (fused score), "
            f"chosen on {calibration['n_in_scope'] + calibration['n_out_of_scope']} validation pairs"
        )
    elif not no_calibrate:
        click.echo(
            "out-of-scope gate not calibrated (no validation pairs); using retrieval.oos_threshold"
        )
    fusion = report.get("fusion") or {}
    if "reply_similarity_by_weight" in fusion:
        tried = ", ".join(f"{w}: {v:.3f}" for w, v in fusion["reply_similarity_by_weight"].items())
        verdict = (
            "kept the configured weight"
            if fusion["lexical_weight"] == fusion["configured_lexical_weight"]
            else f"gains {fusion['gain_over_configured']:+.3f} (standard error {fusion['stderr']:.3f}) over the configured "
            f"{fusion['configured_lexical_weight']}"
        )
        click.echo(
            f"BM25 weight {fusion['lexical_weight']} ({verdict}); reply similarity on "
            f"{fusion['validation_questions']} validation questions by weight: {tried}"
        )
    consensus = fusion.get("consensus")
    if consensus:
        verdict = (
            f"on, embedding weight {consensus['embedding_weight']:g}, judge weight "
            f"{consensus['judge_weight']:g}"
            if consensus["enabled"]
            else "off (the judge's own pick is as good)"
        )
        click.echo(
            f"consensus choice among the {consensus['candidates']} candidates: {verdict}; reply fit "
            f"{consensus['fit_of_judge_pick']:.3f} by the judge, {consensus['fit_of_judge_pick'] + consensus['gain_over_judge']:.3f} "
            f"by the best setting (standard error of the gain {consensus['stderr']:.3f}) on "
            f"{consensus['validation_questions']} validation questions"
        )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


@click.command("intents")
@click.option(
    "--train",
    "train_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Labelled requests to build the router from (JSON lines: text, intent).",
)
@click.option(
    "--test",
    "test_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Labelled requests to route and score (intent 'oos' = out of scope).",
)
@click.option(
    "--val",
    "val_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Validation requests for the out-of-scope threshold; default: 10% carved from --train.",
)
@click.option(
    "--folds", type=click.IntRange(2, 20), help="Cross-validate on --train instead of using --test."
)
@click.option(
    "--noise",
    type=click.Choice(["typo"]),
    help="Also score a typo-noised copy of the test requests.",
)
@click.option(
    "--method",
    type=click.Choice(["fusion", "logreg", "knn", "finetune"]),
    default="fusion",
    show_default=True,
    help="fusion: TF-IDF n-grams + embeddings, linear SVM; logreg / knn: on the plain embeddings; "
    "finetune: MiniLM fine-tuned on the labels.",
)
@click.option(
    "--min-oos-recall",
    type=click.FloatRange(0, 1),
    default=0.85,
    show_default=True,
    help="Threshold policy: serve the most in-scope requests while rejecting at least this share of the "
    "out-of-scope ones on validation data. 0 = maximise balanced accuracy instead.",
)
@click.option(
    "--max-train-seconds",
    type=click.FloatRange(min=1),
    default=480,
    show_default=True,
    help="Wall-clock budget of the fine-tuning step (it stops early, keeping what it learnt).",
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Fine-tuning epochs.",
)
@json_option
@pass_app
def intents_command(
    app: AppContext,
    train_file: Path,
    test_file: Path | None,
    val_file: Path | None,
    folds: int | None,
    noise: str | None,
    method: str,
    min_oos_recall: float,
    max_train_seconds: float,
    epochs: float,
    as_json: bool,
) -> None:
    """Route labelled requests to intents and report accuracy, macro-F1 and, where the
    test has oos items, out-of-scope recall at a threshold chosen on validation data."""
    from chatbot.evaluation.intents.routing import (
        RouterOptions,
        cross_validate,
        evaluate,
        read_intents,
    )
    from chatbot.models.embedder import load_embedder

    if (test_file is None) == (folds is None):
        raise click.UsageError("give either --test FILE or --folds N")
    settings = app.settings
    options: RouterOptions = {
        "max_train_seconds": max_train_seconds,
        "epochs": epochs,
        "progress": not as_json,
    }
    oos_recall = min_oos_recall or None
    train = read_intents(train_file)

    def factory() -> SentenceTransformer:
        return load_embedder(settings.paths)

    if folds:
        folded = cross_validate(
            factory,
            train,
            folds,
            method=method,
            noise=noise,
            min_oos_recall=oos_recall,
            **options,
        )
        if as_json:
            emit_json(folded)
            return
        click.echo(
            f"{method}, {folds}-fold cross-validation on {train_file.name} ({len(train)} requests)"
        )
        for part, metrics in folded["summary"].items():
            shown = ", ".join(
                f"{k} {100 * v['mean']:.2f}% ± {100 * v['std']:.2f}" for k, v in metrics.items()
            )
            click.echo(f"  {part}: {shown}")
        return
    if test_file is None:  # ruled out above; said again for the type checker
        raise click.UsageError("give either --test FILE or --folds N")
    test = read_intents(test_file)
    val = read_intents(val_file) if val_file else None
    result = evaluate(
        factory, train, test, val, method=method, noise=noise, min_oos_recall=oos_recall, **options
    )
    if as_json:
        emit_json(result.to_dict())
        return
    c = result.clean
    click.echo(
        f"{method}: trained on {result.counts['train']} requests ({result.counts['intents']} intents) in "
        f"{result.train_seconds:.0f}s; tested on {c['n']} ({c['n_oos']} oos)"
    )
    click.echo(
        f"  top-1 accuracy {_percent(c.get('accuracy'))}, macro-F1 {_percent(c.get('macro_f1'))}"
    )
    if "oos_recall" in c and result.calibration is not None:
        click.echo(
            f"  at the threshold from validation ({result.validation}; "
            f"{result.calibration['criterion']}): in-scope accuracy "
            f"{_percent(c['in_scope_accuracy'])}, out-of-scope recall {_percent(c['oos_recall'])}"
        )
    if result.noisy:
        n = result.noisy
        line = f"  typo-noised: top-1 accuracy {_percent(n.get('accuracy'))}, macro-F1 {_percent(n.get('macro_f1'))}"
        if "oos_recall" in n:
            line += f", in-scope accuracy {_percent(n['in_scope_accuracy'])}, out-of-scope recall {_percent(n['oos_recall'])}"
        click.echo(line)
