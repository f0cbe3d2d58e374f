"""``tasks.parent_task_id``: the subtasks a pattern submitted while running a task.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("parent_task_id", sa.String(256), nullable=True))
    op.create_index("ix_tasks_tenant_parent", "tasks", ["tenant_id", "parent_task_id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_tenant_parent", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:  # SQLite rebuilds the table
        batch.drop_column("parent_task_id")
