"""The admin console at `/admin`: import transcripts (files or a folder) and rebuild the
index, start / watch / cancel a training run, compare model versions and promote or roll
back, approve or discard agents' answers held back for personal data, and the analytics tab.

Long work never runs in the web process: training and index rebuilds are background jobs
(`chatbot.jobs`) in their own processes, which this page starts, cancels and polls (a
`gr.Timer` runs while a job does; reopening the page shows the job that runs). Imports
run in the request, with progress, since they are one transaction per file.

Where the job ends: importing is `chatbot.ingest`'s, jobs `chatbot.jobs`', promotion
rules `chatbot.models.versions`', the Analytics tab `ui.admin_analytics`', and the login
in front of the page `chatbot.app`'s. The handler logic is plain functions over
`Services` (tested without a browser); `build_admin_console` only wires them to
components. Everything from files, the store or a user is escaped before it is shown.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from chatbot.errors import AccessDenied, ChatbotError
from chatbot.store.enums import PairOrigin
from chatbot.ui.handlers import EventOptions, Update, fills

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

    from chatbot.ingest.importer import ProgressBar
    from chatbot.ingest.records import ImportSummary
    from chatbot.jobs.records import JobInfo
    from chatbot.store.database import Database
    from chatbot.ui.admin_analytics import AnalyticsTab
    from chatbot.web.auth import SignedRequest
    from chatbot.web.services import Services

log = logging.getLogger(__name__)

TITLE = "Support assistant — admin"
SHOWN_PROBLEMS = 50
MODE_CHOICES = [("LoRA adapters (faster)", "lora"), ("Full fine-tuning", "full")]
AGENT_ORIGINS = (PairOrigin.AGENT_APPROVED, PairOrigin.AGENT_EDITED)
VERSION_COLUMNS = [
    "version",
    "status",
    "created (UTC)",
    "mode",
    "steps",
    "val loss before",
    "val loss",
    "compared with",
    "its val loss",
    "val pairs",
    "train pairs",
    "from agents",
    "reply evaluation",
]

RANKER_COLUMNS = [
    "ranker",
    "status",
    "created (UTC)",
    "steps",
    "gain over retrieval (ROUGE-L)",
    "val pairs",
    "train pairs",
    "verdict",
]

# Both series named up front: the plot keeps the series it saw first otherwise.
CURVE_COLORS = {"training": "#2563eb", "validation": "#ea580c"}
VERSION_WIDTHS: list[str | int] = [
    "190px",
    "110px",
    "140px",
    "70px",
    "70px",
    "90px",
    "90px",
    "170px",
    "90px",
    "70px",
    "70px",
    "80px",
    "360px",
]

_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(value: object) -> str:
    """`value` as inert Markdown text: no HTML, no formatting, no table breaks."""
    text = html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " ")
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _utc(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _loss(value: object) -> str:
    from chatbot.models.versions import metric_number

    number = metric_number(value)
    return "-" if number is None else f"{number:.4f}"


# -- who is asking --------------------------------------------------------------------------


def admin_name(services: Services, request: SignedRequest | None) -> str:
    """The logged-in admin's username, re-checked against the store (AccessDenied if not)."""
    from chatbot.web.auth import ADMIN_ROLES, current_user

    return current_user(services, request, ADMIN_ROLES).username


# -- Import tab -----------------------------------------------------------------------------


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


# -- jobs, as the page shows them -------------------------------------------------------------


def _job_head(job: JobInfo) -> str:
    who = f" by {md_text(job.created_by)}" if job.created_by else ""
    return f"Job {job.id} · **{job.status}** · started{who} at {_utc(job.created_at)} UTC"


def index_markdown(job: JobInfo | None) -> str:
    if job is None:
        return "No index rebuild yet."
    lines = [_job_head(job)]
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
        lines.append(f"{md_text(p.get('message', 'starting'))} · elapsed {_clock(elapsed)}")
    return "  \n".join(lines)


def serving_notice(services: Services) -> str:
    """Markdown at the top of the console while the app serves in a degraded state (an
    older index standing in for a damaged one, no usable reply model, a read-only
    database); empty while everything serves as configured."""
    from chatbot.web.readiness import readiness

    problems = [
        f"**{name}:** {md_text(check.detail)}"
        for name, check in readiness(services).items()
        if check.degraded or not check.ok
    ]
    if not problems:
        return ""
    return "### Serving in a degraded state\n" + "  \n".join(problems)


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


