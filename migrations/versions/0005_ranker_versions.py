"""ranker versions: model_versions.kind may be 'ranker' (the learned ranker of chatbot.ranking)

Revision ID: 0005_ranker_versions
Revises: 0004_slots
Create Date: 2026-12-03
"""

from alembic import op

revision = "0005_ranker_versions"
down_revision = "0004_slots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_model_versions_kind"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_model_versions_kind"), "kind IN ('reply', 'embedder', 'ranker')"
        )


def downgrade() -> None:
    op.execute("DELETE FROM model_versions WHERE kind = 'ranker'")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_model_versions_kind"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_model_versions_kind"), "kind IN ('reply', 'embedder')"
        )
