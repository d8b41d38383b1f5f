"""Reading a file of orders (JSON Lines, one order per line) and loading it into the
store's `orders` table, all or nothing.

Every line is checked before anything is written: the first bad one (malformed JSON,
a missing or unknown field, an unknown status, a date without a time zone, a number
that is not an order number, a number twice) is an `InputError` naming the file and
line, and the table is left as it was. The record and its invariants are
`chatbot.orders.records`'; the queries `chatbot.orders.repository`'s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.errors import InputError
from chatbot.orders.connector import compile_number_pattern
from chatbot.orders.records import ITEM_MAX_CHARS, Order, OrderStatus
from chatbot.store.order_columns import (
    ORDER_NUMBER_MAX_CHARS,
    TOTAL_MAX_CHARS,
    TRACKING_URL_MAX_CHARS,
)

if TYPE_CHECKING:
    from chatbot.store.database import Database

FIELDS = (
    "number",
    "status",
    "placed_at",
    "dispatched_at",
    "delivered_at",
    "items",
    "total",
    "tracking_url",
)
REQUIRED = ("number", "status", "placed_at")


@dataclass(frozen=True)
class OrdersImport:
    """What one import did."""

    path: str
    read: int  # orders in the file
    added: int
    updated: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "read": self.read, "added": self.added, "updated": self.updated}


def _text(value: object, name: str, *, max_chars: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {json.dumps(value)}")
    if len(value) > max_chars:
        raise ValueError(f"{name} is longer than {max_chars} characters")
    return value.strip()


def _optional_text(value: object, name: str, *, max_chars: int) -> str | None:
    return None if value is None else _text(value, name, max_chars=max_chars)


_DATE_EXAMPLE = "e.g. 2026-11-20T09:14:00Z"


def _when(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(
            f"bad date for {name}: {json.dumps(value)} "
            f"(expected ISO 8601 text with a time zone, {_DATE_EXAMPLE})"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"bad date for {name}: {value!r} (expected ISO 8601 with a time zone, {_DATE_EXAMPLE})"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"bad date for {name}: {value!r} has no time zone ({_DATE_EXAMPLE})")
    return moment


def _optional_when(value: object, name: str) -> datetime | None:
    return None if value is None else _when(value, name)


def order_from_dict(record: object, *, number_pattern: str | None = None) -> Order:
    """One order from its JSON form; ValueError or InputError (no place) on bad input."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise ValueError(
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(expected: {', '.join(FIELDS)})"
        )
    missing = [name for name in REQUIRED if record.get(name) is None]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    number = _text(record["number"], "number", max_chars=ORDER_NUMBER_MAX_CHARS)
    if number_pattern is not None and not compile_number_pattern(number_pattern).fullmatch(number):
        raise ValueError(
            f"number {number!r} does not match orders.number_pattern {number_pattern!r}"
        )
    status = record["status"]
    if not isinstance(status, str) or status not in {s.value for s in OrderStatus}:
        raise ValueError(
            f"unknown status {json.dumps(status)} (expected one of: "
            f"{', '.join(s.value for s in OrderStatus)})"
        )
    items = record.get("items", [])
    if items is None:
        items = []
    if not isinstance(items, list):
        raise ValueError(f"items must be a list of product names, got {json.dumps(items)}")
    names = tuple(
        _text(item, f"items[{i}]", max_chars=ITEM_MAX_CHARS) for i, item in enumerate(items)
    )
    total = record.get("total")
    if total is not None and not isinstance(total, str):
        raise ValueError(
            f'total must be text with its currency, e.g. "54.90 EUR", got {json.dumps(total)}'
        )
    url = _optional_text(
        record.get("tracking_url"), "tracking_url", max_chars=TRACKING_URL_MAX_CHARS
    )
    if url is not None and not url.startswith(("https://", "http://")):
        raise ValueError(f"tracking_url {url!r} is not an http(s) URL")
    return Order(
        number=number,
        status=OrderStatus(status),
        placed_at=_when(record["placed_at"], "placed_at"),
        dispatched_at=_optional_when(record.get("dispatched_at"), "dispatched_at"),
        delivered_at=_optional_when(record.get("delivered_at"), "delivered_at"),
        items=names,
        total=_optional_text(total, "total", max_chars=TOTAL_MAX_CHARS),
        tracking_url=url,
    )


def read_orders_file(path: Path, *, number_pattern: str | None = None) -> list[Order]:
    """Every order in a JSON Lines file (blank lines skipped), or an InputError at the
    first bad line. With `number_pattern`, every number must match it whole (an order
    whose number customers could never type would never be found)."""
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("no such file", path=shown) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file of orders", path=shown) from None
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror})", path=shown) from None
    orders: list[Order] = []
    first_line: dict[str, int] = {}
    for line_no, raw in enumerate(data.splitlines(), start=1):
        try:
            text = raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError:
            raise InputError("not UTF-8 text", path=shown, line=line_no) from None
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"not valid JSON ({exc.msg})", path=shown, line=line_no) from None
        try:
            order = order_from_dict(record, number_pattern=number_pattern)
        except InputError as exc:
            raise InputError(exc.reason, path=shown, line=line_no) from None
        except ValueError as exc:
            raise InputError(str(exc), path=shown, line=line_no) from None
        if order.number in first_line:
            raise InputError(
                f"order {order.number} appears twice (first on line {first_line[order.number]})",
                path=shown,
                line=line_no,
            )
        first_line[order.number] = line_no
        orders.append(order)
    if not orders:
        raise InputError("no orders in the file (expected one JSON object per line)", path=shown)
    return orders


def import_orders_file(
    database: Database, path: Path, *, number_pattern: str | None = None
) -> OrdersImport:
    """Check the whole file, then add or rewrite its orders in one transaction: a bad
    line, or a database failure half way, leaves the table as it was."""
    from chatbot.orders.repository import upsert_orders

    orders = read_orders_file(path, number_pattern=number_pattern)
    with database.session() as session:
        summary = upsert_orders(session=session, orders=orders)
    return OrdersImport(
        path=str(path), read=len(orders), added=summary.added, updated=summary.updated
    )
