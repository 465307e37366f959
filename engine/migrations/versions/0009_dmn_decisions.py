"""DMN decision tables

``decision_definitions``: published versions of DMN decisions, one row per decision of a file (the
whole file in each row), keyed by the decision id and its version, as process definitions are.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 20:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decision_definitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("decision_key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("published_by_id", sa.Integer(), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["published_by_id"], ["users.id"],
                                name=op.f("fk_decision_definitions_published_by_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision_definitions")),
        sa.UniqueConstraint("decision_key", "version", name=op.f("uq_decision_definitions_decision_key")),
    )


def downgrade() -> None:
    op.drop_table("decision_definitions")
