"""One audit trail: ``api_audit_log`` (migration-managed, with ``event_position``)
replaces the ``audit_log`` read model.

Before this revision the control plane created ``api_audit_log`` itself, so the table
may already exist (then it only gains the column) or not (then it is created here).
The unique index on ``event_position`` keeps one entry per domain event; entries of
the API leave it NULL.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.String(40)
AUDIT = "api_audit_log"
POSITION_INDEX = "ux_api_audit_log_event_position"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(AUDIT):
        op.create_table(
            AUDIT,
            sa.Column("seq", BIGINT, primary_key=True, autoincrement=True),
            sa.Column("entry_id", sa.String(32), nullable=False, unique=True),
            sa.Column("timestamp", sa.String(40), nullable=False),
            sa.Column("action", sa.String(40), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("tenant_id", sa.String(64), nullable=False),
            sa.Column("actor", sa.String(256), nullable=False),
            sa.Column("resource_type", sa.String(64), nullable=False),
            sa.Column("resource_id", sa.String(256), nullable=False),
            sa.Column("request_id", sa.String(64), nullable=False),
            sa.Column("client_ip", sa.String(64), nullable=False),
            sa.Column("classification", sa.String(16), nullable=False),
            sa.Column("details", sa.Text(), nullable=False),
            sa.Column("prev_hash", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("event_position", sa.BigInteger(), nullable=True),
        )
        op.create_index(f"ix_{AUDIT}_tenant_seq", AUDIT, ["tenant_id", "seq"])
        op.create_index(f"ix_{AUDIT}_request", AUDIT, ["request_id"])
    elif "event_position" not in {c["name"] for c in inspector.get_columns(AUDIT)}:
        op.add_column(AUDIT, sa.Column("event_position", sa.BigInteger(), nullable=True))
    op.create_index(POSITION_INDEX, AUDIT, ["event_position"], unique=True)
    op.drop_index("ix_audit_tenant_position", table_name="audit_log")
    op.drop_table("audit_log")
    op.execute("DELETE FROM projection_checkpoints WHERE name = 'audit_log'")


def downgrade() -> None:
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
    op.drop_index(POSITION_INDEX, table_name=AUDIT)
    # the table stays (the previous code created it itself) and no entry is deleted; the
    # previous code cannot verify the chain past the first domain-event entry, whose
    # hash covers the column dropped here
    with op.batch_alter_table(AUDIT) as batch:
        batch.drop_column("event_position")
    op.execute("DELETE FROM projection_checkpoints WHERE name = 'audit'")
