"""`chatbot import` (transcripts and help-desk exports into the store) and
`chatbot pairs stats|export` (what the model will learn from). Parsing, redaction and
storage are `chatbot.ingest`'s job; this module only turns options into calls and
results into text, JSON and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app
from chatbot.store.enums import PairOrigin, values

if TYPE_CHECKING:  # imported by the commands themselves: `chatbot --help` stays fast
    from chatbot.ingest.importer import ProgressBar, ProgressFactory
    from chatbot.store.database import Database

FORMAT_CHOICES = ("auto", "jsonl", "csv", "zendesk", "intercom", "chatwoot")
SHOWN_PROBLEMS = 20


def _parse_map(value: str | None) -> dict[str, str]:
    if not value:
        return {}
    mapping: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        field, sep, column = item.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise click.BadParameter(
                f"{item!r} is not FIELD=COLUMN (e.g. question=text,answer=reply)",
                param_hint="--map",
            )
        mapping[field.strip().lower()] = column.strip()
    return mapping


def _progress_factory() -> ProgressFactory:
    from tqdm import tqdm

    def make(path: str, total: int) -> ProgressBar:
        bar: ProgressBar = tqdm(
            total=total,
            unit="B",
            unit_scale=True,
            desc=Path(path).name,
            file=sys.stderr,
            disable=None,
            leave=False,
        )
        return bar

    return make


def _counts(counter: Mapping[str, int]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in sorted(counter.items())) or "none"


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMAT_CHOICES),
    default="auto",
    show_default=True,
    help="File format; auto tells them apart by content.",
)
@click.option(
    "--source",
    default=None,
    help="Source name for every record (default: the record's own, or the format).",
)
@click.option(
    "--map",
    "column_map",
    default=None,
    metavar="FIELD=COLUMN,...",
    help="CSV columns, e.g. question=text,answer=reply,intent=label (fields: question, answer, intent, id, source).",
)
@click.option("--strict", is_flag=True, help="Import nothing from a file that has any bad record.")
@json_option
@pass_app
def import_command(
    app: AppContext,
    paths: tuple[Path, ...],
    fmt: str,
    source: str | None,
    column_map: str | None,
    strict: bool,
    as_json: bool,
) -> None:
    """Import support conversations from PATHS (files or folders) into the store.

    A folder stands for every .jsonl, .ndjson, .json, .csv and .tsv file under it
    (subfolders too, in sorted order; hidden files skipped); formats are told apart by
    content. Each file is imported in one transaction: bad records are listed and skipped
    (or, with --strict, the whole file is skipped); importing a file again adds nothing.
    PII is replaced by placeholders before anything is stored (setting ingest.redact).
    """
    from chatbot.config import ensure_home
    from chatbot.ingest.folders import expand_paths
    from chatbot.ingest.importer import import_paths
    from chatbot.ingest.records import FileStatus

    expanded = expand_paths(list(paths))
    settings = app.settings
    if settings.database_url is None:
        ensure_home(settings.paths)
    if expanded.ignored and not as_json:
        shown = ", ".join(str(p) for p in expanded.ignored[:5]) + (
            " ..." if len(expanded.ignored) > 5 else ""
        )
        click.echo(f"not transcript files, left out: {len(expanded.ignored)} ({shown})", err=True)
    summary = import_paths(
        settings.paths,
        expanded.files,
        ingest=settings.ingest,
        format=fmt,
        source=source,
        strict=strict,
        column_map=_parse_map(column_map),
        progress=None if as_json else _progress_factory(),
    )
    if as_json:
        emit_json({**summary.to_dict(), "left_out": [str(p) for p in expanded.ignored]})
    else:
        for item in summary.files:
            if item.status == FileStatus.FAILED:
                click.echo(f"failed: {item.error}")
                continue
            head = f"{item.path}: {item.status.replace('_', ' ')}"
            if item.format:
                head += f" ({item.format})"
            if item.status == FileStatus.IMPORTED:
                head += f": {item.conversations:,} conversations, {item.messages:,} messages, {item.pairs:,} pairs"
            elif item.error:
                head += f": {item.error}"
            click.echo(head)
            for problem in item.problems[:SHOWN_PROBLEMS]:
                click.echo(f"  {problem}", err=True)
            if len(item.problems) > SHOWN_PROBLEMS:
                click.echo(
                    f"  ... and {len(item.problems) - SHOWN_PROBLEMS} more bad records", err=True
                )
        click.echo(
            f"total: {summary.conversations:,} conversations, {summary.messages:,} messages, {summary.pairs:,} pairs"
        )
        click.echo(f"skipped records: {_counts(summary.skipped)}")
        click.echo(f"agent turns without a pair: {_counts(summary.pairs_skipped)}")
        click.echo(f"redactions: {_counts(summary.redactions)}")
    if not summary.ok:
        sys.exit(1)


@click.group("pairs")
def group() -> None:
    """Inspect and export the training pairs."""


def _database(app: AppContext) -> Database:
    from chatbot.store.database import Database, require_schema

    database = Database(app.settings.resolved_database_url)
    require_schema(database.engine)
    return database


@group.command("stats")
@click.option(
    "--split", type=click.Choice(("train", "val", "test")), default=None, help="Only this split."
)
@click.option("--source", default=None, help="Only this source.")
@json_option
@pass_app
def stats(app: AppContext, split: str | None, source: str | None, as_json: bool) -> None:
    """Counts of pairs by split, source and origin."""
    from chatbot.ingest.repository import pair_stats

    database = _database(app)
    try:
        with database.session() as session:
            result = pair_stats(session=session, split=split, source=source)
    finally:
        database.dispose()
    if as_json:
        emit_json(result)
        return
    click.echo(f"pairs: {result['pairs']:,} ({_counts(result['by_split'])})")
    click.echo(f"origin: {_counts(result['by_origin'])}")
    click.echo(
        f"average reply length: {result['avg_target_chars'] or 0} characters; with a quality score: {result['with_quality']:,}"
    )
    click.echo(
        f"imported conversations by split: {_counts(result['imported_conversations_by_split'])}"
    )
    if result["by_source"]:
        width = max(len(name) for name in result["by_source"])
        click.echo(f"{'source':<{width}}  {'train':>7} {'val':>7} {'test':>7} {'total':>8}")
        for name, row in result["by_source"].items():
            click.echo(
                f"{name:<{width}}  {row['train']:>7,} {row['val']:>7,} {row['test']:>7,} {row['total']:>8,}"
            )


@group.command("export")
@click.option(
    "--split", type=click.Choice(("train", "val", "test")), default=None, help="Only this split."
)
@click.option("--source", default=None, help="Only this source.")
@click.option("--origin", type=click.Choice(values(PairOrigin)), default=None)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (with OUTPUT.meta.json beside it) instead of stdout.",
)
@pass_app
def export(
    app: AppContext, split: str | None, source: str | None, origin: str | None, output: Path | None
) -> None:
    """Write the pairs as JSON Lines, one pair a line, with provenance."""
    import json
    from datetime import datetime

    from chatbot import __version__
    from chatbot.errors import ChatbotError
    from chatbot.files import atomic_path, write_json_atomic
    from chatbot.ingest.repository import iter_pairs
    from chatbot.store.database import redact_url

    database = _database(app)
    count = 0
    try:
        with database.session() as session:
            rows = iter_pairs(
                session=session,
                split=split,
                source=source,
                origin=PairOrigin(origin) if origin else None,
            )
            if output is None:
                for row in rows:
                    click.echo(json.dumps(row, ensure_ascii=False))
                    count += 1
                return
            try:
                with atomic_path(output) as temp, temp.open("w", encoding="utf-8") as fh:
                    for row in rows:
                        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                        count += 1
                meta = {
                    "made_by": f"chatbot {__version__} pairs export",
                    "created_at": datetime.now(UTC).isoformat(),
                    "database": redact_url(app.settings.resolved_database_url),
                    "filters": {"split": split, "source": source, "origin": origin},
                    "pairs": count,
                }
                write_json_atomic(output.with_name(output.name + ".meta.json"), meta)
            except OSError as exc:
                raise ChatbotError(f"cannot write {output}: {exc.strerror}") from None
    finally:
        database.dispose()
    click.echo(f"wrote {count:,} pairs to {output}", err=True)
