"""Faults (issue 13): damaged or missing reply models (`chatbot models check` says what
and how to repair in one line; serving answers from retrieved past answers), and
`SIGKILL` during an import, an index build and a training run, then a restart (real
subprocesses killed at a point the test controls): the store and the files stay
consistent, the work can be retried or resumed and gives what an uninterrupted run
gives, and nothing is left behind. Tiny real models, real SQLite, FAISS and BM25."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.settings import load_settings
from tests.test_dialogue_support import SHOP, seed_shop

REPO = Path(__file__).resolve().parent.parent


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# kind -> how to damage a model directory
MODEL_DAMAGE = {
    "config.json garbage": lambda d: (d / "config.json").write_text("{ this is not json"),
    "weights cut short": lambda d: _cut(d / "model.safetensors"),
    "weights deleted": lambda d: (d / "model.safetensors").unlink(),
    "tokenizer garbage": lambda d: (d / "tokenizer.json").write_text("\x00\x01 garbage"),
    "directory missing": lambda d: shutil.rmtree(d),
}


def _check_lines(result) -> dict[str, str]:
    """`models check` output: check name -> (status word, detail) as one line each."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = {}
    for line in result.stdout.splitlines():
        status, _, rest = line.partition(" ")
        name, _, detail = rest.strip().partition(": ")
        lines[name] = f"{status} {detail}"
    return lines


@pytest.fixture
def model_copy(tmp_path, tiny_reply_model_dir) -> Path:
    target = tmp_path / "reply-model"
    shutil.copytree(tiny_reply_model_dir, target)
    return target


@pytest.mark.parametrize("kind", list(MODEL_DAMAGE))
def test_models_check_names_a_damaged_configured_model_and_the_repair(
    kind, tmp_path, tiny_embedder_dir, model_copy
):
    env = {
        "CHATBOT_HOME": str(tmp_path / "home"),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_REPLY_MODEL_PATH": str(model_copy),
    }
    healthy = CliRunner().invoke(main, ["models", "check"], env=env)
    assert healthy.exit_code == 0, healthy.output
    MODEL_DAMAGE[kind](model_copy)
    result = CliRunner().invoke(main, ["models", "check"], env=env)
    assert result.exit_code == 1, result.output
    lines = _check_lines(result)
    assert lines["embedder"].startswith("ok ")
    line = lines["reply model"]
    assert (
        line.startswith("FAIL ") and str(model_copy) in line and "CHATBOT_REPLY_MODEL_PATH" in line
    ), line


@pytest.mark.parametrize("kind", ["weights cut short", "config.json garbage", "directory missing"])
def test_models_check_tells_to_prepare_a_damaged_cache_again(
    kind, tmp_path, tiny_embedder_dir, tiny_reply_model_dir
):
    from chatbot.models.reply_model import converted_dir

    settings = load_settings(home=tmp_path / "home")
    cache = converted_dir(settings.paths)
    shutil.copytree(tiny_reply_model_dir, cache)
    MODEL_DAMAGE[kind](cache)
    env = {"CHATBOT_HOME": str(tmp_path / "home"), "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir)}
    result = CliRunner().invoke(main, ["models", "check"], env=env)
    assert result.exit_code == 1, result.output
    line = _check_lines(result)["reply model"]
    assert line.startswith("FAIL ") and str(cache) in line and "chatbot models prepare" in line, (
        line
    )


def _promote_copy(database, source: Path, target: Path, name: str = "run-1"):
    from chatbot.models.versions import promote, register_version

    shutil.copytree(source, target)
    register_version(database, name=name, path=target, settings={}, data_snapshot={}, metrics={})
    promote(database, name, force=True)
    return target


def test_models_check_names_a_damaged_promoted_version_and_the_rollback(
    tmp_path, tiny_embedder_dir, tiny_reply_model_dir, sqlite_database
):
    version_dir = _promote_copy(
        sqlite_database, tiny_reply_model_dir, tmp_path / "versions" / "run-1"
    )
    env = {
        "CHATBOT_HOME": str(tmp_path / "home"),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_REPLY_MODEL_PATH": str(tiny_reply_model_dir),
        "CHATBOT_DATABASE_URL": sqlite_database.url,
    }
    healthy = CliRunner().invoke(main, ["models", "check"], env=env)
    assert healthy.exit_code == 0, healthy.output
    assert _check_lines(healthy)["promoted reply model run-1"].startswith("ok ")
    _cut(version_dir / "model.safetensors")
    result = CliRunner().invoke(main, ["models", "check"], env=env)
    assert result.exit_code == 1, result.output
    lines = _check_lines(result)
    assert lines["reply model"].startswith("ok ")
    line = lines["promoted reply model run-1"]
    assert (
        line.startswith("FAIL ") and str(version_dir) in line and "chatbot models rollback" in line
    ), line


@pytest.mark.parametrize("damaged", ["promoted version", "base model"])
def test_serving_with_a_damaged_model_answers_from_past_answers(
    damaged, tmp_path, tiny_embedder_dir, model_copy, sqlite_database
):
    """open_manager as `chatbot serve` does, with the reply model it would load damaged:
    the customer still gets the retrieved past answer, and the failure is recorded."""
    from chatbot.cli.manager import open_manager
    from chatbot.indexing.builder import update_index

    # send_retrieved_at 1.0: the model is asked for a draft even where a retrieved answer is confident.
    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        reply_model_path=model_copy,
        database_url=sqlite_database.url,
        dialogue={"send_retrieved_at": 1.0},
    )
    seed_shop(sqlite_database)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
    )
    if damaged == "promoted version":
        target = _promote_copy(sqlite_database, model_copy, tmp_path / "versions" / "run-1")
    else:
        target = model_copy
    _cut(target / "model.safetensors")
    manager, database = open_manager(settings)
    try:
        question, answer = SHOP[3][0], SHOP[3][1]
        reply = manager.respond(question, source="cli")
        again = manager.respond(
            "And how long is the reset link valid?", reply.conversation_id, source="cli"
        )
    finally:
        database.dispose()
    assert reply.decision in ("answer", "answer_flagged", "held"), reply.decision
    assert reply.text == answer
    errors = [c["error"] for c in reply.to_dict()["candidates"] if "error" in c]
    assert errors and "cannot load the reply model" in errors[0] and str(target) in errors[0]
    assert (
        again.conversation_id == reply.conversation_id and again.text
    )  # the next message is answered too


