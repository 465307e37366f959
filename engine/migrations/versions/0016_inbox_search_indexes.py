"""Trigram indexes for the inbox's text search, statistics on open tasks (PostgreSQL only)

The inbox's text filter looks for a word anywhere in a case's title or business key (``ILIKE '%…%'``), which
no B-tree index serves. On PostgreSQL, ``pg_trgm``'s GIN indexes serve it, and their statistics tell the
planner how many cases match: a rare word starts from the index, a common one from the person's tasks.
``pg_trgm`` ships with PostgreSQL (contrib) and is a trusted extension: the database's owner may create it.

``st_tasks_status_assignee``: most finished tasks have an assignee, most open ones have none. Without
statistics on both columns together, PostgreSQL takes "open and unassigned" for a few hundred rows of
10,000 and walks them all to find a role's queue instead of starting from the role's candidates.

SQLite keeps ``lower(…) LIKE`` over the person's tasks; nothing changes there.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 00:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TRIGRAM_COLUMNS = ("title", "business_key")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in TRIGRAM_COLUMNS:
        op.create_index(f"ix_instances_{column}_trgm", "process_instances", [column], postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"})
    op.execute(sa.text("CREATE STATISTICS st_tasks_status_assignee (mcv) ON status, assignee_id FROM human_tasks"))
    op.execute(sa.text("ANALYZE human_tasks"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(sa.text("DROP STATISTICS IF EXISTS st_tasks_status_assignee"))
    for column in TRIGRAM_COLUMNS:
        op.drop_index(f"ix_instances_{column}_trgm", table_name="process_instances")
    # pg_trgm stays: another schema of the database may use it
