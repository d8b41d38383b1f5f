"""`chatbot serve`: prepare the data directory and start the web app."""

from __future__ import annotations

import click

from chatbot.cli import AppContext, pass_app


@click.group("serve", invoke_without_command=True)
@click.option("--host", default=None, help="Interface to listen on (default from settings: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from settings: 7860).")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the bundled demo shop data if the store has none.")
@pass_app
def group(app: AppContext, host: str | None, port: int | None, demo: bool) -> None:
    """Start the web app on http://HOST:PORT."""
    from chatbot.bootstrap import prepare
    from chatbot.dialogue.sources import open_manager
    from ui.app import build_app

    settings = app.settings
    prepare(settings, demo=demo, report=lambda line: click.echo(line, err=True))
    manager, database = open_manager(settings)
    web = build_app(database=database, responder=manager)
    host = host or settings.host
    port = port or settings.port
    click.echo(f"serving on http://{host}:{port}", err=True)
    try:
        web.queue().launch(server_name=host, server_port=port, show_error=True)
    finally:
        database.dispose()
