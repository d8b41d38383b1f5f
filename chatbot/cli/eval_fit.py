"""`chatbot eval fit`: how well the question–answer fit model of the current index
version is calibrated (expected calibration error and reliability bins, measured when
`chatbot index` built the version on a fifth of the company's conversations held out
from fitting, their questions reworded), with an optional reliability diagram.
Rendering only; the figures are `chatbot.indexing.answer_classes`'."""

from __future__ import annotations

from pathlib import Path

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app


@click.command("fit")
@click.option(
    "--plot",
    "plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the reliability diagram to this PNG file.",
)
@json_option
@pass_app
def fit_command(app: AppContext, plot: Path | None, as_json: bool) -> None:
    """Calibration of the question-answer fit model (ECE, reliability bins)."""
    from chatbot.retrieval.retriever import open_retriever

    retriever = open_retriever(app.settings.paths, app.settings.retrieval)
    classes = retriever.answer_classes
    if classes is None:
        raise click.ClickException(
            f"index version {retriever.version} has no fit model (an older or very small "
            "index); run: chatbot index --rebuild"
        )
    report = dict(classes.report)
    if plot is not None:
        from chatbot.evaluation.reliability import reliability_plot

        report["plot"] = str(reliability_plot(report, plot))
    if as_json:
        emit_json({"version": retriever.version, **report})
        return
    click.echo(
        f"index {retriever.version}: {report.get('classes')} answer classes "
        f"({report.get('classes_of_two_or_more')} of two or more pairs); fitted on "
        f"{report.get('fitted_questions')} questions (with {report.get('rewordings_per_question')} "
        "rewordings each)"
    )
    click.echo(
        f"held out: {report.get('held_out_questions')} questions; best class right "
        f"{report.get('accuracy')}; expected calibration error {report.get('ece')}"
    )
    click.echo("probability   mean p   share right   n")
    for b in report.get("bins") or []:
        click.echo(
            f"{b['from']:.1f}-{b['to']:.1f}       {b['mean_probability']:.3f}    "
            f"{b['accuracy']:.3f}         {b['n']}"
        )
    if plot is not None:
        click.echo(f"reliability diagram: {report['plot']}")
