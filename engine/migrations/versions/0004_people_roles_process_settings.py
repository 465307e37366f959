"""roles, users and process settings as data

Roles can be deactivated and name the role that manages them (its holders reassign the managed
role's tasks). Processes keep pairs of tasks that must be done by different people and the due
time and priority their user tasks get when the diagram sets none. Set-password links are kept
as SHA-256 digests of their tokens; an outbox row may carry a link (the set-password mail) that
the worker clears once the mail is sent.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("roles") as batch:
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column("manager_role", sa.String(length=64), nullable=True))
    with op.batch_alter_table("processes") as batch:
        batch.add_column(sa.Column("separated_pairs", sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
        batch.add_column(sa.Column("default_due", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("default_priority", sa.Integer(), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("link", sa.String(length=500), nullable=True))
    op.create_table(
        "password_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_password_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], name=op.f("fk_password_tokens_created_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_tokens_token_hash")),
    )
    op.create_index("ix_password_tokens_user", "password_tokens", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_password_tokens_user", table_name="password_tokens")
    op.drop_table("password_tokens")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("link")
    with op.batch_alter_table("processes") as batch:
        batch.drop_column("default_priority")
        batch.drop_column("default_due")
        batch.drop_column("separated_pairs")
    with op.batch_alter_table("roles") as batch:
        batch.drop_column("manager_role")
        batch.drop_column("active")
