"""Per-case summary rows of the dashboard, filled for the cases already finished

The dashboard's case figures (finished per week, rework rate, on-time share, cycle-time percentiles) read one
narrow row per finished case instead of the cases' tasks and decisions; the engine writes the row when a case
ends (:mod:`engine.case_summaries`). The upgrade writes the rows of every case finished before it, with the
same statement, so the figures read the same before and after.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 21:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_summaries",
        sa.Column("instance_id", sa.Integer(), sa.ForeignKey("process_instances.id"), primary_key=True),
        sa.Column("process_key", sa.String(100), nullable=False),
        sa.Column("started_by_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.Column("cycle_seconds", sa.Float(), nullable=False),
        sa.Column("reworked", sa.Boolean(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_case_summaries_process_finished", "case_summaries",
                    ["process_key", "finished_at", "cycle_seconds"], unique=False)
    # the statement the engine runs when a case ends, here over every finished case at once
    from engine.case_summaries import backfill  # noqa: PLC0415 - the engine's own statement, see above

    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_case_summaries_process_finished", table_name="case_summaries")
    op.drop_table("case_summaries")
