"""The admin console's Import tab: upload transcript files (or a folder), import them
with progress and a summary of what was stored, skipped and refused; and start an index
rebuild, with the rebuild job's progress line.

Imports run in the request (one transaction per file); the rebuild is a background job
(`chatbot.jobs`) that this tab starts and the page polls. Where its job ends: importing
is `chatbot.ingest`'s, the jobs `chatbot.jobs`', the polling `ui.admin`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from chatbot.errors import AccessDenied, ChatbotError
from chatbot.ui.admin_common import PRIVATE, admin_name, clock_text, job_head, md_text, refused
from chatbot.ui.handlers import Update, fills

if TYPE_CHECKING:
    import gradio as gr

    from chatbot.ingest.importer import ProgressBar
    from chatbot.ingest.records import ImportSummary
    from chatbot.jobs.records import JobInfo
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

SHOWN_PROBLEMS = 50


@dataclass
class Upload:
    """An uploaded file: where Gradio stored it, and the name the admin knows it by."""

    path: Path
    name: str
    size: int


@dataclass
class ImportOutcome:
    markdown: str
    imported: bool = False  # something new is in the store: the index should be rebuilt
    rejected: list[str] = field(default_factory=list)


def _paths(value: object) -> list[Path]:
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        name = getattr(item, "name", None) if not isinstance(item, (str, Path)) else item
        if name:
            out.append(Path(str(name)))
    return out


def collect_uploads(
    files: Sequence[str | Path] | None, folder: Sequence[str | Path] | None, max_bytes: int
) -> tuple[list[Upload], list[str], list[str]]:
    """(files to import, refusals, files of the folder left out as not transcripts).

    Gradio keeps an upload's base name (in a temporary folder of its own), so that is
    the name shown; files of a folder are taken when their suffix is a transcript one."""
    from chatbot.ingest.folders import IMPORTABLE_SUFFIXES, is_hidden, is_importable

    uploads: list[Upload] = []
    refused: list[str] = []
    left_out: list[str] = []
    candidates = [(p, False) for p in _paths(files)] + [(p, True) for p in _paths(folder)]
    seen: set[Path] = set()
    for path, from_folder in candidates:
        if path in seen:
            continue
        seen.add(path)
        name = path.name
        if from_folder and not is_importable(path):
            if not is_hidden(path):
                left_out.append(name)
            continue
        try:
            size = path.stat().st_size
        except OSError as exc:
            refused.append(f"{name}: the upload cannot be read ({exc.strerror})")
            continue
        if size > max_bytes:
            refused.append(
                f"{name}: {size / 2**20:.1f} MB is larger than the upload limit of "
                f"{max_bytes / 2**20:g} MB (setting web.max_upload_mb)"
            )
            continue
        uploads.append(Upload(path, name, size))
    if folder and not uploads and not refused and not files:
        refused.append(
            f"the folder holds no transcript file (expected names ending in {', '.join(IMPORTABLE_SUFFIXES)})"
        )
    return uploads, refused, left_out


class ProgressReport(Protocol):
    """Where an import reports how far it is: `gr.Progress`, or a callable like it."""

    def __call__(self, share: float, /, *, desc: str) -> object: ...


class _BytesProgress:
    """`import_paths`' progress factory, reporting the share of all uploaded bytes read."""

    def __init__(self, report: ProgressReport, uploads: list[Upload]):
        self.report = report
        self.total = max(1, sum(u.size for u in uploads))
        self.names = {str(u.path): u.name for u in uploads}
        self.done = 0
        self.shown_at = 0.0

    def __call__(self, path: str, total: int) -> ProgressBar:
        outer = self
        name = self.names.get(str(path), Path(path).name)
        start = self.done

        class Bar:
            read = 0

            def update(self, n: int) -> None:
                self.read += n
                now = time.monotonic()
                if now - outer.shown_at >= 0.25:
                    outer.shown_at = now
                    outer.report(
                        min(1.0, (start + self.read) / outer.total), desc=f"importing {name}"
                    )

            def close(self) -> None:
                outer.done = start + total

        self.report(start / self.total, desc=f"importing {name}")
        return Bar()


