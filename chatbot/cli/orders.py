"""`chatbot orders`: load a company's orders into the store's `orders` table (what the
`sql` order connector reads) and look one order up through the configured connector.
Printing only; reading and checking files is `chatbot.orders.importer`'s job, the
lookup the connector's (docs/orders.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from chatbot.cli import AppContext, emit_json, json_option, pass_app

if TYPE_CHECKING:  # imported by the commands themselves: `chatbot --help` stays fast
    from datetime import datetime

    from chatbot.orders.records import Order


@click.group("orders")
def group() -> None:
    """The order system answers may look a customer's order up in (settings section `orders`)."""


@group.command("import")
@click.argument("path", metavar="FILE.jsonl", type=click.Path(path_type=Path))
@json_option
@pass_app
def import_command(app: AppContext, path: Path, as_json: bool) -> None:
    """Add or update the orders in FILE.jsonl (one JSON object per line), all or nothing.

    Each line: {"number": "NW-123456", "status": "dispatched", "placed_at":
    "2026-11-20T09:14:00Z", "dispatched_at": ..., "delivered_at": ..., "items": [...],
    "total": "54.90 EUR", "tracking_url": ...}. An order already stored is rewritten.
    A bad line stops the import with its file and line number; nothing is loaded then.
    """
    from chatbot.orders.importer import import_orders_file
    from chatbot.store.database import Database, require_schema

    settings = app.settings
    database = Database(settings.resolved_database_url)
    try:
        require_schema(database.engine)
        result = import_orders_file(database, path, number_pattern=settings.orders.number_pattern)
    finally:
        database.dispose()
    note = None
    if settings.orders.connector != "sql":
        note = (
            f"orders.connector is {settings.orders.connector!r}: the assistant does not read "
            "this table until it is 'sql'"
        )
    if as_json:
        emit_json({**result.as_dict(), "connector": settings.orders.connector, "note": note})
        return
    click.echo(
        f"{result.path}: {result.read} orders, {result.added} added, {result.updated} updated"
    )
    if note:
        click.echo(f"note: {note}", err=True)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _describe(order: Order, connector: str) -> list[str]:
    lines = [f"{order.number}  {order.status.value}", f"  placed      {_when(order.placed_at)}"]
    if order.dispatched_at is not None:
        lines.append(f"  dispatched  {_when(order.dispatched_at)}")
    if order.delivered_at is not None:
        lines.append(f"  delivered   {_when(order.delivered_at)}")
    lines.append(f"  items       {', '.join(order.items) or '-'}")
    lines.append(f"  total       {order.total or '-'}")
    if order.tracking_url:
        lines.append(f"  tracking    {order.tracking_url}")
    lines.append(f"  (connector {connector})")
    return lines


@group.command("show")
@click.argument("number")
@json_option
@pass_app
def show_command(app: AppContext, number: str, as_json: bool) -> None:
    """Look order NUMBER up as the assistant would (through the configured connector).

    NUMBER may be written as a customer writes it ("nw 123456"); it is put in its
    canonical form with orders.number_pattern first.
    """
    from chatbot.errors import ConfigError
    from chatbot.orders.connector import normalise_order_number
    from chatbot.orders.factory import open_connector
    from chatbot.store.database import Database, require_schema

    settings = app.settings.orders
    if settings.connector == "none":
        raise ConfigError(
            "orders.connector is 'none': no order system is connected (docs/orders.md)"
        )
    canonical = normalise_order_number(number, settings.number_pattern) or number.strip()
    database = Database(app.settings.resolved_database_url)
    try:
        if settings.connector == "sql":
            require_schema(database.engine)
        connector = open_connector(settings, database)
        if connector is None:  # pragma: no cover - ruled out above
            raise ConfigError("orders.connector is 'none': no order system is connected")
        order = connector.lookup(canonical)
        name = connector.name
    finally:
        database.dispose()
    if order is None:
        if as_json:
            emit_json({"number": canonical, "found": False, "connector": name})
        raise click.ClickException(f"no order {canonical} in the order system ({name})")
    if as_json:
        emit_json({**order.to_dict(), "found": True, "connector": name})
        return
    for line in _describe(order, name):
        click.echo(line)
