"""Starting, cancelling and reading background jobs from the web app (or any process
that holds the settings and the store).

`start_job` records the job, then spawns `python -m chatbot jobs run ID` in a new
session (its own process group), output appended to `<home>/jobs/<id>.log`. The worker
gets exactly the parent's settings, serialised into one environment variable (never
into the database: the settings hold the database URL with its password), so a job
started by a server configured with a TOML file, `CHATBOT_*` variables or keyword
overrides trains with the same values. `cancel_job` sends SIGTERM to the job's process
group; the worker turns it into KeyboardInterrupt and records "cancelled".

Reading a job also checks that its worker still lives: a queued or running job whose
process is gone (or whose pid now belongs to another process) is marked failed. Only
one job of each kind runs at a time. What runs inside the worker is `worker`'s job.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.jobs import JobError
from chatbot.jobs import repository as repo
from chatbot.jobs.records import ACTIVE_STATES, JobInfo, job_info
from chatbot.store.support_schema import JOB_KINDS

if TYPE_CHECKING:
    import psutil

    from chatbot.settings import Settings
    from chatbot.store.database import Database
    from chatbot.store.support_schema import Job

log = logging.getLogger(__name__)

SETTINGS_ENV = "CHATBOT_JOB_SETTINGS"
# A queued job whose worker never recorded itself after this long did not start.
NEVER_STARTED_SECONDS = 120.0
DIED = "the worker process ended unexpectedly; see the log"
WHAT = {"train": "training run", "index": "index rebuild"}
# pg_advisory_xact_lock key: serialises "is one running? then start one" on PostgreSQL.
_START_LOCK = 0x6A6F6273  # "jobs"


def jobs_dir(settings: Settings) -> Path:
    return settings.home / "jobs"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- parameters ----------------------------------------------------------------------------


def check_params(kind: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The job's parameters, checked and normalised; JobError names a bad one."""
    if kind not in JOB_KINDS:
        raise JobError(f"unknown job kind {kind!r}; expected one of {', '.join(JOB_KINDS)}")
    params = dict(params or {})
    allowed = {"train": {"minutes", "mode", "max_steps", "resume"}, "index": {"rebuild"}}[kind]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise JobError(
            f"unknown parameter(s) for a {WHAT[kind]}: {', '.join(unknown)} (expected {', '.join(sorted(allowed))})"
        )
    out: dict[str, Any] = {}
    if kind == "train":
        minutes = params.get("minutes")
        if minutes is not None:
            try:
                minutes = float(minutes)
            except (TypeError, ValueError):
                raise JobError(f"minutes must be a number, got {minutes!r}") from None
            if not 0 < minutes <= 7 * 24 * 60:
                raise JobError(
                    f"minutes must be above 0 and at most a week (10080), got {minutes:g}"
                )
            out["minutes"] = minutes
        mode = params.get("mode")
        if mode is not None:
            mode = str(mode).strip().lower()
            if mode not in ("lora", "full"):
                raise JobError(f"mode must be lora or full, got {params['mode']!r}")
            out["mode"] = mode
        steps = params.get("max_steps")
        if steps is not None:
            if (
                isinstance(steps, bool)
                or not isinstance(steps, (int, float))
                or int(steps) != steps
                or steps < 1
            ):
                raise JobError(f"max_steps must be a whole number of at least 1, got {steps!r}")
            out["max_steps"] = int(steps)
        if params.get("resume"):
            out["resume"] = True
    else:
        out["rebuild"] = bool(params.get("rebuild", True))
    return out


# -- the settings the worker gets ----------------------------------------------------------


def _plain(value: object) -> object:
    from pydantic import SecretStr

    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    return value


def settings_payload(settings: Settings, database_url: str | None = None) -> str:
    """The settings as JSON for the worker's environment (secrets in clear: the
    environment of a process is readable only by its own user)."""
    values = {k: _plain(v) for k, v in settings.model_dump(mode="python").items()}
    if database_url:
        values["database_url"] = database_url
    return json.dumps(values)


