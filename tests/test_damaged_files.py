"""Damaged or missing index files and leftovers of killed builds (issue 13): every kind
of damage to the current index version is one clear error naming the file and the
repair, from `chatbot ask`, a plain `chatbot index` and `open_retriever`; the web app
(`open_manager(fallback_index=True)`, as `chatbot serve` opens it) serves the newest
intact version instead and says so (issue 24); `chatbot index --rebuild` repairs it and
deletes the damaged version, so it is never what serving falls back to; a running
server keeps serving the old version meanwhile. A `.building-*` folder left by a killed build is deleted by the next build and
never taken for a version. Tiny real embedder, real SQLite, FAISS and BM25."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatbot.cli import main
from chatbot.indexing.builder import update_index
from chatbot.retrieval.index_files import store_root
from chatbot.retrieval.retriever import open_retriever
from chatbot.retrieval.versions import IndexDamagedError, VersionStore
from chatbot.settings import load_settings
from tests.test_dialogue_support import SHOP, seed_shop


def _cut(path: Path) -> None:
    """Cut a file short, as a full disk or a killed copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00garbage{{{ not what was written\n")


# kind -> (how to damage a version directory (and its store root), the file the message must name)
DAMAGE = {
    "index.faiss cut short": (lambda v, root: _cut(v / "index.faiss"), "index.faiss"),
    "index.faiss deleted": (lambda v, root: (v / "index.faiss").unlink(), "index.faiss"),
    "vectors.npy cut short": (lambda v, root: _cut(v / "vectors.npy"), "vectors.npy"),
    "meta.json garbage": (lambda v, root: _garbage(v / "meta.json"), "meta.json"),
    "meta.json not an index's": (
        lambda v, root: (v / "meta.json").write_text('{"format": 1}\n'),
        "meta.json",
    ),
    "pairs.jsonl deleted": (lambda v, root: (v / "pairs.jsonl").unlink(), "pairs.jsonl"),
    "pairs.jsonl garbage": (lambda v, root: _garbage(v / "pairs.jsonl"), "pairs.jsonl"),
    "pairs.jsonl cut short": (lambda v, root: _cut(v / "pairs.jsonl"), "pairs.jsonl"),
    "CURRENT names a missing version": (
        lambda v, root: (root / "CURRENT").write_text("v0042\n"),
        "CURRENT",
    ),
    "lexical size.txt garbage": (lambda v, root: _garbage(v / "lexical" / "size.txt"), "size.txt"),
    "lexical vocabulary garbage": (
        lambda v, root: _garbage(v / "lexical" / "vocab.index.json"),
        "vocab.index.json",
    ),
    "lexical scores cut short": (
        lambda v, root: _cut(v / "lexical" / "data.csc.index.npy"),
        "data.csc.index.npy",
    ),
    "lexical params deleted": (
        lambda v, root: (v / "lexical" / "params.index.json").unlink(),
        "params.index.json",
    ),
}


@pytest.fixture
def env(tmp_path, tiny_embedder_dir, tiny_reply_model_dir, sqlite_database):
    seed_shop(sqlite_database)
    return {
        "CHATBOT_HOME": str(tmp_path / "home"),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_REPLY_MODEL_PATH": str(tiny_reply_model_dir),
        "CHATBOT_DATABASE_URL": sqlite_database.url,
        "CHATBOT_DIALOGUE__GENERATE": "false",  # retrieval is what is tested: no drafting
    }


def _settings(env: dict[str, str]):
    return load_settings(
        home=Path(env["CHATBOT_HOME"]),
        embedder_path=Path(env["CHATBOT_EMBEDDER_PATH"]),
        reply_model_path=Path(env["CHATBOT_REPLY_MODEL_PATH"]),
        database_url=env["CHATBOT_DATABASE_URL"],
        dialogue={"generate": False},
    )


def _cli(env, *args):
    return CliRunner().invoke(main, list(args), env=env)


def _one_clear_error(result, file_name: str) -> str:
    """The command failed with exit 1 and one line naming the file and the repair."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), repr(
        result.exception
    )  # not an escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert file_name in errors[0] and "run: chatbot index --rebuild" in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_index_is_one_clear_error_and_rebuild_repairs_it(kind, env, sqlite_database):
    from chatbot.cli.manager import open_manager
    from chatbot.dialogue.sources import following_retriever

    settings = _settings(env)
    damage, file_name = DAMAGE[kind]
    root = store_root(settings.paths)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
    )
    serving = following_retriever(
        settings.paths,
        settings.retrieval,
        open_retriever(settings.paths, settings.retrieval, sqlite_database),
        check_interval=0,
    )
    assert serving.version == "v0001"
    update_index(
        settings.paths,
        settings.retrieval,
        settings.dialogue,
        sqlite_database,
        rebuild=True,
        calibrate=False,
    )
    damage(root / "v0002", root)

    # The running server keeps answering from the version it has.
    hits = serving.search(SHOP[3][0], k=3).hits
    assert hits and serving.version == "v0001"

    # The library: one error, naming the file.
    with pytest.raises(IndexDamagedError) as raised:
        open_retriever(settings.paths, settings.retrieval, sqlite_database)
    assert raised.value.path.name == file_name and "chatbot index --rebuild" in str(raised.value)
    with pytest.raises(IndexDamagedError):
        open_manager(settings)
    # The web app degrades instead: the newest intact version, the damage noted.
    manager, database = open_manager(settings, fallback_index=True)
    try:
        stand_in = "v0002" if kind == "CURRENT names a missing version" else "v0001"
        assert manager.retriever.version == stand_in
        assert manager.retriever.health.degraded and file_name in manager.retriever.health.problem
        assert manager.retriever.search(SHOP[3][0], k=3).hits
    finally:
        database.dispose()

    # The command line: `ask` and a plain `index` say the same one line.
    _one_clear_error(_cli(env, "ask", "Where is my order?"), file_name)
    _one_clear_error(_cli(env, "index"), file_name)

    # The repair.
    repaired = _cli(env, "index", "--rebuild")
    assert repaired.exit_code == 0, repaired.output
    assert "index v0003: rebuilt" in repaired.output
    answered = _cli(env, "ask", SHOP[3][0])
    assert answered.exit_code == 0, answered.output
    assert SHOP[3][1] in answered.stdout
    assert serving.search(SHOP[3][0], k=1).hits and serving.version == "v0003"
    assert VersionStore(root).current_name() == "v0003"
    # The damaged version is gone: never a version to fall back to.
    kept = VersionStore(root).versions()
    assert ("v0002" in kept) == (kind == "CURRENT names a missing version"), kept


def _killed_build_leftover(root: Path) -> Path:
    """A staging folder exactly as a build killed half-way leaves it: its lock file (no
    process holds the lock any more) and some of the files of a version."""
    staged = root / ".building-killed"
    (staged / "lexical").mkdir(parents=True)
    (staged / ".lock").write_text("")
    (staged / "vectors.npy").write_bytes(b"\x93NUMPY half")
    (staged / "pairs.jsonl").write_text('{"id": 1}\n')
    (staged / "meta.json").write_text("{}\n")
    return staged


def test_a_killed_builds_staging_folder_is_removed_by_the_next_build(env, sqlite_database):
    settings = _settings(env)
    root = store_root(settings.paths)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
    )
    staged = _killed_build_leftover(root)
    # Without its lock file (killed before it was made), a folder counts once it is old.
    unlocked = root / ".building-older"
    unlocked.mkdir()
    old = time.time() - 3600
    os.utime(unlocked, (old, old))
    fresh = root / ".building-just-made"
    fresh.mkdir()
    pointer_tmp = root / ".CURRENT.abc.tmp"
    pointer_tmp.write_text("v0009\n")
    os.utime(pointer_tmp, (old, old))
    store = VersionStore(root)
    assert store.versions() == ["v0001"]  # never taken for a version

    result = _cli(env, "index")  # nothing new to index: still cleans up
    assert result.exit_code == 0 and "is up to date" in result.output, result.output
    assert not staged.exists() and not unlocked.exists() and not pointer_tmp.exists()
    assert fresh.exists()  # may belong to a build that has just started
    assert store.versions() == ["v0001"] and store.current_name() == "v0001"


def test_a_running_builds_staging_folder_is_left_alone(env, sqlite_database):
    """Another build holds its staging folder's lock: a second build must not delete it."""
    settings = _settings(env)
    root = store_root(settings.paths)
    running = VersionStore(root)
    staged = running.staging()  # this process holds the lock, as a live build does
    try:
        (staged / "vectors.npy").write_bytes(b"in progress")
        old = time.time() - 3600
        os.utime(staged, (old, old))
        report = update_index(
            settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
        )
        assert report.version == "v0001"
        assert staged.is_dir() and (staged / "vectors.npy").is_file()
        assert VersionStore(root).clean_stale() == []
    finally:
        running.discard(staged)
    assert VersionStore(root).versions() == ["v0001"]
    assert not any(p.name.startswith(".building-") for p in root.iterdir())


def test_a_committed_version_carries_no_lock_file(env, sqlite_database):
    settings = _settings(env)
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
    )
    version = store_root(settings.paths) / "v0001"
    assert not (version / ".lock").exists()
    assert not [
        p
        for p in store_root(settings.paths).iterdir()
        if re.match(r"^\.(building-|CURRENT\.)", p.name)
    ]
