"""`chatbot serve`: prepare the data directory and start the web app (customer widget,
agent console, admin console) with uvicorn."""

from __future__ import annotations

import click

from chatbot.cli import AppContext, pass_app


@click.group("serve", invoke_without_command=True)
@click.option(
    "--host", default=None, help="Interface to listen on (default from settings: 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (default from settings: 7860).")
@click.option(
    "--demo/--no-demo",
    default=True,
    show_default=True,
    help="Load the bundled demo shop data if the store has none.",
)
@pass_app
def group(app: AppContext, host: str | None, port: int | None, demo: bool) -> None:
    """Start the web app on http://HOST:PORT: the chat widget at /, the agent console
    at /agent and the admin console at /admin (log in with an account made by
    `chatbot users add`)."""
    import uvicorn

    from chatbot.accounts.users import count_admins
    from chatbot.app import create_app
    from chatbot.bootstrap import prepare
    from chatbot.cli.manager import open_manager
    from chatbot.support.recovery import RecoverySweeper
    from chatbot.web.readiness import ModelWarmup
    from chatbot.web.services import Services

    settings = app.settings
    prepare(settings, demo=demo, report=lambda line: click.echo(line, err=True))
    # A damaged current index: serve the newest intact version, and say so (/readyz, admin console).
    manager, database = open_manager(settings, fallback_index=True)
    # Messages a crash left without a reply go to the agents, at start and continuously.
    sweeper = RecoverySweeper(
        database,
        older_than_seconds=settings.web.interrupted_after_seconds,
        interval_seconds=settings.web.recovery_sweep_seconds,
        notice=settings.web.interrupted_message,
    ).start()
    try:
        # The reply model verified (checksums) and loaded now, not at the first customer.
        warmup = ModelWarmup().start(manager.reply_source) if manager.reply_source else None
        web = create_app(
            Services(settings=settings, database=database, manager=manager, warmup=warmup)
        )
        host = host or settings.host
        port = port or settings.port
        if not count_admins(database):
            click.echo(
                "no admin account yet: create the first one with `chatbot users add NAME --role admin`",
                err=True,
            )
        click.echo(f"serving on http://{host}:{port} (agents: /agent, admins: /admin)", err=True)
        uvicorn.run(web, host=host, port=port, log_level="warning")
    finally:
        sweeper.stop()
        database.dispose()
