"""Indexes of the KPI dashboard

The dashboard aggregates the cases finished in a date range and the tasks completed in one; without these
indexes both databases read every case and every task to find them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 21:00:00
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_instances_status_ended", "process_instances", ["status", "ended_at"], unique=False)
    op.create_index("ix_tasks_status_completed", "human_tasks", ["status", "completed_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tasks_status_completed", table_name="human_tasks")
    op.drop_index("ix_instances_status_ended", table_name="process_instances")
