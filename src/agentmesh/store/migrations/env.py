"""Alembic environment of AgentMesh: runs on a connection handed over by
:func:`agentmesh.store.migrate.migrate` (``config.attributes["connection"]``)."""

from __future__ import annotations

from alembic import context

from agentmesh.store.migrate import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run AgentMesh migrations through agentmesh.store.migrate.migrate(url)")
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