# -- SIGKILL, then restart ------------------------------------------------------------


def _subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update({"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra})
    return env


def _kill_when(process: subprocess.Popen, seen, timeout: float = 120) -> list[str]:
    """Read the process's stderr until `seen(line)`, then SIGKILL it; returns the lines."""
    lines = []
    deadline = time.monotonic() + timeout
    try:
        for line in process.stderr:
            lines.append(line)
            if seen(line):
                break
            assert time.monotonic() < deadline, "the kill point never came"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "".join(lines)[-2000:]
    return lines


def _many_pairs(database, n: int) -> None:
    import hashlib

    from chatbot.store.schema import Conversation, TrainingPair

    with database.session() as session:
        conversation = Conversation(
            source="bulk", external_id="bulk-1", channel="import", split="train"
        )
        session.add(conversation)
        session.flush()
        session.add_all(
            [
                TrainingPair(
                    conversation_id=conversation.id,
                    turn_index=2 * i + 1,
                    source="bulk",
                    split="train",
                    context=[
                        {"role": "customer", "text": f"Question {i}: where is order NW-{i:06d}?"}
                    ],
                    target=f"Order NW-{i:06d} ships within {i % 7 + 1} days.",
                    content_hash=hashlib.sha256(f"bulk-{i}".encode()).hexdigest(),
                )
                for i in range(n)
            ]
        )


def test_index_build_killed_midway_keeps_serving_and_the_next_build_cleans_up(
    tmp_path, tiny_embedder_dir, sqlite_database
):
    import numpy as np

    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.index_files import load_meta, store_root
    from chatbot.retrieval.retriever import open_retriever
    from chatbot.retrieval.versions import VersionStore

    settings = load_settings(
        home=tmp_path / "home", embedder_path=tiny_embedder_dir, database_url=sqlite_database.url
    )
    _many_pairs(sqlite_database, 3000)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
    )  # v0001, uninterrupted
    root = store_root(settings.paths)
    env = _subprocess_env(
        {
            "CHATBOT_HOME": str(settings.home),
            "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
            "CHATBOT_DATABASE_URL": sqlite_database.url,
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "-v", "index", "--rebuild", "--no-calibrate"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Killed once the new version's folder exists and its pairs are being embedded.
    _kill_when(process, lambda line: "building index version in" in line)

    store = VersionStore(root)
    leftovers = [p for p in root.iterdir() if p.name.startswith(".building-")]
    assert len(leftovers) == 1, "the kill should land mid-build"
    assert store.versions() == ["v0001"] and store.current_name() == "v0001"
    serving = open_retriever(
        settings.paths, settings.retrieval, sqlite_database
    )  # the old version is whole and serves
    assert serving.version == "v0001" and serving.search("where is order NW-000042?", k=1).hits

    again = CliRunner().invoke(
        main,
        ["index", "--rebuild", "--no-calibrate", "--json"],
        env={k: v for k, v in env.items() if k.startswith("CHATBOT_")},
    )
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["version"] == "v0002"
    assert not [p.name for p in root.iterdir() if p.name.startswith((".building-", ".CURRENT."))]
    assert store.versions() == ["v0001", "v0002"] and store.current_name() == "v0002"
    assert not (root / "v0002" / ".lock").exists()
    first, second = load_meta(root / "v0001"), load_meta(root / "v0002")
    assert (
        (second["pair_count"], second["pair_set_hash"])
        == (first["pair_count"], first["pair_set_hash"])
        == (3000, first["pair_set_hash"])
    )
    assert np.allclose(
        np.load(root / "v0001" / "vectors.npy"), np.load(root / "v0002" / "vectors.npy"), atol=1e-5
    )
    assert (root / "v0001" / "pairs.jsonl").read_text() == (
        root / "v0002" / "pairs.jsonl"
    ).read_text()


def test_import_killed_midway_then_retried_equals_an_uninterrupted_import(tmp_path):
    """Killed after its third batch was written (not committed): the store is as before;
    importing the same file again gives exactly what an uninterrupted import gives."""
    from chatbot.store.conversations import table_counts
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from tests.test_ingest_import import record

    transcript = tmp_path / "history.jsonl"
    with transcript.open("w") as fh:
        for i in range(2000):
            fh.write(
                record(
                    f"h-{i}",
                    ("customer", f"Question {i} about order NW-{i:06d}?"),
                    ("agent", f"Answer {i}: it ships within {i % 7 + 1} days."),
                    ("customer", f"Follow-up {i}"),
                    ("agent", f"Reply {i} to the follow-up."),
                )
                + "\n"
            )

    def store(name: str) -> tuple[str, dict[str, str]]:
        url = f"sqlite:///{tmp_path / name}"
        upgrade(url)
        return url, _subprocess_env(
            {
                "CHATBOT_DATABASE_URL": url,
                "CHATBOT_HOME": str(tmp_path / f"home-{name}"),
                "CHATBOT_INGEST__BATCH_SIZE": "200",
            }
        )

    def counts(url: str) -> dict[str, int]:
        database = Database(url)
        try:
            with database.session() as session:
                return table_counts(session=session)
        finally:
            database.dispose()

    def run_import(env) -> dict:
        done = subprocess.run(
            [sys.executable, "-m", "chatbot", "import", "--json", str(transcript)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout)

    killed_url, killed_env = store("killed.db")
    before = counts(killed_url)
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "-vv", "import", str(transcript)],
        cwd=REPO,
        env=killed_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    batches = []
    _kill_when(
        process, lambda line: "stored a batch" in line and len(batches.append(line) or batches) == 3
    )
    assert counts(killed_url) == before  # all or nothing

    retried = run_import(killed_env)
    straight_url, straight_env = store("straight.db")
    uninterrupted = run_import(straight_env)
    same = ("ok", "conversations", "messages", "pairs", "skipped", "pairs_skipped", "redactions")
    assert {k: retried[k] for k in same} == {k: uninterrupted[k] for k in same}
    assert retried["files"][0]["status"] == "imported"
    assert counts(killed_url) == counts(straight_url)
    assert counts(killed_url)["conversations"] == 2000
    database = Database(killed_url)
    try:
        with database.session() as session:
            from sqlalchemy import text

            assert session.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        database.dispose()


@pytest.mark.slow  # about 40 s on 2 cores; tests/test_training_run.py kills a training run in the default set
def test_training_killed_midway_resumes_and_leaves_nothing_behind(tmp_path, tiny_reply_model_dir):
    """A real `chatbot train` killed after its first checkpoint: `train --resume`
    finishes the same run, registers exactly one version, and no temporary file,
    checkpoint or staging folder is left under the versions folder."""
    from chatbot.config import ensure_home
    from chatbot.models.versions import list_versions
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade
    from tests.test_training_run import _env, _settings
    from tests.test_training_support import fill_pairs

    run = {"max_steps": 6, "eval_every": 2, "fuse_top_k": 1}
    settings = _settings(tmp_path, tiny_reply_model_dir, **run)
    ensure_home(settings.paths)
    upgrade(settings.resolved_database_url)
    database = Database(settings.resolved_database_url)
    try:
        fill_pairs(database)
        env = _env(tmp_path, tiny_reply_model_dir, **run)
        process = subprocess.Popen(
            [sys.executable, "-m", "chatbot", "train", "--json"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        runs = settings.versions_dir / "runs"
        deadline = time.monotonic() + 180
        try:
            # The first save point is complete once its resume state follows its
            # checkpoint; a kill between the two leaves nothing to resume yet.
            while not (
                list(runs.glob("*/checkpoints/step-000002")) and list(runs.glob("*/resume.json"))
            ):
                assert process.poll() is None, process.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "no checkpoint appeared"
                time.sleep(0.02)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
            process.stderr.close()
        assert list_versions(database) == []  # nothing half-registered

        done = subprocess.run(
            [sys.executable, "-m", "chatbot", "train", "--resume", "--json"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads(done.stdout)
        versions = list_versions(database)
        assert [v.name for v in versions] == [result["version"]]
        assert result["metrics"]["steps"] == 6 and 2 <= result["metrics"]["resumed_from_step"] < 6
        version_dir = Path(versions[0].path)
        assert (version_dir / "config.json").is_file() and (
            version_dir / "model.safetensors"
        ).is_file()
        leftovers = [
            str(p.relative_to(settings.versions_dir))
            for p in settings.versions_dir.rglob("*")
            if p.name.endswith(".tmp") or p.name.startswith(".building-") or p.name == "checkpoints"
        ]
        assert leftovers == []
        assert (
            json.loads((runs / result["version"] / "state.json").read_text())["status"]
            == "finished"
        )
    finally:
        database.dispose()