def training_markdown(job: JobInfo | None) -> str:
    if job is None:
        return "No training run yet. Choose the minutes and the kind of training, then **Start training**."
    p = job.progress
    lines = [_job_head(job)]
    mode = job.params.get("mode")
    minutes = job.params.get("minutes")
    settings_line = []
    if mode:
        settings_line.append("LoRA" if mode == "lora" else "full fine-tuning")
    if minutes:
        settings_line.append(f"at most {minutes:g} minutes")
    if settings_line:
        lines.append(" · ".join(settings_line))
    step, total = p.get("step") or 0, p.get("total_steps")
    if job.status in ("queued", "running"):
        phase = p.get("phase", "starting")
        if phase == "training" and total:
            eta = p.get("eta_s")
            lines.append(
                f"Step {step:,} of {total:,} ({100 * step / total:.0f}%) · elapsed {_clock(p.get('elapsed_s'))}"
                + (f" · about {_clock(eta)} left" if eta is not None else "")
            )
        else:
            lines.append(
                f"{md_text(p.get('message', 'starting'))} · elapsed {_clock(p.get('elapsed_s'))}"
            )
    elif job.status == "succeeded":
        lines.append(md_text(job.result.get("summary", "finished")))
    elif job.status == "failed":
        lines.append(f"Failed: {md_text(job.error or 'unknown error')}")
    elif job.status == "cancelled":
        at = f"Stopped at step {step:,} of {total:,}. " if total else ""
        lines.append(at + md_text(job.result.get("message", "Cancelled.")))
    losses = []
    if p.get("train_loss") is not None:
        losses.append(f"training loss {_loss(p['train_loss'])}")
    if p.get("best_val_loss") is not None:
        losses.append(f"best validation loss {_loss(p['best_val_loss'])}")
    if p.get("baseline_val_loss") is not None:
        losses.append(f"before training {_loss(p['baseline_val_loss'])}")
    if losses and job.status != "succeeded":
        lines.append(" · ".join(losses))
    return "  \n".join(lines)


def loss_frame(job: JobInfo | None) -> pd.DataFrame | None:
    """The loss curve: one row per point, series "training" or "validation"; None when
    there is no point yet (Gradio 6.31's LinePlot draws no line again after it was
    given an empty frame, until the page is reloaded; None leaves it working)."""
    import pandas as pd

    rows = []
    if job is not None:
        for point in job.progress.get("train_curve") or []:
            rows.append({"step": point["step"], "loss": point["train_loss"], "series": "training"})
        for point in job.progress.get("val_curve") or []:
            rows.append({"step": point["step"], "loss": point["val_loss"], "series": "validation"})
    if not rows:
        return None
    # The plot takes its series (the colour scale's domain) from the first frame it
    # draws and never adds one later, and a run's first frame holds only the baseline
    # validation point: every series is named from the start, one without points yet
    # by an empty point (NaN loss, drawn as nothing).
    present = {row["series"] for row in rows}
    first_step = min(row["step"] for row in rows)
    rows += [
        {"step": first_step, "loss": float("nan"), "series": s}
        for s in CURVE_COLORS
        if s not in present
    ]
    frame = pd.DataFrame(rows, columns=["step", "loss", "series"])
    return frame.astype({"step": "int64", "loss": "float64", "series": "object"})


@dataclass
class TrainingView:
    markdown: str
    curve: pd.DataFrame | None
    running: bool
    job_id: int | None = None


def training_view(services: Services, note: str | None = None) -> TrainingView:
    from chatbot.jobs.control import latest_job

    job = latest_job(services.database, "train")
    text = training_markdown(job)
    if note:
        text = f"{note}  \n{text}"
    return TrainingView(text, loss_frame(job), bool(job and job.active), job.id if job else None)


def start_training(
    services: Services, minutes: float | None, mode: str | None, username: str
) -> TrainingView:
    from chatbot.jobs import start_job

    params: dict[str, object] = {"mode": mode or services.settings.training.mode}
    if minutes is not None:
        params["minutes"] = minutes
    try:
        start_job(services.settings, services.database, "train", params, created_by=username)
    except ChatbotError as exc:
        return training_view(services, f"**Not started:** {md_text(exc)}")
    return training_view(services)


