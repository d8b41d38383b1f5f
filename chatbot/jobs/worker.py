"""What runs inside a job's own process (`chatbot jobs run ID`, started by
`control.start_job`): mark the job running with this pid, run the training or the
index rebuild with progress, and record the result and the final status.

SIGTERM (the console's Cancel) becomes KeyboardInterrupt, which training already
survives with consistent state (checkpoints, resumable with `chatbot train --resume`);
the job is then "cancelled". While the model version is being written the signal is
held back until the version is complete, so a cancel can never leave a half-registered
version. Errors are recorded on the job with the log path; the traceback goes to the
log (this process's stdout/stderr). Starting and reading jobs is `control`'s job.
"""

from __future__ import annotations

import logging
import os
import signal
import traceback
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chatbot.errors import ChatbotError
from chatbot.jobs import repository as repo
from chatbot.jobs.control import worker_identity
from chatbot.jobs.progress import ProgressWriter, TrainingProgress
from chatbot.jobs.records import JobInfo, job_info

if TYPE_CHECKING:
    from types import FrameType

    from chatbot.settings import Settings
    from chatbot.store.database import Database

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class _Interrupts:
    """SIGTERM -> KeyboardInterrupt, except while `hold()` is on: then it is noted and
    left for the code to finish what it is writing."""

    def __init__(self) -> None:
        self.held = False
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self.held:
            log.warning(
                "cancel asked for while the model version is being written; finishing it first"
            )
            return
        raise KeyboardInterrupt

    def hold(self) -> None:
        self.held = True


def _mark_running(database: Database, job_id: int) -> JobInfo | None:
    with database.session() as session:
        row = repo.job_row(session=session, job_id=job_id)
        if row is None or row.status != "queued":
            return None
        params = {**(row.params or {}), "worker": worker_identity()}
        if not repo.update_if(
            session=session,
            job_id=job_id,
            states=("queued",),
            status="running",
            pid=os.getpid(),
            started_at=_now(),
            params=params,
        ):
            return None
    with database.session() as session:
        row = repo.job_row(session=session, job_id=job_id)
        return job_info(row) if row is not None else None


