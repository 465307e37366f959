"""Saved inbox filters and follow-up dates

``saved_filters``: a person's named inbox filters (the criteria as JSON), shown with their counts in the
inbox's sidebar. ``human_tasks.follow_up_at``: the date before which the assignee does not want to see
the task among their tasks (Camunda's followUp); it shows under the "Follow-up" filter until then.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 20:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_filters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("criteria", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_saved_filters_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_filters")),
        sa.UniqueConstraint("user_id", "name", name=op.f("uq_saved_filters_user_id")),
    )
    op.add_column("human_tasks", sa.Column("follow_up_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("human_tasks") as batch:
        batch.drop_column("follow_up_at")
    op.drop_table("saved_filters")
