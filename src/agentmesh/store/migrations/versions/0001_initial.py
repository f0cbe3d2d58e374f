"""Event store, outbox, processed messages, checkpoints and read models.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.String(40)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.UniqueConstraint("tenant_id", "stream_id", "version", name="uq_events_stream_version"),
    )
    op.create_table(
        "event_position",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO event_position (id, value) VALUES (1, 0)")
    op.create_table(
        "outbox",
        sa.Column("id", BIGINT, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(300), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["id"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )
    op.create_table(
        "processed_messages",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", TS, nullable=False),
    )
    op.create_table(
        "projection_checkpoints",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    # -- read models (rebuilt by `agentmesh projections rebuild`) -------------------
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True, index=True),
        sa.Column("api_key", sa.String(128), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("max_agents", sa.Integer(), nullable=False, server_default="100"),
        sa.Column("max_messages_per_hour", sa.Integer(), nullable=False, server_default="10000"),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    op.create_table(
        "agents",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("agent_id", sa.String(256), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("agent_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("capabilities", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    op.create_index("ix_agents_tenant_status", "agents", ["tenant_id", "status"])
    op.create_index("ix_agents_tenant_created", "agents", ["tenant_id", "created_at"])
    op.create_table(
        "tasks",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("task_id", sa.String(256), primary_key=True),
        sa.Column("task_type", sa.String(100), nullable=False),
        sa.Column("capability", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.String(256), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("submitted_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("doc", sa.Text(), nullable=False),
    )
    op.create_index("ix_tasks_tenant_status", "tasks", ["tenant_id", "status"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("message_type", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("correlation_id", sa.String(64), nullable=True),
        sa.Column("encrypted_payload", sa.Boolean(), nullable=False),
        sa.Column("persisted_at", TS, nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_tenant_position", "audit_log", ["tenant_id", "position"])


def downgrade() -> None:
    for table in (
        "audit_log",
        "messages",
        "tasks",
        "agents",
        "tenants",
        "projection_checkpoints",
        "processed_messages",
        "outbox",
        "event_position",
        "events",
    ):
        op.drop_table(table)
