"""Shared fixtures: isolated settings per test, tiny models once per session, and the
store on SQLite and on a real PostgreSQL server (CHATBOT_TEST_POSTGRES_URL, started by
.ci/run or scripts/test-postgres.sh), each test in a database of its own.

Under pytest-xdist (`./run.sh test` runs one worker per core) every worker runs torch on one
thread, and the tests of one file stay together on one worker (its module fixtures are
built once, its tests run in their order); the browser tests all share one worker, one
browser and one served app."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from chatbot.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
POSTGRES_ENV = "CHATBOT_TEST_POSTGRES_URL"


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("OMP_NUM_THREADS"):
        # One worker per core: the models a test runs in the worker take one thread each instead
        # of fighting for every core (the servers and commands a test starts keep their own).
        import torch

        torch.set_num_threads(1)


@pytest.hookimpl(optionalhook=True, tryfirst=True)  # before pytest-xdist's own choice
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile`, with the browser tests (every file of tests/e2e) as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndBrowserTests(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            return "tests/e2e" if scope.startswith("tests/e2e/") else scope

    return FilesAndBrowserTests(config, log)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path):
    """No test sees the developer's CHATBOT_* settings or writes to their home."""
    for key in list(os.environ):
        if key.startswith("CHATBOT_") and key not in (POSTGRES_ENV, "CHATBOT_REQUIRE_POSTGRES"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return load_settings(home=tmp_path / "home")


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_embedder

    return build_tiny_embedder(tmp_path_factory.mktemp("tiny-embedder"))


@pytest.fixture(scope="session")
def tiny_reply_model_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_reply_model

    return build_tiny_reply_model(tmp_path_factory.mktemp("tiny-reply-model"))


@pytest.fixture
def tiny_settings(tmp_path, tiny_embedder_dir, tiny_reply_model_dir) -> Settings:
    return load_settings(
        home=tmp_path / "home",
        embedder_path=tiny_embedder_dir,
        reply_model_path=tiny_reply_model_dir,
    )


def _postgres_server_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CHATBOT_REQUIRE_POSTGRES"):
            pytest.fail(
                f"{POSTGRES_ENV} is not set but CHATBOT_REQUIRE_POSTGRES is: PostgreSQL did not start"
            )
        pytest.skip(
            f"no PostgreSQL server: set {POSTGRES_ENV} (scripts/test-postgres.sh start does)"
        )
    return url


@pytest.fixture
def postgres_url():
    """A fresh, empty database on the test server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(_postgres_server_url())
    name = f"chatbot_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """The same store tests run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_database(tmp_path):
    """A store on SQLite, migrated to head: for tests whose logic does not depend on the
    database kind (the store tests use `migrated_database`, on both kinds)."""
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def migrated_database(database_url):
    from chatbot.store.database import Database
    from chatbot.store.migrations import upgrade

    upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"the shared datasets are not at {SHARED_DATASETS}")
    return SHARED_DATASETS