def _summary_markdown(
    summary: ImportSummary | None, uploads: list[Upload], refused: list[str], left_out: list[str]
) -> str:
    names = {str(u.path): u.name for u in uploads}
    lines: list[str] = []
    files = summary.files if summary is not None else []
    imported = [f for f in files if f.status == "imported"]
    if summary is not None and files:
        lines.append(
            f"**{len(imported)} of {len(files)} file(s) imported: {summary.conversations:,} conversations, "
            f"{summary.messages:,} messages, {summary.pairs:,} training pairs.**"
        )
        lines.append("")
        lines.append(
            "| file | format | result | conversations | messages | pairs | duplicates | problems |"
        )
        lines.append("|---|---|---|---:|---:|---:|---:|---:|")
        for f in files:
            name = names.get(f.path, Path(f.path).name)
            duplicates = (
                f.skipped.get("duplicate_in_file", 0)
                + f.skipped.get("already_stored", 0)
                + f.pairs_skipped.get("near_duplicate", 0)
            )
            result = f.status.replace("_", " ")
            if f.status in ("failed", "rejected") and f.error:
                result += ": " + f.error.replace(f.path, name)
            lines.append(
                f"| {md_text(name)} | {md_text(f.format or '-')} | {md_text(result)} | {f.conversations:,} | "
                f"{f.messages:,} | {f.pairs:,} | {duplicates:,} | {len(f.problems):,} |"
            )
        problems = [(names.get(f.path, Path(f.path).name), f) for f in files if f.problems]
        if problems:
            lines += ["", "**Problems found** (these records were skipped):", ""]
            for name, f in problems:
                for p in f.problems[:SHOWN_PROBLEMS]:
                    where = (
                        f"{name}, line {p.line}"
                        if p.line is not None
                        else (f"{name}, record {p.index}" if p.index is not None else name)
                    )
                    lines.append(f"- {md_text(where)}: {md_text(p.reason)}")
                if len(f.problems) > SHOWN_PROBLEMS:
                    lines.append(
                        f"- {md_text(name)}: … and {len(f.problems) - SHOWN_PROBLEMS:,} more"
                    )
        if summary.redactions:
            shown = ", ".join(f"{md_text(k)} {v:,}" for k, v in sorted(summary.redactions.items()))
            lines += ["", f"Personal data replaced by placeholders before storing: {shown}."]
    if refused:
        lines += ["", "**Not imported:**", ""] + [f"- {md_text(r)}" for r in refused]
    if left_out:
        shown = ", ".join(md_text(n) for n in left_out[:10]) + (" …" if len(left_out) > 10 else "")
        lines += ["", f"Left out of the folder, not transcript files: {len(left_out)} ({shown})."]
    if imported:
        lines += [
            "",
            "New pairs are in the store: **Rebuild index** so that the assistant can use them.",
        ]
    return "\n".join(lines).strip() or "Nothing was imported."


def import_uploads(
    services: Services,
    files: Sequence[str | Path] | None,
    folder: Sequence[str | Path] | None,
    progress: ProgressReport | None = None,
) -> ImportOutcome:
    """Import the uploaded files (and the transcript files of an uploaded folder)."""
    from chatbot.ingest.importer import import_paths

    max_bytes = services.settings.web.max_upload_mb * 2**20
    uploads, refused, left_out = collect_uploads(files, folder, max_bytes)
    if not uploads:
        if not refused:
            return ImportOutcome("Choose transcript files (or a folder) to import first.")
        return ImportOutcome(_summary_markdown(None, [], refused, left_out), rejected=refused)
    factory = _BytesProgress(progress, uploads) if progress is not None else None
    try:
        summary = import_paths(
            services.database,
            [u.path for u in uploads],
            ingest=services.settings.ingest,
            progress=factory,
        )
    except ChatbotError as exc:
        return ImportOutcome(f"**The import failed:** {md_text(exc)}", rejected=refused)
    if progress is not None:
        progress(1.0, desc="done")
    log.info(
        "admin import: %d file(s), %d conversations, %d pairs",
        len(uploads),
        summary.conversations,
        summary.pairs,
    )
    return ImportOutcome(
        _summary_markdown(summary, uploads, refused, left_out),
        imported=any(f.status == "imported" for f in summary.files),
        rejected=refused,
    )


