"""What keeps a control plane working while a NATS cluster node is down."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from agentmesh.config import Settings
from agentmesh.controlplane import ControlPlane
from agentmesh.errors import BrokerUnavailable
from agentmesh.mesh import Mesh
from agentmesh.transports.nats import NatsTransport, stream_for


class _NoResponders:
    async def publish(self, *args: Any, **kw: Any) -> None:
        raise nats.errors.NoRespondersError


async def test_a_jetstream_publish_without_responder_is_broker_unavailable() -> None:
    # a cluster node just died and the stream elects a new leader: retryable, typed
    t = NatsTransport("nats://127.0.0.1:1")
    t._js = _NoResponders()
    t._streams.add(stream_for("am.acme.task.work")[0])
    with pytest.raises(BrokerUnavailable, match="did not confirm"):
        await t._js_publish("am.acme.task.work", b"{}", "id-1")


async def test_a_plane_loop_that_fails_is_restarted(tmp_path: Any) -> None:
    plane = ControlPlane(Settings(agentmesh_data_dir=tmp_path), Mesh("memory://", tenant="t1"))
    runs = 0

    async def loop() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("an error no one mapped")
        plane._stop.set()

    await asyncio.wait_for(plane._supervise("test loop", loop), 10)
    assert runs == 2
