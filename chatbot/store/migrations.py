"""Running the Alembic migrations from Python: upgrade to head, report the revision,
and compare the migrated schema with the SQLAlchemy models. Defining the schema is
`chatbot.store.schema`'s job; the migration scripts live in the top-level
`migrations/` package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import StoreError
from chatbot.store.database import check_connection, create_db_engine, redact_url

if TYPE_CHECKING:  # alembic is imported by the functions that run it
    from alembic.config import Config
    from sqlalchemy import Connection


def migrations_dir() -> Path:
    # The scripts' folder, found as package data by name: the store runs the scripts
    # (through Alembic) but imports nothing from them, while their env.py imports the store.
    from importlib.resources import files

    return Path(str(files("chatbot.migrations"))).resolve()


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migration scripts in {migrations_dir()}")
    return head


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = create_db_engine(url)
    try:
        check_connection(engine)
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database at `url`; returns (revision before, revision after).

    Each migration runs in a transaction (PostgreSQL and SQLite both have
    transactional DDL), so a failure leaves the database at the previous revision.
    """
    from alembic import command
    from sqlalchemy.exc import SQLAlchemyError

    before = current_revision(url)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            command.upgrade(alembic_config(connection), revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"migrating {redact_url(url)} failed: {exc}") from None
    finally:
        engine.dispose()
    return before, current_revision(url)


def schema_differences(url: str) -> list[Any]:
    """Differences between the migrated database and the models (empty when in step)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from chatbot.store.schema import Base

    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return [d for d in compare_metadata(context, Base.metadata)]
    finally:
        engine.dispose()
