"""signed audit chain heads

Every audit chain head (the global ``audit_head`` row and each case's ``audit_seq`` /
``audit_hash``) gets an Ed25519 signature made with a key kept outside the database (see
engine/audit_signing.py). Heads written before this revision have none: ``deptflow init``
signs them once, after checking the chain, when it creates the key.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 19:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_head") as batch:
        batch.add_column(sa.Column("last_signature", sa.String(length=128), nullable=True))
    with op.batch_alter_table("process_instances") as batch:
        batch.add_column(sa.Column("audit_signature", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("process_instances") as batch:
        batch.drop_column("audit_signature")
    with op.batch_alter_table("audit_head") as batch:
        batch.drop_column("last_signature")
