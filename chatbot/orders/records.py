"""The order record that a connector hands to the dialogue: one customer order as the
company's order system knows it, detached from wherever it came from.

Structure, its invariants (times in UTC, in order) and its JSON form only. Reading
files of orders is `chatbot.orders.importer`'s job, storing them
`chatbot.orders.repository`'s, looking them up a connector's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chatbot.errors import InputError

# The set of statuses and the columns' widths are the store's (the `orders` table's); an
# order's readers take the statuses from here, with the order.
from chatbot.store.enums import OrderStatus as OrderStatus
from chatbot.store.order_columns import ORDER_NUMBER_MAX_CHARS

ITEM_MAX_CHARS = 300


def _as_utc(value: datetime | None, name: str, number: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"order {number}: {name} {value.isoformat()} has no time zone")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Order:
    """One order. Times are timezone-aware and kept in UTC (a naive time is refused,
    an aware one converted); `items` are the products as the customer would name them;
    `total` is the amount with its currency as the shop writes it ("54.90 EUR")."""

    number: str
    status: OrderStatus
    placed_at: datetime
    dispatched_at: datetime | None = None
    delivered_at: datetime | None = None
    items: tuple[str, ...] = field(default_factory=tuple)
    total: str | None = None
    tracking_url: str | None = None

    def __post_init__(self) -> None:
        number = self.number
        if not number or number != number.strip() or len(number) > ORDER_NUMBER_MAX_CHARS:
            raise InputError(
                f"order number {number!r} must be 1-{ORDER_NUMBER_MAX_CHARS} characters "
                "without leading or trailing spaces"
            )
        # Coerce the plain strings a caller may pass ("delivered"); an unknown one is refused.
        try:
            object.__setattr__(self, "status", OrderStatus(self.status))
        except ValueError:
            raise InputError(
                f"order {number}: unknown status {self.status!r} "
                f"(expected one of: {', '.join(s.value for s in OrderStatus)})"
            ) from None
        for name in ("placed_at", "dispatched_at", "delivered_at"):
            object.__setattr__(self, name, _as_utc(getattr(self, name), name, number))
        object.__setattr__(self, "items", tuple(self.items))
        steps = [
            (n, t)
            for n, t in (
                ("placed_at", self.placed_at),
                ("dispatched_at", self.dispatched_at),
                ("delivered_at", self.delivered_at),
            )
            if t is not None
        ]
        for (earlier, first), (later, second) in zip(steps, steps[1:]):
            if second < first:
                raise InputError(f"order {number}: {later} is before {earlier}")
        if self.status is OrderStatus.PROCESSING and (
            self.dispatched_at is not None or self.delivered_at is not None
        ):
            raise InputError(
                f"order {number}: status processing with a dispatch or delivery time "
                "(an order that has left the warehouse is dispatched or delivered)"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the same keys a line of an orders file has (times in ISO 8601, UTC)."""

        def when(value: datetime | None) -> str | None:
            return value.isoformat().replace("+00:00", "Z") if value is not None else None

        return {
            "number": self.number,
            "status": self.status.value,
            "placed_at": when(self.placed_at),
            "dispatched_at": when(self.dispatched_at),
            "delivered_at": when(self.delivered_at),
            "items": list(self.items),
            "total": self.total,
            "tracking_url": self.tracking_url,
        }
