"""Fast settings for pattern tests: short heartbeats, health timeouts and ack waits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agentmesh import Mesh
from agentmesh.config import Settings

MakeMesh = Callable[..., Mesh]


def fast_settings(tmp: Path, **kw: float) -> Settings:
    values: dict[str, object] = {
        "agentmesh_data_dir": tmp,
        "agentmesh_heartbeat_interval": 0.1,
        "agentmesh_health_check_timeout": 0.6,
        "agentmesh_ack_wait": 1.0,
    }
    values.update(kw)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def make_mesh(tmp_path: Path) -> AsyncIterator[MakeMesh]:
    """Meshes of one tenant on one private memory:// broker (one per simulated process)."""
    url = f"memory://{uuid.uuid4().hex}"
    tenant = "t" + uuid.uuid4().hex[:8]
    made: list[Mesh] = []

    def make(**kw: float) -> Mesh:
        mesh = Mesh(url, tenant=tenant, settings=fast_settings(tmp_path, **kw))
        made.append(mesh)
        return mesh

    yield make
    for mesh in reversed(made):
        await mesh.stop()