def settings_from_environment() -> Settings | None:
    """The settings a parent serialised for this worker, or None when there are none."""
    from chatbot.errors import ConfigError
    from chatbot.settings import Settings

    text = os.environ.get(SETTINGS_ENV)
    if not text:
        return None
    try:
        # model_validate, not Settings(...): the values are final, the environment and
        # the configuration file must not be read again on top of them.
        return Settings.model_validate(json.loads(text))
    except ValueError as exc:
        raise ConfigError(f"{SETTINGS_ENV} does not hold valid settings: {exc}") from None


# -- whether a worker lives ------------------------------------------------------------------


def worker_identity() -> dict[str, Any]:
    """What the worker records about itself, so that readers can tell its process
    from a later one that reuses the pid (and jobs on another machine from theirs)."""
    import psutil

    return {
        "host": socket.gethostname(),
        "started_after_boot": _started_after_boot(psutil.Process()),
    }


def _started_after_boot(process: psutil.Process) -> float:
    """Seconds from the machine's boot to the process's start. Its `create_time` is the
    boot time plus that, and the boot time moves with the system clock (NTP, a virtual
    machine's clock catching up): compared across a clock step, a running worker would
    look like another process that took its pid."""
    import psutil

    return float(process.create_time() - psutil.boot_time())


def _gone_reason(job: JobInfo) -> str | None:
    """Why an active job's worker is known to be dead, or None (alive, or unknowable here)."""
    import psutil

    if job.status not in ACTIVE_STATES:
        return None
    identity = job.params.get("worker") or {}
    host = identity.get("host")
    if host and host != socket.gethostname():
        return None  # its machine's readers can tell; this one cannot
    if job.pid is None:
        created = _aware(job.created_at)
        if (
            job.status == "queued"
            and created
            and (_now() - created).total_seconds() > NEVER_STARTED_SECONDS
        ):
            return "the worker process never started; see the log"
        return None
    try:
        process = psutil.Process(job.pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return DIED
        started = identity.get("started_after_boot")
        if started is not None and abs(_started_after_boot(process) - float(started)) > 1.0:
            return DIED  # the pid now belongs to another process
    except psutil.NoSuchProcess:
        return DIED
    except psutil.AccessDenied:
        return None
    return None


def _reconcile(database: Database, jobs: list[JobInfo]) -> list[JobInfo]:
    """Mark active jobs whose worker is dead as failed; returns the jobs as they are now."""
    dead = [(job, reason) for job in jobs if (reason := _gone_reason(job))]
    if not dead:
        return jobs
    changed: dict[int, JobInfo] = {}
    for job, reason in dead:
        message = f"{reason}: {job.log_path}" if job.log_path else reason
        with database.session() as session:
            if repo.update_if(
                session=session, job_id=job.id, status="failed", error=message, finished_at=_now()
            ):
                log.warning("job %d (%s): %s", job.id, job.kind, message)
            row = repo.job_row(session=session, job_id=job.id)
            if row is not None:
                changed[job.id] = job_info(row)
    return [changed.get(job.id, job) for job in jobs]


# -- reading -------------------------------------------------------------------------------


def get_job(database: Database, job_id: int) -> JobInfo:
    with database.session() as session:
        row = repo.job_row(session=session, job_id=int(job_id))
        if row is None:
            raise JobError(f"there is no job {job_id}")
        job = job_info(row)
    return _reconcile(database, [job])[0]


def list_jobs(
    database: Database, *, kind: str | None = None, limit: int | None = 20
) -> list[JobInfo]:
    """Jobs, newest first (of one kind when `kind` is given)."""
    with database.session() as session:
        jobs = [job_info(r) for r in repo.job_rows(session=session, kind=kind, limit=limit)]
    return _reconcile(database, jobs)


def latest_job(database: Database, kind: str) -> JobInfo | None:
    jobs = list_jobs(database, kind=kind, limit=1)
    return jobs[0] if jobs else None


# -- starting ------------------------------------------------------------------------------


def _describe(job: Job) -> str:
    who = f" by {job.created_by}" if job.created_by else ""
    when = _aware(job.created_at)
    at = f" at {when.astimezone().strftime('%H:%M:%S')}" if when else ""
    return f"job {job.id}, started{who}{at}"


def start_job(
    settings: Settings,
    database: Database,
    kind: str,
    params: dict[str, Any] | None = None,
    created_by: str | None = None,
) -> int:
    """Record a job and start its worker process; returns the job id. JobError when
    the parameters are bad or a job of the same kind is still queued or running."""
    from sqlalchemy import text

    from chatbot.config import ensure_home

    params = check_params(kind, params)
    ensure_home(settings.paths)
    folder = jobs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with database.session() as session:
        _reconcile(database, [job_info(r) for r in repo.active_rows(session=session, kind=kind)])
    with database.session() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _START_LOCK})
        # The row is written before the check: on SQLite the insert takes the write
        # lock, so a second start waits for this transaction and then sees this job.
        row = repo.insert_job(session=session, kind=kind, params=params, created_by=created_by)
        others = [r for r in repo.active_rows(session=session, kind=kind) if r.id != row.id]
        if others:
            raise JobError(
                f"a {WHAT[kind]} is already {others[0].status} ({_describe(others[0])}); "
                "wait for it to finish or cancel it first"
            )
        job_id = row.id
        log_path = folder / f"{job_id}.log"
        row.log_path = str(log_path)
    try:
        process = _spawn(settings, database, job_id, log_path)
    except OSError as exc:
        with database.session() as session:
            repo.update_if(
                session=session,
                job_id=job_id,
                status="failed",
                finished_at=_now(),
                error=f"the worker process could not be started: {exc}",
            )
        raise JobError(
            f"cannot start the {WHAT[kind]}: the worker process could not be started ({exc})"
        ) from None
    with database.session() as session:
        repo.update_if(session=session, job_id=job_id, states=("queued",), pid=process.pid)
    log.info(
        "job %d (%s) started by %s: pid %d, log %s",
        job_id,
        kind,
        created_by or "?",
        process.pid,
        log_path,
    )
    return job_id