def cancel_training(services: Services, username: str) -> TrainingView:
    from chatbot.jobs import cancel_job
    from chatbot.jobs.control import latest_job

    job = latest_job(services.database, "train")
    if job is None or not job.active:
        return training_view(services, "No training run is running.")
    try:
        cancel_job(services.database, job.id, by=username)
    except ChatbotError as exc:
        return training_view(services, f"**Not cancelled:** {md_text(exc)}")
    if job.progress.get("phase") == "finishing":
        note = "The run is already writing its model version; it finishes in a moment."
    else:
        note = "Cancelling: the run stops at once and keeps its checkpoints."
    return training_view(services, note)


# -- Versions tab ---------------------------------------------------------------------------


def agent_pairs(snapshot: dict[str, Any]) -> int | None:
    """How many of a version's training pairs came from agents' approvals and edits."""
    by_origin = snapshot.get("train_by_origin")
    if not isinstance(by_origin, dict):
        return None
    return sum(int(by_origin.get(origin, 0)) for origin in AGENT_ORIGINS)


def _empty_versions() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([], columns=VERSION_COLUMNS)


def _empty_rankers() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([], columns=RANKER_COLUMNS)


def versions_frame(services: Services) -> pd.DataFrame:
    import pandas as pd

    from chatbot.evaluation.record import evaluation_line
    from chatbot.models.versions import list_versions

    rows = []
    for v in list_versions(services.database):
        m, e, snap = v.metrics, v.evaluation, v.data_snapshot
        agents = agent_pairs(snap)
        rows.append(
            [
                v.name,
                "serving" if v.status == "promoted" else v.status,
                _utc(v.created_at)[:16],
                str(v.settings.get("mode") or m.get("mode") or "-"),
                str(m.get("steps", "-")),
                _loss(m.get("val_loss_before")),
                _loss(e.get("val_loss", m.get("val_loss"))),
                str(e.get("compared_with") or "-"),
                _loss(e.get("compared_val_loss")),
                str(e.get("val_pairs", "-")),
                str(snap.get("train_pairs", "-")),
                "-" if agents is None else str(agents),
                evaluation_line(e) or "-",
            ]
        )
    return pd.DataFrame(rows, columns=VERSION_COLUMNS)


def rankers_frame(services: Services) -> pd.DataFrame:
    """The ranker versions (`chatbot ranker list`), newest first: whether each one's picks
    beat retrieval's on its validation questions, and by how much."""
    import pandas as pd

    from chatbot.models.versions import list_versions, metric_number

    rows = []
    for v in list_versions(services.database, kind="ranker"):
        e, snap = v.evaluation, v.data_snapshot
        gain, stderr = metric_number(e.get("gain")), metric_number(e.get("gain_stderr"))
        rows.append(
            [
                v.name,
                "serving" if v.status == "promoted" else v.status,
                _utc(v.created_at)[:16],
                str(v.metrics.get("steps", "-")),
                "-"
                if gain is None
                else f"{gain:+.3f}" + ("" if stderr is None else f" ± {stderr:.3f}"),
                str(e.get("val_pairs", "-")),
                str(snap.get("train_pairs", "-")),
                str(e.get("why") or "-"),
            ]
        )
    return pd.DataFrame(rows, columns=RANKER_COLUMNS)


def serving_line(services: Services) -> str:
    from chatbot.models.versions import promoted_version

    current = promoted_version(services.database)
    ranker = promoted_version(services.database, kind="ranker")
    reply = (
        f"Serving: **{md_text(current.name)}**"
        if current
        else "Serving: **the base model** (no version promoted)"
    )
    return reply + (
        f"; ranker **{md_text(ranker.name)}**"
        if ranker
        else "; no ranker (retrieval and the critique choose)"
    )


def promote_by_name(services: Services, name: str, force: bool, username: str) -> str:
    from chatbot.models.versions import promote

    name = (name or "").strip()
    if not name:
        return "Type the name of a version to promote."
    try:
        version, previous = promote(services.database, name, force=bool(force))
    except ChatbotError as exc:
        text = str(exc).replace(
            "promote it with --force", "tick “Promote even if it evaluated worse” (--force)"
        )
        return f"**Refused:** {md_text(text)}  \n{serving_line(services)}"
    log.info("admin %s promoted %s%s", username, version.name, " (forced)" if force else "")
    was = f" (was {md_text(previous.name)})" if previous else ""
    return f"Promoted **{md_text(version.name)}**{was}; servers pick it up within seconds.  \n{serving_line(services)}"


