"""The composition root of a control plane: one typed object built once from ``Settings``.

``agentmesh up``, ``uvicorn agentmesh.api.fastapi_app:app`` and the CLI commands that
need the mesh all build the same :class:`Application`::

    application = Application.from_settings(settings)   # no I/O yet
    await application.start()       # broker, live registry (every tenant), store, relay,
                                    # projections, audit trail, task recorder and tracker
    application.plane.bus           # commands and queries
    await application.stop()

It owns the transport (through its :class:`~agentmesh.mesh.Mesh`: ledger included), the
registry of live agents, the store, crypto, audit and command bus (through its
:class:`~agentmesh.controlplane.ControlPlane`). Nothing else reads the environment:
:class:`~agentmesh.config.Settings` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentmesh.commands import CqrsBus
from agentmesh.config import Settings, get_settings
from agentmesh.controlplane import ControlPlane
from agentmesh.mesh import Mesh
from agentmesh.runtime.registry import Registry
from agentmesh.security.bus_credentials import platform_token
from agentmesh.security.bus_guard import BusGuard


@dataclass
class Application:
    """Settings, the mesh (transport, registry of every tenant, ledger) and the plane."""

    settings: Settings
    mesh: Mesh
    plane: ControlPlane
    started: bool = False
    bus_guard: BusGuard | None = None
    """The broker's auth callout, when this process serves it (``agentmesh up``)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        transport_url: str | None = None,
        tenant: str | None = None,
        projection_interval: float = 0.2,
        sweep_interval: float = 5.0,
    ) -> Application:
        """Build (without connecting) from ``settings``; the broker is ``transport_url``
        or :meth:`Settings.effective_transport_url`."""
        resolved = (settings or get_settings()).with_secrets()
        mesh = Mesh(
            transport_url or resolved.effective_transport_url(),
            tenant=tenant or resolved.agentmesh_tenant,
            settings=resolved,
            bus_token=platform_token(resolved),
        )
        mesh.registry = Registry(
            mesh.transport, tenant="*", health_check_timeout=resolved.agentmesh_health_check_timeout
        )
        plane = ControlPlane(
            resolved,
            mesh,
            projection_interval=projection_interval,
            sweep_interval=sweep_interval,
        )
        return cls(resolved, mesh, plane)

    @property
    def bus(self) -> CqrsBus:
        """The command and query bus (once started)."""
        return self.plane.bus

    async def start(self) -> None:
        """Connect the broker, start the registry and agents, then the control plane."""
        if self.started:
            return
        await self.mesh.start()
        try:
            await self.plane.start()
        except BaseException:
            await self.mesh.stop()
            raise
        self.started = True

    async def stop(self) -> None:
        """Stop the control plane, then the mesh (agents drain, the broker closes)."""
        if not self.started:
            return
        self.started = False
        try:
            await self.plane.stop()
        finally:
            await self.mesh.stop()
