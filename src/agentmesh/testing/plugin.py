"""A pytest plugin for testing your own agents without servers.

Enable it in your ``conftest.py``::

    pytest_plugins = ["agentmesh.testing.plugin"]

(or ``pytest -p agentmesh.testing.plugin``). It needs ``pytest-asyncio``. Fixtures:

``mesh``
    A started :class:`~agentmesh.mesh.Mesh` on its own in-memory broker (a fresh tenant,
    fast heartbeats and ack wait, data in ``tmp_path``). Add agents with ``@mesh.agent``
    (they start at once) and drive them with ``mesh.request`` / ``mesh.run``.
``model_server``
    A started :class:`~agentmesh.testing.LocalModelServer`: script replies and tool calls
    with ``model_server.script(Reply.call(...), Reply.say(...))``; point an LLM agent at
    ``model_server.openai_url`` (or the Gemini / Vertex endpoints).
``chaos``
    A :class:`~agentmesh.testing.chaos.Chaos` for ``mesh``: ``kill`` / ``restart`` an
    agent, ``drop`` / ``delay`` deliveries, an ``outage`` of the broker.
``mesh_settings``
    The :class:`~agentmesh.config.Settings` the mesh uses (override the fixture to change
    them).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from agentmesh.config import Settings
from agentmesh.mesh import Mesh
from agentmesh.testing.chaos import Chaos, ChaosTransport
from agentmesh.testing.server import LocalModelServer


@pytest.fixture
def mesh_settings(tmp_path: Path) -> Settings:
    """Fast settings for a test mesh: 1 s ack wait, 0.1 s heartbeats, 1 s health timeout."""
    return Settings(
        agentmesh_data_dir=tmp_path,
        agentmesh_ack_wait=1.0,
        agentmesh_heartbeat_interval=0.1,
        agentmesh_health_check_timeout=1.0,
        environment="testing",
    )


@pytest_asyncio.fixture
async def mesh(mesh_settings: Settings) -> AsyncIterator[Mesh]:
    """A started mesh on a private in-memory broker (see the module docstring)."""
    name = "test-" + uuid.uuid4().hex[:12]
    m = Mesh(ChaosTransport(f"memory://{name}"), tenant=name, settings=mesh_settings)
    await m.start()
    try:
        yield m
    finally:
        await m.stop()
        ChaosTransport._boards.pop(name, None)
        ChaosTransport._brokers.pop(name, None)


@pytest_asyncio.fixture
async def model_server() -> AsyncIterator[LocalModelServer]:
    """A scripted local model server (Gemini, Vertex AI and OpenAI endpoints)."""
    async with LocalModelServer() as server:
        yield server


@pytest.fixture
def chaos(mesh: Mesh) -> Chaos:
    """Faults for ``mesh``: kill/restart agents, drop/delay deliveries, broker outage."""
    return Chaos(mesh)
