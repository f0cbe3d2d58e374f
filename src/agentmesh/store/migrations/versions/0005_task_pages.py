"""Indexes for keyset (cursor) pages of ``GET /tasks``: newest first, over a tenant's
tasks, filtered by status or by agent, without counting past the skipped rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_tasks_page": ["tenant_id", "submitted_at", "task_id"],
    "ix_tasks_status_page": ["tenant_id", "status", "submitted_at", "task_id"],
    "ix_tasks_agent_page": ["tenant_id", "agent_id", "submitted_at", "task_id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "tasks", columns)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="tasks")
