"""Comments and attachments of cases

``comments``: remarks on a case or one of its tasks (their text is on the audit chain too).
``attachments``: files of a case, from a form's ``file`` field or added to the case directly; the
content is stored on disk under its SHA-256, the row holds the hash, size, type and original name.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"],
                                name=op.f("fk_comments_instance_id_process_instances")),
        sa.ForeignKeyConstraint(["task_id"], ["human_tasks.id"], name=op.f("fk_comments_task_id_human_tasks")),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], name=op.f("fk_comments_author_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comments")),
    )
    op.create_index("ix_comments_instance", "comments", ["instance_id", "id"], unique=False)
    op.create_table(
        "attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("field_id", sa.String(length=200), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"],
                                name=op.f("fk_attachments_instance_id_process_instances")),
        sa.ForeignKeyConstraint(["task_id"], ["human_tasks.id"], name=op.f("fk_attachments_task_id_human_tasks")),
        sa.ForeignKeyConstraint(["uploaded_by_id"], ["users.id"], name=op.f("fk_attachments_uploaded_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index("ix_attachments_instance", "attachments", ["instance_id", "id"], unique=False)
    op.create_index("ix_attachments_sha256", "attachments", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_attachments_sha256", table_name="attachments")
    op.drop_index("ix_attachments_instance", table_name="attachments")
    op.drop_table("attachments")
    op.drop_index("ix_comments_instance", table_name="comments")
    op.drop_table("comments")
