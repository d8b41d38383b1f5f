"""slots: training pairs' targets with typed slots, and the known values (company constants, people's names)

Revision ID: 0004_slots
Revises: 0003_people
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_slots"
down_revision = "0003_people"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "known_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=300), nullable=False),
        sa.Column("conversations", sa.Integer(), nullable=False),
        sa.Column("constant", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_known_values")),
    )
    with op.batch_alter_table("known_values", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_known_values_kind"), ["kind"], unique=False)

    with op.batch_alter_table("training_pairs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_slotted", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("slots", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("training_pairs", schema=None) as batch_op:
        batch_op.drop_column("slots")
        batch_op.drop_column("target_slotted")

    with op.batch_alter_table("known_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_known_values_kind"))

    op.drop_table("known_values")
