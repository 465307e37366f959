"""Sealed roll-ups of the dashboard's figures

A day or month that is over adds up to the same figures every time it is asked for: the dashboard sums its items
once per figure and group (counts added, values kept in order) and reads those rows afterwards
(:mod:`engine.rollups`). The tables start empty: the first request over a range seals its past days and months.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 03:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_periods",
        sa.Column("figure", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date(), primary_key=True),
        sa.Column("sealed_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "dashboard_rollups",
        sa.Column("figure", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(5), primary_key=True),
        sa.Column("start", sa.Date(), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("process_key", sa.String(100), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("packed_values", sa.LargeBinary(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("dashboard_rollups")
    op.drop_table("dashboard_periods")
