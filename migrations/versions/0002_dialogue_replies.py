"""dialogue replies: one record per customer message the dialogue manager handled

Revision ID: 0002_dialogue
Revises: 0001
Create Date: 2026-11-28 13:00:27.365325
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_dialogue"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dialogue_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("reply_message_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=60), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("shown_text", sa.Text(), nullable=False),
        sa.Column("sent", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("smoothed_confidence", sa.Float(), nullable=True),
        sa.Column("citations", sa.JSON(), nullable=False),
        sa.Column("trace", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("timings", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=200), nullable=True),
        sa.Column("review_status", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('answer', 'answer_flagged', 'held', 'handoff', 'silent')",
            name=op.f("ck_dialogue_replies_decision"),
        ),
        sa.CheckConstraint(
            "review_status IN ('pending', 'approved', 'edited', 'rejected')",
            name=op.f("ck_dialogue_replies_review_status"),
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_dialogue_replies_conversation_id_conversations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_dialogue_replies_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reply_message_id"],
            ["messages.id"],
            name=op.f("fk_dialogue_replies_reply_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialogue_replies")),
        sa.UniqueConstraint("message_id", name=op.f("uq_dialogue_replies_message_id")),
    )
    with op.batch_alter_table("dialogue_replies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dialogue_replies_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_dialogue_replies_review_status"), ["review_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("dialogue_replies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dialogue_replies_review_status"))
        batch_op.drop_index(batch_op.f("ix_dialogue_replies_conversation_id"))

    op.drop_table("dialogue_replies")
