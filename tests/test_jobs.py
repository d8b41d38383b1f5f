"""Background jobs as real worker processes (`python -m chatbot jobs run ID`): a tiny
training run recorded with its progress, loss curve and result; a run cancelled while
it trains (and a second one refused meanwhile); an index rebuild; a worker that died
without a word; and the one-job-per-kind rule on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from chatbot.config import ensure_home
from chatbot.jobs import JobError, cancel_job, get_job, list_jobs, start_job
from chatbot.jobs.control import (
    DIED,
    _gone_reason,
    settings_from_environment,
    settings_payload,
    worker_identity,
)
from chatbot.settings import load_settings
from tests.test_training_run import FAST
from tests.test_training_support import fill_pairs


@pytest.fixture
def job_settings(tmp_path, tiny_embedder_dir, tiny_reply_model_dir, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the worker inherits it: two cores are shared
    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        reply_model_path=tiny_reply_model_dir,
        training=FAST,
    )
    ensure_home(settings.paths)
    return settings


def stop_jobs(database) -> None:
    """Teardown: no worker outlives its test, even a failed one."""
    for job in list_jobs(database, limit=None):
        if job.active and job.pid:
            try:
                cancel_job(database, job.id)
                psutil.Process(job.pid).wait(timeout=30)
            except (JobError, psutil.Error):
                pass


@pytest.fixture
def store(sqlite_database):
    fill_pairs(sqlite_database)
    yield sqlite_database
    stop_jobs(sqlite_database)


def _wait(database, job_id, until, timeout=240.0, every=0.2):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        job = get_job(database, job_id)
        seen.append(job)
        if until(job):
            return job, seen
        if time.monotonic() > deadline:
            log = (
                open(job.log_path).read()[-3000:]
                if job.log_path and os.path.exists(job.log_path)
                else ""
            )
            pytest.fail(
                f"job {job_id} is still {job.status} ({job.progress.get('message')}) after {timeout}s\n{log}"
            )
        time.sleep(every)


def _assert_gone(pid, timeout=15.0):
    """The worker process ends (and is reaped by the starting process) soon after its last write."""
    deadline = time.monotonic() + timeout
    while psutil.pid_exists(pid):
        assert time.monotonic() < deadline, f"the worker process {pid} is still there"
        time.sleep(0.1)


def test_a_training_job_runs_in_its_own_process_with_progress_and_result(job_settings, store):
    from chatbot.models.versions import get_version

    job_id = start_job(
        job_settings, store, "train", {"mode": "lora", "max_steps": 6}, created_by="ada"
    )
    job = get_job(store, job_id)
    assert job.kind == "train" and job.created_by == "ada" and job.pid and job.pid != os.getpid()
    assert job.log_path == str(job_settings.home / "jobs" / f"{job_id}.log")
    done, seen = _wait(store, job_id, lambda j: not j.active)
    assert done.status == "succeeded", (done.error, open(done.log_path).read()[-3000:])
    assert any(j.status == "running" and j.progress.get("phase") == "training" for j in seen)
    p = done.progress
    assert p["phase"] == "done" and p["step"] == p["total_steps"] == 6
    assert [point["step"] for point in p["train_curve"]] == [1, 2, 3, 4, 5, 6]
    assert [point["step"] for point in p["val_curve"]] == [0, 2, 4, 6]  # 0: before training
    assert p["elapsed_s"] > 0 and p["eta_s"] == 0
    r = done.result
    version = get_version(store, r["version"])
    assert r["promoted"] and version.status == "promoted"  # the first version beats the base model
    assert r["metrics"]["steps"] == 6 and r["metrics"]["mode"] == "lora"
    assert version.metrics["val_loss"] == pytest.approx(r["metrics"]["val_loss"])
    assert done.started_at and done.finished_at and done.params["worker"]["host"]
    assert "running in process" in open(done.log_path).read()
    _assert_gone(done.pid)
    assert [j.id for j in list_jobs(store, kind="train")] == [job_id]


def test_cancelling_a_training_job_stops_its_process_and_a_second_is_refused(job_settings, store):
    job_id = start_job(job_settings, store, "train", {"max_steps": 400}, created_by="ada")
    job, _ = _wait(store, job_id, lambda j: j.progress.get("step", 0) >= 2 or not j.active)
    assert job.status == "running", job.error
    with pytest.raises(
        JobError, match=f"a training run is already running \\(job {job_id}, started by ada"
    ):
        start_job(job_settings, store, "train", {}, created_by="bob")
    cancel_job(store, job_id, by="ada")
    done, _ = _wait(store, job_id, lambda j: not j.active, timeout=60)
    assert done.status == "cancelled"
    assert (
        "can be resumed: chatbot train --resume" in done.result["message"]
        and done.result["cancelled_by"] == "ada"
    )
    assert done.progress["phase"] == "cancelled" and 2 <= done.progress["step"] < 400
    _assert_gone(done.pid)
    with pytest.raises(JobError, match="already been cancelled"):
        cancel_job(store, job_id)
    # Only the refused job's row was not kept; a new run may start now.
    assert [j.id for j in list_jobs(store)] == [job_id]


def test_an_index_job_rebuilds_the_index(job_settings, store):
    from chatbot.retrieval.index_files import store_root
    from chatbot.retrieval.versions import VersionStore

    job_id = start_job(job_settings, store, "index", {}, created_by="ada")
    done, _ = _wait(store, job_id, lambda j: not j.active)
    assert done.status == "succeeded", (done.error, open(done.log_path).read()[-3000:])
    assert done.result["action"] == "built" and done.result["pair_count"] == 24
    assert done.progress["phase"] == "done" and "24 pairs" in done.progress["message"]
    assert VersionStore(store_root(job_settings.paths)).current_name() == done.result["version"]


def test_a_worker_that_died_is_shown_as_failed(job_settings, store):
    from chatbot.jobs import repository as repo

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with store.session() as session:
        row = repo.insert_job(session=session, kind="train", params={}, created_by="ada")
        row.status, row.pid, row.log_path = "running", dead.pid, "/tmp/x.log"
        job_id = row.id
    job = get_job(store, job_id)
    assert (
        job.status == "failed"
        and job.error == "the worker process ended unexpectedly; see the log: /tmp/x.log"
    )
    assert job.finished_at is not None
    with pytest.raises(JobError, match="already ended: failed"):
        cancel_job(store, job_id)


def test_one_job_of_a_kind_at_a_time_and_bad_parameters(job_settings, migrated_database):
    from chatbot.jobs import repository as repo

    db = migrated_database
    # A running job whose worker is this very process (alive, same host).
    with db.session() as session:
        row = repo.insert_job(
            session=session, kind="index", params={"worker": worker_identity()}, created_by="ada"
        )
        row.status, row.pid = "running", os.getpid()
    with pytest.raises(JobError, match="an? index rebuild is already running"):
        start_job(job_settings, db, "index", {})
    assert len(list_jobs(db)) == 1 and get_job(db, row.id).status == "running"
    for kind, params, message in [
        ("train", {"minutes": 0}, "minutes must be above 0"),
        ("train", {"mode": "half"}, "mode must be lora or full"),
        ("train", {"max_steps": 1.5}, "max_steps must be a whole number"),
        ("train", {"epochs": 3}, "unknown parameter"),
        ("cook", {}, "unknown job kind"),
    ]:
        with pytest.raises(JobError, match=message):
            start_job(job_settings, db, kind, params)
    with pytest.raises(JobError, match="there is no job 999"):
        get_job(db, 999)


def test_the_worker_gets_the_parents_settings_exactly(job_settings, monkeypatch):
    settings = job_settings.model_copy(
        update={
            "port": 8123,
            "web": job_settings.web.model_copy(
                update={"session_secret": __import__("pydantic").SecretStr("s3cret")}
            ),
        }
    )
    monkeypatch.setenv(
        "CHATBOT_JOB_SETTINGS", settings_payload(settings, "sqlite:////elsewhere/x.db")
    )
    monkeypatch.setenv(
        "CHATBOT_PORT", "9999"
    )  # the parent's values win over the worker's environment
    got = settings_from_environment()
    assert got.port == 8123 and got.database_url == "sqlite:////elsewhere/x.db"
    assert got.web.session_secret.get_secret_value() == "s3cret"
    assert got.training == settings.training and got.reply_model_path == settings.reply_model_path
    assert (
        got.training.max_minutes is None
    )  # None survives, which an environment variable cannot say


def test_a_running_worker_stays_alive_across_a_step_of_the_system_clock(monkeypatch):
    """The boot time psutil derives a process's start from moves with the system clock; a
    worker checked after a clock step is still the same process, while a pid that now
    belongs to another process (a later start) is still told apart."""
    from psutil import _psplatform

    from chatbot.jobs.records import JobInfo

    running = JobInfo(
        id=1, kind="train", status="running", pid=os.getpid(), params={"worker": worker_identity()}
    )
    assert _gone_reason(running) is None
    booted = _psplatform.boot_time()
    monkeypatch.setattr(_psplatform, "boot_time", lambda: booted + 30.0)  # the clock jumps
    assert psutil.Process(os.getpid()).create_time() - booted > 29  # what psutil now reports
    assert _gone_reason(running) is None
    identity = running.params["worker"]
    reused = {**identity, "started_after_boot": identity["started_after_boot"] - 60.0}
    assert _gone_reason(JobInfo(**{**running.__dict__, "params": {"worker": reused}})) == DIED
