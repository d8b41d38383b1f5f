"""The `sql` order connector: looks orders up in the store's own `orders` table (the
demo shop's orders, or a company's loaded with `chatbot orders import`).

One short read-only transaction per lookup, so it is safe from several threads and
several workers. Loading the table is `chatbot.orders.importer`'s job; the queries are
`chatbot.orders.repository`'s.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from chatbot.errors import InputError, OrderSystemError, StoreError
from chatbot.orders.records import Order
from chatbot.orders.repository import any_orders, get_order

if TYPE_CHECKING:
    from chatbot.store.database import Database

log = logging.getLogger(__name__)


class SqlOrderConnector:
    """An `OrderConnector` over the store's `orders` table.

    An empty table is not an order system: a lookup in it raises `OrderSystemError`
    (the customer is handed to a person with the number) instead of telling every
    customer that their order does not exist.
    """

    name = "sql"

    def __init__(self, database: Database) -> None:
        self.database = database

    def lookup(self, number: str) -> Order | None:
        try:
            with self.database.session() as session:
                order = get_order(session=session, number=number)
                if order is None and not any_orders(session=session):
                    raise OrderSystemError(
                        "the orders table is empty: load the orders with `chatbot orders "
                        "import FILE.jsonl`, or set orders.connector = none"
                    )
        except InputError as exc:  # a row written around `chatbot orders import`
            raise OrderSystemError(
                f"order {number} in the orders table is unreadable: {exc}"
            ) from None
        except StoreError as exc:
            raise OrderSystemError(f"order lookup failed: {exc}") from None
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise OrderSystemError(f"order lookup failed: {reason}") from None
        log.debug("order %s: %s", number, order.status if order else "not found")
        return order

    def __repr__(self) -> str:
        from chatbot.store.database import redact_url

        return f"SqlOrderConnector({redact_url(self.database.url)})"
