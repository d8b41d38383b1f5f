"""private_answers: agents' answers holding personal data that slotting cannot hide,
kept private to their conversation until an admin approves them as shared answers

Revision ID: 0010_private_answers
Revises: 0008_sessions
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_private_answers"
down_revision = "0008_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "private_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("reply_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("turn_index", sa.Integer(), nullable=False),
        sa.Column("origin", sa.String(length=40), nullable=False),
        sa.Column("agent", sa.String(length=80), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("held_kinds", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("decided_by", sa.String(length=80), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pair_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'discarded')",
            name=op.f("ck_private_answers_state"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_private_answers_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reply_id"],
            ["dialogue_replies.id"],
            name=op.f("fk_private_answers_reply_id_dialogue_replies"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_private_answers_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["pair_id"],
            ["training_pairs.id"],
            name=op.f("fk_private_answers_pair_id_training_pairs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_private_answers")),
    )
    with op.batch_alter_table("private_answers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_private_answers_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_private_answers_state"), ["state"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_private_answers_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("private_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_private_answers_created_at"))
        batch_op.drop_index(batch_op.f("ix_private_answers_state"))
        batch_op.drop_index(batch_op.f("ix_private_answers_conversation_id"))
    op.drop_table("private_answers")