def rollback_serving(services: Services, username: str, kind: str = "reply") -> str:
    from chatbot.models.versions import rollback

    try:
        retired, restored = rollback(services.database, kind=kind)
    except ChatbotError as exc:
        return f"**Refused:** {md_text(exc)}  \n{serving_line(services)}"
    log.info("admin %s rolled back %s", username, retired.name)
    base = "the base model" if kind == "reply" else "no ranker"
    now = md_text(restored.name) if restored else base
    return (
        f"Rolled back **{md_text(retired.name)}**; now serving {now}.  \n{serving_line(services)}"
    )


# -- answers held back for personal data ------------------------------------------------------

HELD_COLUMNS = ["id", "conversation", "agent", "personal data", "question", "answer", "held at"]
# The answer (what holds the personal data) gets the most room; every column fits the page.
HELD_WIDTHS: list[str | int] = ["5%", "11%", "8%", "9%", "25%", "30%", "12%"]


def _empty_held() -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([], columns=HELD_COLUMNS)


def held_frame(database: Database) -> pd.DataFrame:
    """The agents' answers held back for personal data (`chatbot.support.sharing`), oldest first."""
    import pandas as pd

    from chatbot.support.sharing import held_answers

    rows = [
        [
            h.id,
            h.conversation_id,
            h.agent,
            ", ".join(h.kinds),
            h.question,
            h.text,
            _utc(h.created_at),
        ]
        for h in held_answers(database)
    ]
    return pd.DataFrame(rows, columns=HELD_COLUMNS)


def decide_held(database: Database, held_id: object, approve: bool, username: str) -> str:
    """Approve (share as a training pair) or discard one held answer; the outcome in words."""
    from chatbot.support import sharing

    try:
        number = int(str(held_id).strip())
    except ValueError:
        return "Type the id of a held answer (the first column)."
    try:
        if approve:
            pair_id = sharing.approve(database, number, username)
        else:
            sharing.discard(database, number, username)
    except ChatbotError as exc:
        return f"**Refused:** {md_text(exc)}"
    log.info("admin %s %s held answer %d", username, "approved" if approve else "discarded", number)
    if approve:
        return (
            f"Held answer {number} approved: it is shared now (training pair {pair_id}), "
            "served by the answer cache and used by the next index build and training run."
        )
    return f"Held answer {number} discarded: it will never be shared, and its text was cleared."


# -- the page -------------------------------------------------------------------------------


def _analytics_tab() -> Callable[[Services], AnalyticsTab] | None:
    try:
        from chatbot.ui.admin_analytics import analytics_tab
    except ImportError as exc:  # the tab is optional: the rest of the console works without it
        log.warning("admin console: no Analytics tab (%s)", exc)
        return None
    return analytics_tab