def _spawn(
    settings: Settings, database: Database, job_id: int, log_path: Path
) -> subprocess.Popen[bytes]:
    import chatbot

    env = dict(os.environ)
    env[SETTINGS_ENV] = settings_payload(settings, getattr(database, "url", None))
    root = str(Path(chatbot.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot", "-v", "jobs", "run", str(job_id)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(settings.home),
            start_new_session=True,
            close_fds=True,
        )
    # Reap the worker when it ends, so it never lingers as a zombie of the web server.
    threading.Thread(target=process.wait, name=f"job-{job_id}-reaper", daemon=True).start()
    return process


# -- cancelling ----------------------------------------------------------------------------


def cancel_job(database: Database, job_id: int, *, by: str | None = None) -> JobInfo:
    """Ask the job's worker to stop (SIGTERM to its process group); a job whose worker
    has not started yet is marked cancelled at once. Returns the job as it is now: a
    running job becomes "cancelled" when its worker has stopped, within seconds."""
    job = get_job(database, job_id)
    if not job.active:
        raise JobError(
            f"job {job.id} has already {'ended: ' + job.status if job.status != 'cancelled' else 'been cancelled'}"
        )
    host = (job.params.get("worker") or {}).get("host")
    if host and host != socket.gethostname():
        raise JobError(f"job {job.id} runs on {host}; cancel it from a server on that machine")
    note = {"cancelled_by": by, "cancel_requested_at": _now().isoformat()}
    with database.session() as session:
        if repo.update_if(
            session=session,
            job_id=job.id,
            states=("queued",),
            status="cancelled",
            finished_at=_now(),
            result=note,
        ):
            log.info("job %d cancelled before its worker started", job.id)
        else:
            repo.update_if(session=session, job_id=job.id, states=("running",), result=note)
    if job.pid is not None:
        _terminate(job.pid)
    return get_job(database, job.id)


def _terminate(pid: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise JobError(f"not allowed to stop process {pid} (it belongs to another user)") from None
