"""The company's order system, as an answer that depends on the customer's own order
sees it: find the order number in a message, look the order up, get its status.

`records` is the `Order` record; `connector` the `OrderConnector` interface and
order-number finding; `sql` the connector over the store's own `orders` table;
`factory` builds the connector the `orders` settings (`settings`) name; `importer`
loads a JSON Lines file of orders, all or nothing; `repository` holds the queries.
What to tell the customer about an order, and when to hand over to a person, is the
dialogue manager's job (`chatbot.dialogue`). See docs/orders.md.

Importing this package is cheap: SQLAlchemy loads only with `sql`, `repository` and
`importer`'s database step.
"""

from __future__ import annotations

from chatbot.orders.connector import (
    DEFAULT_NUMBER_PATTERN,
    OrderConnector,
    find_order_numbers,
    normalise_order_number,
)
from chatbot.orders.factory import open_connector
from chatbot.orders.records import Order, OrderStatus

__all__ = [
    "DEFAULT_NUMBER_PATTERN",
    "Order",
    "OrderConnector",
    "OrderStatus",
    "find_order_numbers",
    "normalise_order_number",
    "open_connector",
]