def build_admin_console(services: Services) -> gr.Blocks:
    import gradio as gr

    from chatbot.web.auth import LOGOUT_FORM

    settings = services.settings
    poll = settings.web.poll_seconds

    def who(request: gr.Request) -> str:
        return admin_name(services, request)

    def refused(exc: Exception) -> str:
        return f"**Refused:** {md_text(exc)}"

    console = gr.Blocks(title=TITLE, analytics_enabled=False)
    with console:
        with gr.Row():
            gr.Markdown("## Admin console")
            gr.HTML(LOGOUT_FORM, elem_id="logout-form", elem_classes=["logout-form"])
        health_notice = gr.Markdown(elem_id="serving-health")
        timer = gr.Timer(poll, active=False)
        with gr.Tab("Import", id="import-tab"):
            gr.Markdown(
                "Upload transcript files: JSON Lines, JSON or CSV, and exports of Zendesk, Intercom and Chatwoot "
                f"(told apart by content), up to {settings.web.max_upload_mb} MB each. A folder must hold only "
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
        with gr.Tab("Training", id="training-tab"):
            with gr.Row():
                minutes = gr.Number(
                    value=settings.training.max_minutes or 13,
                    minimum=1,
                    maximum=7 * 24 * 60,
                    label="Minutes (the whole run, at most)",
                    elem_id="train-minutes",
                )
                mode = gr.Radio(
                    MODE_CHOICES,
                    value=settings.training.mode,
                    label="Training",
                    elem_id="train-mode",
                )
            with gr.Row():
                start_button = gr.Button(
                    "Start training", variant="primary", elem_id="start-training"
                )
                cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel-training")
            training_progress = gr.Markdown(elem_id="training-progress")
            loss_curve = gr.LinePlot(
                None,
                x="step",
                y="loss",
                color="series",
                title="Loss",
                color_map=CURVE_COLORS,
                x_title="step",
                y_title="loss (per reply token)",
                elem_id="loss-curve",
            )
        with gr.Tab("Versions", id="versions-tab") as versions_tab:
            gr.Markdown(
                "Promote any version by its name, a reply model or a ranker (below the tables). "
                "Reply-model versions, newest first. Validation losses are on each run's own validation "
                'pairs, beside the version serving when it was trained ("compared with"); "from agents" '
                "counts the training pairs that came from agents' approvals and edits."
            )
            versions = gr.Dataframe(
                _empty_versions(),
                interactive=False,
                wrap=True,
                elem_id="versions",
                column_widths=VERSION_WIDTHS,
            )
            gr.Markdown(
                "Rankers, newest first: the model that chooses among the candidate replies. One "
                "is kept (and can be promoted without forcing) only when its picks beat "
                "retrieval's on its validation questions by more than two standard errors."
            )
            rankers = gr.Dataframe(
                _empty_rankers(), interactive=False, wrap=True, elem_id="rankers"
            )
            with gr.Row():
                promote_name = gr.Textbox(
                    label="Version to promote",
                    placeholder="reply-20260101-120000",
                    elem_id="promote-name",
                    scale=3,
                )
                force = gr.Checkbox(
                    label="Promote even if it evaluated worse", elem_id="force-promote", scale=1
                )
            with gr.Row():
                promote_button = gr.Button("Promote", variant="primary", elem_id="promote")
                rollback_button = gr.Button("Roll back the reply model", elem_id="rollback")
                rollback_ranker_button = gr.Button(
                    "Roll back the ranker", elem_id="rollback-ranker"
                )
            versions_status = gr.Markdown(elem_id="versions-status")
        with gr.Tab("Held answers", id="held-tab") as held_tab:
            gr.Markdown(
                "Answers held back for personal data: agents' answers that hold something "
                "slotting cannot hide (an IBAN, a passport or card number, a street address). "
                "Their customers got them; no other customer will until you approve one "
                "(approve only when the flagged value is the company's own, or harmless). "
                "Discarding clears the text."
            )
            held = gr.Dataframe(
                _empty_held(),
                interactive=False,
                wrap=True,
                column_widths=HELD_WIDTHS,
                elem_id="held",
            )
            with gr.Row():
                held_id = gr.Textbox(label="Held answer id", elem_id="held-id", scale=2)
                approve_held = gr.Button("Approve and share", elem_id="held-approve", scale=1)
                discard_held = gr.Button("Discard", variant="stop", elem_id="held-discard", scale=1)
            held_status = gr.Markdown(elem_id="held-status")
        with gr.Tab("Analytics", id="analytics-tab"):
            tab = _analytics_tab()
            if tab is None:
                gr.Markdown("Analytics are not available in this installation.")
            else:
                tab(services)
        with gr.Tab("Logins", id="logins-tab") as logins:
            from chatbot.ui.admin_logins import failed_logins_frame, logins_tab

            logins_table = logins_tab(services, who)

        # -- handlers: thin wrappers over the functions above --------------------------
        @fills(request=gr.Request)
        def do_import(
            files: list[str] | None,
            folder: list[str] | None,
            request: gr.Request,
            progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress bar)
        ) -> str:
            try:
                who(request)
            except AccessDenied as exc:
                return refused(exc)
            return import_uploads(services, files, folder, progress).markdown

        @fills(request=gr.Request)
        def do_rebuild(request: gr.Request) -> tuple[str, gr.Timer | Update]:
            try:
                text, active = start_index_rebuild(services, who(request))
            except AccessDenied as exc:
                return refused(exc), gr.skip()
            return text, gr.Timer(active=True) if active else gr.skip()

        def shown(view: TrainingView) -> tuple[str, pd.DataFrame | None]:
            return view.markdown, view.curve

        @fills(request=gr.Request)
        def do_start(
            minutes_value: float | None, mode_value: str | None, request: gr.Request
        ) -> tuple[str, pd.DataFrame | None | Update, gr.Timer | Update]:
            try:
                view = start_training(services, minutes_value, mode_value, who(request))
            except AccessDenied as exc:
                return refused(exc), gr.skip(), gr.skip()
            return (*shown(view), gr.Timer(active=True) if view.running else gr.skip())

        @fills(request=gr.Request)
        def do_cancel(request: gr.Request) -> tuple[str, pd.DataFrame | None | Update]:
            try:
                view = cancel_training(services, who(request))
            except AccessDenied as exc:
                return refused(exc), gr.skip()
            return shown(view)

        def refresh_jobs() -> tuple[str, pd.DataFrame | None, str, gr.Timer]:
            view = training_view(services)
            index_text, index_active = index_status(services)
            return (*shown(view), index_text, gr.Timer(active=view.running or index_active))

        @fills(request=gr.Request)
        def do_promote(
            name: str, force_value: bool, request: gr.Request
        ) -> tuple[str, pd.DataFrame | Update, pd.DataFrame | Update]:
            try:
                text = promote_by_name(services, name, force_value, who(request))
            except AccessDenied as exc:
                return refused(exc), gr.skip(), gr.skip()
            return text, versions_frame(services), rankers_frame(services)

        def rollback_handler(
            kind: str,
        ) -> Callable[[gr.Request], tuple[str, pd.DataFrame | Update, pd.DataFrame | Update]]:
            @fills(request=gr.Request)
            def do_rollback(
                request: gr.Request,
            ) -> tuple[str, pd.DataFrame | Update, pd.DataFrame | Update]:
                try:
                    text = rollback_serving(services, who(request), kind=kind)
                except AccessDenied as exc:
                    return refused(exc), gr.skip(), gr.skip()
                return text, versions_frame(services), rankers_frame(services)

            return do_rollback

        def refresh_versions() -> tuple[pd.DataFrame, pd.DataFrame, str]:
            return versions_frame(services), rankers_frame(services), serving_line(services)

        def held_handler(
            approve: bool,
        ) -> Callable[[str, gr.Request], tuple[str, pd.DataFrame | Update]]:
            @fills(request=gr.Request)
            def do_held(number: str, request: gr.Request) -> tuple[str, pd.DataFrame | Update]:
                try:
                    text = decide_held(services.database, number, approve, who(request))
                except AccessDenied as exc:
                    return refused(exc), gr.skip()
                return text, held_frame(services.database)

            return do_held

        def refresh_held() -> pd.DataFrame:
            return held_frame(services.database)

        private: EventOptions = {"api_visibility": "private"}
        import_button.click(
            do_import, [upload, upload_folder], [import_summary], concurrency_limit=1, **private
        )
        rebuild_button.click(do_rebuild, None, [index_progress, timer], **private)
        start_button.click(
            do_start, [minutes, mode], [training_progress, loss_curve, timer], **private
        )
        cancel_button.click(do_cancel, None, [training_progress, loss_curve], **private)
        jobs_outputs = [training_progress, loss_curve, index_progress, timer]
        timer.tick(refresh_jobs, None, jobs_outputs, show_progress="hidden", **private)
        console.load(refresh_jobs, None, jobs_outputs, **private)
        version_outputs = [versions_status, versions, rankers]
        promote_button.click(do_promote, [promote_name, force], version_outputs, **private)
        rollback_button.click(rollback_handler("reply"), None, version_outputs, **private)
        rollback_ranker_button.click(rollback_handler("ranker"), None, version_outputs, **private)
        shown_versions = [versions, rankers, versions_status]
        versions_tab.select(refresh_versions, None, shown_versions, **private)
        console.load(refresh_versions, None, shown_versions, **private)
        logins.select(lambda: failed_logins_frame(services), None, [logins_table], **private)
        approve_held.click(held_handler(True), [held_id], [held_status, held], **private)
        discard_held.click(held_handler(False), [held_id], [held_status, held], **private)
        held_tab.select(refresh_held, None, [held], **private)
        console.load(lambda: serving_notice(services), None, health_notice, **private)
    return console
