"""Degrade, don't die (issue 24): model weights cut short are caught by their checksums
(at `models prepare`, `models check` and every load while serving); `chatbot serve`
starts on a damaged current index, serving the newest intact version, and /readyz and
the admin console say so; /readyz says not ready while the database cannot be written
(where /healthz, liveness, still answers); the store, its WAL and shared-memory files,
a new data directory and the session secret are readable by their owner only.
Tiny real models, real SQLite, FAISS and BM25."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import event, text

from chatbot.cli import main
from chatbot.config import ensure_home
from chatbot.errors import ModelUnavailableError
from chatbot.models.checksums import CHECKSUM_FILE, verify_checksums, write_checksums
from chatbot.settings import load_settings
from tests.test_damaged_files import _cut
from tests.test_dialogue_support import seed_shop


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- private files -----------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_the_store_its_wal_the_home_and_the_secret_are_private(tmp_path):
    from chatbot.accounts.secret import SECRET_FILE, session_secret
    from chatbot.store.database import Database

    path = tmp_path / "store.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.session() as session:
            session.execute(text("CREATE TABLE t (x TEXT)"))
            session.execute(text("INSERT INTO t VALUES ('a password hash')"))
        with database.engine.connect() as connection:  # holds the WAL and -shm open
            connection.execute(text("SELECT * FROM t")).all()
            for name in ("store.db", "store.db-wal", "store.db-shm"):
                assert mode(tmp_path / name) == 0o600, name
    finally:
        database.dispose()

    # A store made readable by others earlier is tightened when opened.
    os.chmod(path, 0o644)
    Database(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600

    settings = load_settings(home=tmp_path / "new-home")
    assert mode(ensure_home(settings.paths)) == 0o700
    session_secret(settings.web.session_secret, settings.paths)
    assert mode(settings.home / SECRET_FILE) == 0o600


# -- model checksums ---------------------------------------------------------------------


@pytest.fixture
def model_copy(tmp_path, tiny_reply_model_dir) -> Path:
    copy = tmp_path / "reply-model"
    shutil.copytree(tiny_reply_model_dir, copy)
    return copy


def test_weights_cut_short_are_refused_by_their_checksums(model_copy):
    from chatbot.models.reply_model import load_reply_model

    assert verify_checksums(model_copy) is False  # no checksums: unverified, not damaged
    write_checksums(model_copy)
    listed = json.loads((model_copy / CHECKSUM_FILE).read_text())["files"]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(listed)
    assert verify_checksums(model_copy) is True
    load_reply_model(model_copy)

    _cut(model_copy / "model.safetensors")
    with pytest.raises(ModelUnavailableError, match=r"model\.safetensors is damaged .*cut short"):
        verify_checksums(model_copy)
    with pytest.raises(
        ModelUnavailableError, match="model.safetensors is damaged.*models rollback"
    ):
        load_reply_model(model_copy, repair="run: chatbot models rollback")

    # Same size, other bytes: the SHA-256 tells.
    write_checksums(model_copy)
    data = bytearray((model_copy / "tokenizer.json").read_bytes())
    data[-2] = ord(" ") if data[-2] != ord(" ") else ord("\n")
    (model_copy / "tokenizer.json").write_bytes(bytes(data))
    with pytest.raises(ModelUnavailableError, match="tokenizer.json is damaged.*SHA-256"):
        verify_checksums(model_copy)


def test_weights_are_hashed_once_while_they_stay_as_they_were(model_copy, monkeypatch):
    from chatbot.models import checksums

    write_checksums(model_copy)
    weights = model_copy / "model.safetensors"
    hashed: list[str] = []
    sha256_of = checksums.sha256_of
    monkeypatch.setattr(checksums, "sha256_of", lambda p: hashed.append(p.name) or sha256_of(p))

    # Just written (the copy): hashed at every check, its file times too fresh to tell a rewrite.
    assert verify_checksums(model_copy) and verify_checksums(model_copy)
    assert hashed.count("model.safetensors") == 2

    monkeypatch.setattr(checksums, "SETTLED_SECONDS", -3600.0)  # as if written long ago
    assert verify_checksums(model_copy)
    assert verify_checksums(model_copy)
    assert hashed.count("model.safetensors") == 3  # the second check reused the first

    # Rewritten since, same size, other bytes: hashed again, and refused.
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    (model_copy / "rewritten.tmp").write_bytes(bytes(data))
    os.replace(model_copy / "rewritten.tmp", weights)
    with pytest.raises(ModelUnavailableError, match=r"model\.safetensors is damaged.*SHA-256"):
        verify_checksums(model_copy)
    assert hashed.count("model.safetensors") == 4


@pytest.mark.parametrize(
    "listing", ["{not json", '{"files": []}', '{"files": {"config.json": {"size": "x"}}}']
)
def test_a_garbled_checksum_file_is_a_clear_error(model_copy, listing):
    (model_copy / CHECKSUM_FILE).write_text(listing)
    with pytest.raises(ModelUnavailableError, match="checksums of the model .* are unreadable"):
        verify_checksums(model_copy, "run: chatbot models prepare --force")


def test_a_cut_short_cache_is_not_up_to_date_for_models_prepare(model_copy):
    from chatbot.models.reply_model import CONVERSION_FORMAT, _cache_is_valid

    (model_copy / "meta.json").write_text(
        json.dumps({"source_sha256": "abc", "conversion_format": CONVERSION_FORMAT})
    )
    assert not _cache_is_valid(model_copy, "abc")  # no checksums yet: converted again
    write_checksums(model_copy)
    assert _cache_is_valid(model_copy, "abc")
    _cut(model_copy / "model.safetensors")
    assert not _cache_is_valid(model_copy, "abc")


def test_models_check_fails_on_weights_cut_short(model_copy, tiny_embedder_dir, tmp_path):
    write_checksums(model_copy)
    _cut(model_copy / "model.safetensors")
    env = {
        "CHATBOT_HOME": str(tmp_path / "home"),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_REPLY_MODEL_PATH": str(model_copy),
    }
    result = CliRunner().invoke(main, ["models", "check"], env=env)
    assert result.exit_code == 1, result.output
    assert "FAIL reply model" in result.output and "model.safetensors is damaged" in result.output


# -- serving degraded --------------------------------------------------------------------


def test_serve_starts_on_a_damaged_index_and_says_so(
    tmp_path, tiny_embedder_dir, tiny_reply_model_dir, sqlite_database, monkeypatch
):
    """The current index version cut short: `chatbot serve` starts on the version before
    it; /readyz says the index is degraded (no detail to anonymous callers), the admin
    console names the damage; a read-only database makes /readyz 503 while /healthz still
    answers; the recovery sweep runs while it serves."""
    import uvicorn
    from fastapi.testclient import TestClient

    from chatbot.indexing.builder import update_index
    from chatbot.retrieval.index_files import store_root
    from chatbot.ui.admin import serving_notice

    seed_shop(sqlite_database)
    env = {
        "CHATBOT_HOME": str(tmp_path / "home"),
        "CHATBOT_EMBEDDER_PATH": str(tiny_embedder_dir),
        "CHATBOT_REPLY_MODEL_PATH": str(tiny_reply_model_dir),
        "CHATBOT_DATABASE_URL": sqlite_database.url,
    }
    settings = load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        reply_model_path=tiny_reply_model_dir,
        database_url=sqlite_database.url,
    )
    update_index(
        settings.paths, settings.retrieval, settings.dialogue, sqlite_database, calibrate=False
    )
    update_index(
        settings.paths,
        settings.retrieval,
        settings.dialogue,
        sqlite_database,
        rebuild=True,
        calibrate=False,
    )
    _cut(store_root(settings.paths) / "v0002" / "vectors.npy")

    seen: dict[str, object] = {}

    def serve(app, **_):
        client = TestClient(app)
        assert client.get("/healthz").json() == {"ok": True}
        ready = client.get("/readyz")
        seen["ready"] = (ready.status_code, ready.json())

    monkeypatch.setattr(uvicorn, "run", serve)
    result = CliRunner().invoke(main, ["serve", "--no-demo"], env=env)
    assert result.exit_code == 0, result.output
    status, body = seen["ready"]
    assert body["degraded"] == ["index"] and body["checks"]["index"] is True
    assert "v0002" not in json.dumps(body) and "vectors" not in json.dumps(body)

    # The same checks over the services, as the admin console shows them.
    from chatbot.cli.manager import open_manager
    from chatbot.web.readiness import public_view, readiness
    from chatbot.web.services import Services

    manager, database = open_manager(settings, fallback_index=True)
    try:
        services = Services(settings=settings, database=database, manager=manager)
        notice = serving_notice(services)
        assert "Serving in a degraded state" in notice and "vectors\\.npy" in notice
        assert "v0001" in notice
        assert public_view(readiness(services))["checks"]["database"] is True

        # A database that refuses writes: not ready, though it answers reads.
        event.listen(
            database.engine,
            "connect",
            lambda connection, _record: connection.execute("PRAGMA query_only = ON"),
        )
        database.engine.dispose()
        with database.session() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        checks = readiness(services)
        assert public_view(checks)["ready"] is False
        assert public_view(checks)["checks"]["database"] is False
        assert "cannot be written" in serving_notice(services)
    finally:
        database.dispose()
