"""Java delegate mappings

``delegate_mappings``: a Camunda 7 Java delegate that diagrams name on service tasks (``camunda:class``,
``camunda:delegateExpression``, ``camunda:expression``), mapped by an administrator to a deptflow external task
topic: the task then waits for a worker of that topic, as a ``camunda:type="external"`` task does.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 21:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delegate_mappings",
        sa.Column("delegate", sa.String(length=300), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("mapped_by_id", sa.Integer(), nullable=True),
        sa.Column("mapped_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["mapped_by_id"], ["users.id"], name=op.f("fk_delegate_mappings_mapped_by_id_users")),
        sa.PrimaryKeyConstraint("delegate", name=op.f("pk_delegate_mappings")),
    )


def downgrade() -> None:
    op.drop_table("delegate_mappings")
