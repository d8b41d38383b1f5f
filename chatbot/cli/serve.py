"""`chatbot serve`: prepare the data directory and start the web app."""

from __future__ import annotations

import click

from chatbot.cli import AppContext, pass_app

SYSTEM_PROMPT = (
    "You are a friendly, concise customer-support assistant for an online shop. "
    "Answer in two or three sentences. If you are not sure, say that a human agent will follow up."
)


@click.group("serve", invoke_without_command=True)
@click.option("--host", default=None, help="Interface to listen on (default from settings: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from settings: 7860).")
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the bundled demo shop data if the store has none.")
@pass_app
def group(app: AppContext, host: str | None, port: int | None, demo: bool) -> None:
    """Start the web app on http://HOST:PORT."""
    from chatbot.bootstrap import prepare
    from chatbot.models.generate import stream_text
    from chatbot.models.reply_model import load_reply_model, reply_model_path
    from chatbot.store.database import Database, require_schema
    from ui.app import build_app

    settings = app.settings
    prepare(settings, demo=demo, report=lambda line: click.echo(line, err=True))
    database = Database(settings.resolved_database_url)
    require_schema(database.engine)
    model, tokenizer = load_reply_model(reply_model_path(settings))

    def reply_stream(history, message):
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, *history, {"role": "user", "content": message}]
        yield from stream_text(model, tokenizer, messages)

    web = build_app(database=database, reply_stream=reply_stream)
    host = host or settings.host
    port = port or settings.port
    click.echo(f"serving on http://{host}:{port}", err=True)
    web.queue().launch(server_name=host, server_port=port, show_error=True)
