"""Group mappings

``group_mappings``: a group that diagrams name in lanes and ``camunda:candidateGroups`` (Camunda's
``accounting``, ``management``, ``sales``) and that is no role, mapped by an administrator to the
role that does its tasks; parsing a diagram resolves groups through it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "group_mappings",
        sa.Column("group_id", sa.String(length=200), nullable=False),
        sa.Column("role_key", sa.String(length=64), nullable=False),
        sa.Column("mapped_by_id", sa.Integer(), nullable=True),
        sa.Column("mapped_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["role_key"], ["roles.key"], name=op.f("fk_group_mappings_role_key_roles")),
        sa.ForeignKeyConstraint(["mapped_by_id"], ["users.id"], name=op.f("fk_group_mappings_mapped_by_id_users")),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_group_mappings")),
    )
    op.create_index(op.f("ix_group_mappings_role_key"), "group_mappings", ["role_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_group_mappings_role_key"), table_name="group_mappings")
    op.drop_table("group_mappings")
