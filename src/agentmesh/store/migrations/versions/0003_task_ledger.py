"""The task ledger's table ``am_task_ledger`` (see :mod:`agentmesh.runtime.ledger_sql`).

Before this revision the ledger created the table itself on every connect, racing other
processes doing the same; it may therefore already exist.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "am_task_ledger"


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(TABLE):
        return
    op.create_table(
        TABLE,
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("task_id", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text()),
        sa.Column("done", sa.Text()),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cancelled", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "task_id"),
    )


def downgrade() -> None:
    op.drop_table(TABLE)
