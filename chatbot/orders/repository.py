"""Queries on the store's `orders` table. Functions take the session as a keyword
argument and never commit (the caller's transaction decides); reading files is
`chatbot.orders.importer`'s job and answering lookups `chatbot.orders.sql`'s."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from chatbot.errors import StoreError
from chatbot.orders.records import Order
from chatbot.store.orders_schema import OrderRow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# Numbers per IN (...) query: well under SQLite's limit on bound parameters.
_CHUNK = 500


@dataclass(frozen=True)
class UpsertSummary:
    """What `upsert_orders` did: orders added, orders already there and rewritten."""

    added: int
    updated: int

    @property
    def total(self) -> int:
        return self.added + self.updated


def _utc(value: datetime | None) -> datetime | None:
    # SQLite gives back naive times (written in UTC); PostgreSQL aware ones.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def order_from_row(row: OrderRow) -> Order:
    placed_at = _utc(row.placed_at)
    if placed_at is None:  # a NOT NULL column: only a writer bypassing the schema
        raise StoreError(f"order {row.number} has no placed_at time")
    return Order(
        number=row.number,
        status=row.status,
        placed_at=placed_at,
        dispatched_at=_utc(row.dispatched_at),
        delivered_at=_utc(row.delivered_at),
        items=tuple(str(item) for item in row.items or ()),
        total=row.total,
        tracking_url=row.tracking_url,
    )


def _fill(row: OrderRow, order: Order) -> None:
    row.status = order.status
    row.placed_at = order.placed_at
    row.dispatched_at = order.dispatched_at
    row.delivered_at = order.delivered_at
    row.items = list(order.items)
    row.total = order.total
    row.tracking_url = order.tracking_url


def upsert_orders(*, session: Session, orders: Iterable[Order]) -> UpsertSummary:
    """Add the orders that are new and rewrite those whose number is already stored
    (the file is the newer truth). Later duplicates of a number in `orders` win."""
    latest: dict[str, Order] = {}
    for order in orders:
        latest[order.number] = order
    numbers = list(latest)
    existing: dict[str, OrderRow] = {}
    for start in range(0, len(numbers), _CHUNK):
        chunk = numbers[start : start + _CHUNK]
        for row in session.scalars(select(OrderRow).where(OrderRow.number.in_(chunk))):
            existing[row.number] = row
    for number, order in latest.items():
        found = existing.get(number)
        if found is None:
            found = OrderRow(number=number)
            session.add(found)
        _fill(found, order)
    session.flush()
    return UpsertSummary(added=len(latest) - len(existing), updated=len(existing))


def get_order(*, session: Session, number: str) -> Order | None:
    """The order with exactly this number, or None."""
    row = session.scalar(select(OrderRow).where(OrderRow.number == number))
    return order_from_row(row) if row is not None else None


def count_orders(*, session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OrderRow)) or 0


def any_orders(*, session: Session) -> bool:
    """Whether the table holds at least one order (cheaper than counting them)."""
    return session.scalar(select(OrderRow.id).limit(1)) is not None
