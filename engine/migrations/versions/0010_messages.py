"""BPMN messages: the message_subscriptions projection (issue 15, part 3).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("spiff_task_id", sa.String(length=36), nullable=False),
        sa.Column("element_id", sa.String(length=200), nullable=False),
        sa.Column("message_name", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"],
                                name=op.f("fk_message_subscriptions_instance_id_process_instances")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_subscriptions")),
    )
    op.create_index("ix_message_subscriptions_name", "message_subscriptions", ["message_name", "instance_id"],
                    unique=False)
    op.create_index("ix_message_subscriptions_instance", "message_subscriptions", ["instance_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_message_subscriptions_instance", table_name="message_subscriptions")
    op.drop_index("ix_message_subscriptions_name", table_name="message_subscriptions")
    op.drop_table("message_subscriptions")
