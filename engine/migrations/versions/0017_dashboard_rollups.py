"""Sealed roll-ups of the dashboard's figures

A day or month that is over adds up to the same figures every time it is asked for: the dashboard sums its items
once per figure and group (counts added, every value kept) and reads those rows afterwards
(:mod:`engine.rollups`). The tables start empty: the first request over a range, or the worker, seals its past
days and months.

The two partial covering indexes of completed tasks that revision 0015 made for the dashboard's per-request
aggregates go: the roll-ups read completed tasks by day (``ix_tasks_status_completed``), and every completion
paid to keep them.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


DONE = sa.text("status = 'completed'")


def upgrade() -> None:
    op.drop_index("ix_tasks_done_by", table_name="human_tasks")
    op.drop_index("ix_tasks_done_step", table_name="human_tasks")
    op.create_table(
        "dashboard_periods",
        sa.Column("figure", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date(), primary_key=True),
        sa.Column("sealed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "dashboard_rollups",
        sa.Column("figure", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("process_key", sa.String(100), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("packed_values", sa.LargeBinary(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("dashboard_rollups")
    op.drop_table("dashboard_periods")
    # as revision 0015 made them
    op.create_index("ix_tasks_done_step", "human_tasks", ["process_key", "element_id", "completed_at"],
                    postgresql_include=["created_at", "name"], postgresql_where=DONE, sqlite_where=DONE)
    month = "date_trunc('month', completed_at)" if op.get_bind().dialect.name == "postgresql" \
        else "strftime('%Y-%m', completed_at)"
    op.create_index("ix_tasks_done_by", "human_tasks", ["completed_by_id", sa.text(month), "completed_at"],
                    postgresql_include=["claimed_at", "created_at", "due_at", "process_key"],
                    postgresql_where=DONE, sqlite_where=DONE)
