"""Alembic environment: migrates the database the chatbot settings point at.

`chatbot db upgrade` passes an open connection in `config.attributes["connection"]`;
the plain `alembic` command builds the URL from the same settings (CHATBOT_* variables).
"""

from alembic import context

from chatbot.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    from chatbot.settings import load_settings

    return config.get_main_option("sqlalchemy.url") or load_settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from chatbot.store.database import create_db_engine

        engine = create_db_engine(_url())
        try:
            with engine.begin() as connection:
                _run(connection)
        finally:
            engine.dispose()
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
