"""The widths of the `orders` table's text columns, as plain numbers (no SQLAlchemy):
the order record (`chatbot.orders.records`) and the importer check a value against them
before it reaches the table, which `chatbot.store.orders_schema` declares with them."""

from __future__ import annotations

ORDER_NUMBER_MAX_CHARS = 64
TOTAL_MAX_CHARS = 40
TRACKING_URL_MAX_CHARS = 1000
