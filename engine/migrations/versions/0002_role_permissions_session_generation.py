"""role permissions, per-user session generation

Roles carry the permissions the engine checks (it names no company role any more); the
roles deptflow shipped with get the permissions their keys were given in code before.
A user's session generation ends every login session of that user when it is raised.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 18:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: What the code of revision 0001 allowed each shipped role key (engine/assignment.py, history.py,
#: owners.py, reports.py, users.py): kept as data so that an upgraded database behaves as before.
SHIPPED_PERMISSIONS = {
    "admin": ["administer", "audit", "model", "read_all_cases"],
    "auditor": ["audit", "read_all_cases", "statistics"],
    "process_owner": ["model", "read_all_cases"],
    "general_manager": ["statistics"],
    "marketing_manager": ["statistics"],
}


def upgrade() -> None:
    with op.batch_alter_table("roles") as batch:
        batch.add_column(sa.Column("permissions", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
    roles = sa.table("roles", sa.column("key", sa.String), sa.column("permissions", sa.JSON))
    for key, permissions in SHIPPED_PERMISSIONS.items():
        op.execute(roles.update().where(roles.c.key == key).values(permissions=permissions))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
    with op.batch_alter_table("roles") as batch:
        batch.drop_column("permissions")

