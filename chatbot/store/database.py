"""Engines and sessions for the configured database, with errors a user can act on.

Builds an engine from the settings (never at import time), checks that the server
answers, and hands out transactional sessions. Schema changes belong to
`chatbot.store.migrations`; queries to the modules that need them.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from chatbot.errors import StoreError

CONNECT_TIMEOUT_SECONDS = 5
# The store holds password hashes and customers' messages: readable by its owner only.
PRIVATE_FILE_MODE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

log = logging.getLogger(__name__)


def redact_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def _enable_sqlite_foreign_keys(
    dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry
) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets the app read while an import writes; busy_timeout waits instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_private_sqlite_file(path: Path) -> None:
    """Create the SQLite database file with mode 0600 before SQLite does (it would use
    0644, and gives its WAL and shared-memory files the database file's mode); tighten an
    existing file, and its side files, that others may read."""
    if os.name != "posix":
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"database file {path} cannot be created ({exc.strerror})") from None
    else:
        os.close(fd)
        return
    for candidate in (path, *(path.with_name(path.name + s) for s in SQLITE_SIDE_FILES)):
        try:
            info = candidate.stat()
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077 and info.st_uid == os.getuid():
            log.warning(
                "database file %s could be read by other users (mode %03o); now 0600",
                candidate,
                stat.S_IMODE(info.st_mode),
            )
            try:
                candidate.chmod(PRIVATE_FILE_MODE)
            except OSError as exc:
                raise StoreError(
                    f"database file {candidate} can be read by other users and cannot be made "
                    f"private ({exc.strerror}); run: chmod 600 {candidate}"
                ) from None


def create_db_engine(url: str) -> Engine:
    """An engine for `url`, or a StoreError naming what is wrong with it."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"database URL {url!r} is not a valid SQLAlchemy URL (expected e.g. sqlite:///path/chatbot.db "
            "or postgresql+psycopg://user:password@host:5432/dbname)"
        ) from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parent = Path(parsed.database).expanduser().parent
        if not parent.is_dir():
            raise StoreError(f"database URL {redact_url(url)}: directory {parent} does not exist")
        if not parsed.database.startswith("file:"):
            make_private_sqlite_file(Path(parsed.database).expanduser())
    if parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain "postgresql://" would ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    connect_args: dict[str, int] = {}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A server that is down or unreachable fails a request within seconds, not after
        # the operating system's TCP timeout (minutes): customers get a notice instead.
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    try:
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    except NoSuchModuleError:
        raise StoreError(
            f"database URL {redact_url(url)}: unknown database dialect {parsed.drivername!r}"
        ) from None
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"database URL {redact_url(url)} needs the Python package {exc.name!r}; "
            "for PostgreSQL install the extra: pip install 'chatbot[postgres]'"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def check_connection(engine: Engine) -> None:
    """Raise StoreError with the server's reason when the database does not answer."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise StoreError(
            f"cannot connect to database {redact_url(str(engine.url))}: {reason}"
        ) from None
    except SQLAlchemyError as exc:
        raise StoreError(f"database {redact_url(str(engine.url))} failed: {exc}") from None


def require_schema(engine: Engine) -> None:
    """Raise StoreError when the database has not been migrated, or not to the revision
    this version of the program needs (new code on an old database)."""
    from alembic.runtime.migration import MigrationContext

    from chatbot.store.migrations import head_revision

    check_connection(engine)
    if not inspect(engine).has_table("alembic_version"):
        raise StoreError(
            f"database {redact_url(str(engine.url))} has no schema yet; run: chatbot db upgrade"
        )
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = head_revision()
    if current != head:
        raise StoreError(
            f"database {redact_url(str(engine.url))} is at schema revision {current or 'none'}, this version of "
            f"chatbot needs {head}; run: chatbot db upgrade"
        )


def matched_rows(result: object) -> int:
    """The number of rows an UPDATE or DELETE matched. `Session.execute` declares a plain
    `Result`; for these statements it is a `CursorResult`, which counts them."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the result of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount


class Database:
    """An engine plus a session factory for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except OperationalError as exc:
            session.rollback()
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreError(f"database {redact_url(self.url)} failed: {reason}") from None
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()
