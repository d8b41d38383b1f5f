"""orders: the store's own order list, read by the `sql` order connector
(`chatbot orders import`, the demo shop's orders)

Revision ID: 0007_orders
Revises: 0006_dialogue_outcomes
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_orders"
down_revision = "0006_dialogue_outcomes"
branch_labels = None
depends_on = None

_STATUSES = "'processing', 'dispatched', 'delivered', 'cancelled', 'returned'"


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("total", sa.String(length=40), nullable=True),
        sa.Column("tracking_url", sa.String(length=1000), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_orders_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint("number", name=op.f("uq_orders_number")),
    )


def downgrade() -> None:
    op.drop_table("orders")