def index_markdown(job: JobInfo | None) -> str:
    if job is None:
        return "No index rebuild yet."
    lines = [job_head(job)]
    p = job.progress
    if job.status == "succeeded":
        lines.append(md_text(job.result.get("summary", "done")))
    elif job.status == "failed":
        lines.append(f"Failed: {md_text(job.error or 'unknown error')}")
    elif job.status == "cancelled":
        lines.append(md_text(job.result.get("message", "cancelled")))
    else:
        started = job.started_at or job.created_at
        elapsed = (
            (datetime.now(UTC) - started.replace(tzinfo=started.tzinfo or UTC)).total_seconds()
            if started
            else None
        )
        lines.append(f"{md_text(p.get('message', 'starting'))} · elapsed {clock_text(elapsed)}")
    return "  \n".join(lines)


def index_status(services: Services) -> tuple[str, bool]:
    """(what to show under Rebuild index, whether a rebuild is running)."""
    from chatbot.jobs.control import latest_job

    job = latest_job(services.database, "index")
    return index_markdown(job), bool(job and job.active)


def start_index_rebuild(services: Services, username: str) -> tuple[str, bool]:
    from chatbot.jobs import start_job

    try:
        start_job(
            services.settings, services.database, "index", {"rebuild": True}, created_by=username
        )
    except ChatbotError as exc:
        shown, active = index_status(services)
        return f"**Not started:** {md_text(exc)}  \n{shown}", active
    return index_status(services)


# -- the tab -------------------------------------------------------------------------------


def import_tab(services: Services, timer: gr.Timer) -> gr.Markdown:
    """Lay out and wire the Import tab (inside the page's Blocks); the index rebuild's
    progress line, which the page's job poll keeps up to date."""
    import gradio as gr

    with gr.Tab("Import", id="import-tab"):
        gr.Markdown(
            "Upload transcript files: JSON Lines, JSON or CSV, and exports of Zendesk, Intercom and Chatwoot "
            f"(told apart by content), up to {services.settings.web.max_upload_mb} MB each. A folder must hold only "
            ".jsonl, .ndjson, .json, .csv and .tsv files: a folder with any other file is refused whole "
            "(move the other files out first; `chatbot import DIR` on the server leaves them out instead)."
        )
        with gr.Row():
            upload = gr.File(file_count="multiple", label="Transcript files", elem_id="upload")
            upload_folder = gr.File(
                file_count="directory", label="Or a folder", elem_id="upload-folder"
            )
        import_button = gr.Button("Import", variant="primary", elem_id="import")
        import_summary = gr.Markdown(elem_id="import-summary")
        rebuild_button = gr.Button("Rebuild index", elem_id="rebuild-index")
        index_progress = gr.Markdown(elem_id="index-progress")

    @fills(request=gr.Request)
    def do_import(
        files: list[str] | None,
        folder: list[str] | None,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress bar)
    ) -> str:
        try:
            admin_name(services, request)
        except AccessDenied as exc:
            return refused(exc)
        return import_uploads(services, files, folder, progress).markdown

    @fills(request=gr.Request)
    def do_rebuild(request: gr.Request) -> tuple[str, gr.Timer | Update]:
        try:
            text, active = start_index_rebuild(services, admin_name(services, request))
        except AccessDenied as exc:
            return refused(exc), gr.skip()
        return text, gr.Timer(active=True) if active else gr.skip()

    import_button.click(
        do_import, [upload, upload_folder], [import_summary], concurrency_limit=1, **PRIVATE
    )
    rebuild_button.click(do_rebuild, None, [index_progress, timer], **PRIVATE)
    return index_progress
