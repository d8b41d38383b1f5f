"""SQLAlchemy table for the store's own order list: the orders the `sql` order
connector looks customers' orders up in (the demo shop's, or a company's loaded with
`chatbot orders import`). Structure only; the queries live in
`chatbot.orders.repository`. Created by migration 0007_orders."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from chatbot.store.enums import OrderStatus, values
from chatbot.store.order_columns import (
    ORDER_NUMBER_MAX_CHARS,
    TOTAL_MAX_CHARS,
    TRACKING_URL_MAX_CHARS,
)
from chatbot.store.schema import Base, EnumString, one_of, utcnow


class OrderRow(Base):
    """One order, by its number as customers quote it ("NW-123456")."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(ORDER_NUMBER_MAX_CHARS), unique=True)
    status: Mapped[OrderStatus] = mapped_column(EnumString(OrderStatus, 20))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    items: Mapped[list[Any]] = mapped_column(JSON, default=list)  # product names
    total: Mapped[str | None] = mapped_column(String(TOTAL_MAX_CHARS))  # "54.90 EUR"
    tracking_url: Mapped[str | None] = mapped_column(String(TRACKING_URL_MAX_CHARS))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    __table_args__ = (CheckConstraint(one_of("status", values(OrderStatus)), name="status"),)
