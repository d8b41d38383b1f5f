"""Shared fixtures: isolated settings per test, tiny models once per session, and the
store on SQLite and on a real PostgreSQL server (CHATBOT_TEST_POSTGRES_URL, started by
.ci/run or scripts/test-postgres.sh), each test in a database of its own.

Under pytest-xdist (`./run.sh test` runs one worker per core) every worker, and every
process its tests start, runs torch on one thread, and the tests of one file stay together on one worker (its module fixtures are
built once, its tests run in their order); the browser tests all share one worker, one
browser and one served app."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatbot.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
POSTGRES_ENV = "CHATBOT_TEST_POSTGRES_URL"


def pytest_configure(config):
    if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("OMP_NUM_THREADS"):
        # One worker per core: the models a test runs take one thread each instead of fighting
        # for every core, in the worker and in the servers and commands its tests start (they
        # inherit the variables). On a busy machine every extra thread of the tiny models'
        # matrix products spins while it waits for a core: building the demo shop's index took
        # 45 s with two threads beside another worker, 24 s with one.
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
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


def _built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """`build(folder)`, once for the whole run: under pytest-xdist the first worker to ask
    builds it in the folder the workers share, and the others wait and use that (the tiny
    models are seeded, so each worker would build the same files, and nothing writes into
    them). Saves one build (about 10 s) per extra worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    import fcntl

    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, above each worker's popen-gwN/
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = shared / f"{name}.built"
        if not done.exists():
            done.write_text(str(build(shared / name)))
        return Path(done.read_text())


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_embedder

    return _built_once(tmp_path_factory, "tiny-embedder", build_tiny_embedder)


@pytest.fixture(scope="session")
def tiny_reply_model_dir(tmp_path_factory) -> Path:
    from tests.tiny_models import build_tiny_reply_model

    return _built_once(tmp_path_factory, "tiny-reply-model", build_tiny_reply_model)


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


@contextmanager
def _scratch_postgres_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(_postgres_server_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url():
    """A fresh, empty database on the test server, dropped afterwards."""
    with _scratch_postgres_database("chatbot_t") as url:
        yield url


# A database migrated to head is the starting point of most store tests. Alembic runs once
# per worker into a template (a SQLite file; a PostgreSQL database that `CREATE DATABASE ...
# TEMPLATE` copies), and each test gets a copy: the same tables, rows and alembic_version
# as its own upgrade would leave, in a fraction of the time (0.2 s on SQLite and 0.5 s on
# PostgreSQL per test here). The migrations themselves are tested from empty databases in
# tests/test_store.py.


@pytest.fixture(scope="session")
def _migrated_sqlite_template(tmp_path_factory) -> Path:
    from chatbot.store.migrations import upgrade

    path = tmp_path_factory.mktemp("migrated-template") / "store.db"
    upgrade(f"sqlite:///{path}")
    # The engine is disposed: its last connection checkpointed the WAL into the file.
    assert not any(path.with_name(path.name + side).exists() for side in ("-wal", "-journal"))
    return path


@pytest.fixture(scope="session")
def _migrated_postgres_template():
    """The name of a database on the test server migrated to head (no connection is left
    open to it, as CREATE DATABASE ... TEMPLATE needs), dropped at the end."""
    from sqlalchemy.engine import make_url

    from chatbot.store.migrations import upgrade

    with _scratch_postgres_database("chatbot_template") as url:
        upgrade(url)
        yield make_url(url).database


def _copy_of_migrated(url: str, request) -> None:
    """Make the (new or empty) database at `url` a copy of the migrated template."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        template = request.getfixturevalue("_migrated_sqlite_template")
        shutil.copy2(template, parsed.database)  # keeps the store's private mode (0600)
        return
    template = request.getfixturevalue("_migrated_postgres_template")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{parsed.database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{parsed.database}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path) -> str:
    """The same store tests run on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def sqlite_database(tmp_path, request):
    """A store on SQLite, migrated to head: for tests whose logic does not depend on the
    database kind (the store tests use `migrated_database`, on both kinds)."""
    from chatbot.store.database import Database

    url = f"sqlite:///{tmp_path / 'store.db'}"
    _copy_of_migrated(url, request)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def migrated_database(database_url, request):
    from chatbot.store.database import Database

    _copy_of_migrated(database_url, request)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"the shared datasets are not at {SHARED_DATASETS}")
    return SHARED_DATASETS
