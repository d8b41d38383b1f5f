"""dialogue outcomes: a reply may be a conversation act, a decline or a clarifying question
(with its choices in `options`)

Revision ID: 0006_dialogue_outcomes
Revises: 0005_ranker_versions
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_dialogue_outcomes"
down_revision = "0005_ranker_versions"
branch_labels = None
depends_on = None

_OLD = "'answer', 'answer_flagged', 'held', 'handoff', 'silent'"
_NEW = _OLD + ", 'act', 'decline', 'clarify'"


def upgrade() -> None:
    with op.batch_alter_table("dialogue_replies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("options", sa.JSON(), nullable=False, server_default=sa.text("'[]'"))
        )
        batch_op.drop_constraint(batch_op.f("ck_dialogue_replies_decision"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_dialogue_replies_decision"), f"decision IN ({_NEW})"
        )


def downgrade() -> None:
    # The new outcomes have no older equivalent: their records go (their messages stay).
    op.execute("DELETE FROM dialogue_replies WHERE decision IN ('act', 'decline', 'clarify')")
    with op.batch_alter_table("dialogue_replies", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_dialogue_replies_decision"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_dialogue_replies_decision"), f"decision IN ({_OLD})"
        )
        batch_op.drop_column("options")
