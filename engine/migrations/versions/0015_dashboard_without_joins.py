"""The dashboard's task and decision figures without joining cases, from narrow indexes

``human_tasks.process_key`` and ``events.process_key``: the case's process, copied when the row is written (the
engine's existing INSERTs carry it), so the dashboard groups completed tasks and gateway decisions by process
without joining each row to its case. Partial indexes on the completed tasks and on the gateway decisions hold
what the aggregates read; on PostgreSQL they include the other columns (``INCLUDE``), so the aggregates are
index-only scans. The upgrade copies the process of every task and event written before it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 00:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

DONE = sa.text("status = 'completed'")
DECISION = sa.text("kind = 'gateway_decision'")


def upgrade() -> None:
    op.add_column("human_tasks", sa.Column("process_key", sa.String(100), nullable=True))
    op.add_column("events", sa.Column("process_key", sa.String(100), nullable=True))
    # one statement per table, on both databases: the rows written before keep their case's process
    for table in ("human_tasks", "events"):
        op.execute(f"UPDATE {table} SET process_key = (SELECT process_instances.process_key FROM process_instances "
                   f"WHERE process_instances.id = {table}.instance_id) WHERE instance_id IS NOT NULL")
    op.create_index("ix_tasks_done_step", "human_tasks", ["process_key", "element_id", "completed_at"],
                    postgresql_include=["created_at", "name"], postgresql_where=DONE, sqlite_where=DONE)
    month = "date_trunc('month', completed_at)" if op.get_bind().dialect.name == "postgresql" \
        else "strftime('%Y-%m', completed_at)"  # engine.db.MonthOf, as the dashboard groups by it
    op.create_index("ix_tasks_done_by", "human_tasks", ["completed_by_id", sa.text(month), "completed_at"],
                    postgresql_include=["claimed_at", "created_at", "due_at", "process_key"],
                    postgresql_where=DONE, sqlite_where=DONE)
    op.create_index("ix_instances_process_started", "process_instances", ["process_key", "started_at"])
    op.create_index("ix_events_decisions", "events", ["at"], postgresql_include=["process_key", "data"],
                    postgresql_where=DECISION, sqlite_where=DECISION)


def downgrade() -> None:
    op.drop_index("ix_events_decisions", table_name="events")
    op.drop_index("ix_instances_process_started", table_name="process_instances")
    op.drop_index("ix_tasks_done_by", table_name="human_tasks")
    op.drop_index("ix_tasks_done_step", table_name="human_tasks")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("process_key")
    with op.batch_alter_table("human_tasks") as batch:
        batch.drop_column("process_key")
