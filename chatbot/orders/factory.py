"""Building the order connector that the `orders` settings name: none, the store's own
table, or a company's own connector from a `package.module:function` factory.

Called once at an entry point (the web app, `chatbot ask`, a test); what a connector
does is its own business (`chatbot.orders.connector` describes the interface).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from chatbot.errors import ConfigError
from chatbot.orders.connector import OrderConnector

if TYPE_CHECKING:
    from chatbot.orders.settings import OrderSettings
    from chatbot.store.database import Database


def open_connector(settings: OrderSettings, database: Database) -> OrderConnector | None:
    """The configured connector; None for `connector = none` (no order system).

    A custom factory is called as `factory(settings, database)` and must return an
    object with `name` and `lookup(number)`; anything else is a ConfigError naming it.
    """
    if settings.connector == "none":
        return None
    if settings.connector == "sql":
        from chatbot.orders.sql import SqlOrderConnector

        return SqlOrderConnector(database)
    spec = settings.factory
    if spec is None:  # the settings refuse this; a hand-built section may not
        raise ConfigError(
            "orders.connector = custom needs orders.factory = 'package.module:function'"
        )
    module_name, _, attribute = spec.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"orders.factory {spec!r}: cannot import {module_name}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(
                f"orders.factory {spec!r}: {module_name} has no {attribute}"
            ) from None
    if not callable(target):
        raise ConfigError(f"orders.factory {spec!r} is not callable")
    connector = target(settings, database)
    if not isinstance(connector, OrderConnector):
        raise ConfigError(
            f"orders.factory {spec!r} returned {type(connector).__name__}, which has no "
            "`name` and `lookup(number)`"
        )
    return connector