def _finish(
    database: Database,
    job_id: int,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    with database.session() as session:
        row = repo.job_row(session=session, job_id=job_id)
        if row is None:  # deleted meanwhile: nothing left to record
            return
        values: dict[str, Any] = {
            "status": status,
            "finished_at": _now(),
            "error": error,
            "result": {**(row.result or {}), **(result or {})},
        }
        if progress is not None:
            values["progress"] = {
                **(row.progress or {}),
                **progress,
                "updated_at": _now().isoformat(),
            }
        repo.update_if(session=session, job_id=job_id, states=("running",), **values)


def run_job(settings: Settings, job_id: int) -> int:
    """Run job `job_id`; returns the process exit code (0 also when cancelled)."""
    from chatbot.config import ensure_home
    from chatbot.store.database import Database, require_schema

    interrupts = _Interrupts()
    interrupts.install()
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        try:
            job = _mark_running(database, job_id)
        except KeyboardInterrupt:
            job = None
        if job is None:
            log.info(
                "job %d is not waiting to run (cancelled or already taken); nothing to do", job_id
            )
            return 0
        log.info(
            "job %d (%s) running in process %d with %s", job.id, job.kind, os.getpid(), job.params
        )
        writer = ProgressWriter(database, job.id)
        try:
            ensure_home(settings.paths)
            if job.kind == "train":
                result = _train(settings, database, job, writer, interrupts)
            elif job.kind == "index":
                result = _index(settings, database, job, writer)
            else:
                raise ChatbotError(f"unknown job kind {job.kind!r}")
        except KeyboardInterrupt:
            interrupts.hold()
            log.warning("job %d cancelled", job.id)
            message = (
                "Cancelled. The run kept its checkpoints and can be resumed: chatbot train --resume"
                if job.kind == "train"
                else "Cancelled. The current index is unchanged."
            )
            _finish(
                database,
                job.id,
                "cancelled",
                result={"message": message},
                progress={"phase": "cancelled", "message": message, "eta_s": None},
            )
            return 0
        except ChatbotError as exc:
            interrupts.hold()
            log.error("job %d failed: %s", job.id, exc)
            _finish(
                database,
                job.id,
                "failed",
                error=str(exc),
                progress={"phase": "failed", "message": str(exc), "eta_s": None},
            )
            return 1
        except Exception as exc:  # anything else: record it, keep the traceback in the log
            interrupts.hold()
            traceback.print_exc()
            error = f"unexpected error: {type(exc).__name__}: {exc}; see the log: {job.log_path}"
            _finish(
                database,
                job.id,
                "failed",
                error=error,
                progress={"phase": "failed", "message": error, "eta_s": None},
            )
            return 1
        interrupts.hold()
        writer.flush()
        if interrupts.requested:
            result["cancel_came_too_late"] = (
                "the cancel came while the model version was being written; it was completed"
            )
        _finish(
            database,
            job.id,
            "succeeded",
            result=result,
            progress={"phase": "done", "message": result.get("summary", "done"), "eta_s": 0},
        )
        log.info("job %d succeeded: %s", job.id, result.get("summary", ""))
        return 0
    finally:
        database.dispose()


def _train(
    settings: Settings,
    database: Database,
    job: JobInfo,
    writer: ProgressWriter,
    interrupts: _Interrupts,
) -> dict[str, Any]:
    from chatbot.training.evidence import open_evidence
    from chatbot.training.run import run_training
    from chatbot.training.settings import TrainingSettings

    params = job.params
    updates: dict[str, Any] = {}
    if params.get("minutes") is not None:
        updates["max_minutes"] = float(params["minutes"])
    if params.get("mode"):
        updates["mode"] = params["mode"]
    if params.get("max_steps") is not None:
        updates["max_steps"] = int(params["max_steps"])
    if updates:
        training = TrainingSettings.model_validate({**settings.training.model_dump(), **updates})
        settings = settings.model_copy(update={"training": training})
    progress = TrainingProgress(writer)
    progress.set(message="loading the model, the training pairs and the evidence")
    evidence_for, note = open_evidence(
        settings.paths, settings.retrieval, settings.prompt.evidence_k, database
    )
    log.info("evidence: %s", note)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "finishing":
            interrupts.hold()  # from here on the version is written; a cancel waits for it
        progress(event)

    result = run_training(
        settings.paths,
        settings.training,
        settings.prompt,
        database,
        evidence_for=evidence_for,
        evidence_note=note,
        resume=bool(params.get("resume")),
        progress=on_event,
    )
    if result is None:  # not the main process (cannot happen here: one process)
        return {"summary": "finished"}
    e, m = result.evaluation, result.metrics
    verdict = "promoted" if result.promoted else "not promoted"
    summary = (
        f"version {result.version_name}: validation loss {m['val_loss_before']:.4f} -> {m['val_loss']:.4f}; "
        f"{verdict} ({e['val_loss']:.4f} vs {e['compared_with']} {e['compared_val_loss']:.4f})"
    )
    ranker = _train_ranker(settings, database, result.version_name, progress)
    if ranker is not None:
        summary += f"; ranker {ranker['summary']}"
    return {
        "summary": summary,
        "version": result.version_name,
        "path": result.version_path,
        "promoted": result.promoted,
        "run_dir": result.run_dir,
        "evaluation": e,
        "metrics": {k: v for k, v in m.items() if k not in ("validations",)},
        "evidence": note,
        "ranker": ranker,
    }


def _train_ranker(
    settings: Settings, database: Database, reply_version: str, progress: TrainingProgress
) -> dict[str, Any] | None:
    """The ranker trained beside a new reply version (as `chatbot train` does), or None when
    it is switched off; a ranker that cannot be trained is reported, never fails the job."""
    from chatbot.errors import ChatbotError

    if not settings.ranker.enabled:
        return None
    progress.set(message="training the ranker beside the new version")
    try:
        from chatbot.retrieval.retriever import open_retriever
        from chatbot.training.ranker import train_ranker

        result = train_ranker(
            settings.paths,
            settings.ranker,
            settings.training,
            database,
            open_retriever(settings.paths, settings.retrieval, database),
            reply_version=reply_version,
        )
    except ChatbotError as exc:
        return {"summary": f"not trained ({exc})"}
    verdict = (
        "promoted" if result.promoted else ("kept" if result.kept else f"not kept: {result.why}")
    )
    return {"summary": f"{result.name} {verdict}", **result.as_dict()}


def _index(
    settings: Settings, database: Database, job: JobInfo, writer: ProgressWriter
) -> dict[str, Any]:
    import time

    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.stored_pairs import load_pair_hashes

    started = time.monotonic()
    rebuild = bool(job.params.get("rebuild", True))
    pairs = len(load_pair_hashes(database, settings.retrieval.index_splits))
    what = "rebuilding the index" if rebuild else "bringing the index up to date"
    writer(
        {
            "phase": "indexing",
            "message": f"{what}: embedding {pairs:,} training pairs",
            "pairs": pairs,
            "elapsed_s": 0.0,
        },
        force=True,
    )
    report = update_index(
        settings.paths, settings.retrieval, settings.dialogue, database, rebuild=rebuild
    )
    seconds = round(time.monotonic() - started, 1)
    summary = f"index {report.version}: {report.action} ({report.reason}), {report.pair_count:,} pairs in {seconds:g}s"
    writer(
        {"phase": "done", "message": summary, "pairs": report.pair_count, "elapsed_s": seconds},
        force=True,
    )
    return {"summary": summary, **report.to_dict()}
