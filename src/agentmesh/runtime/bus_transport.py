"""The transport a :class:`~agentmesh.mesh.Mesh` builds from a URL: the settings' connect
timeout and CA file, and on brokers that take a token (NATS) the process's bus token."""

from __future__ import annotations

from agentmesh.config import Settings
from agentmesh.security.bus_credentials import agent_token
from agentmesh.transports import TOKEN_SCHEMES, Transport, create_transport


def mesh_transport(
    settings: Settings, tenant: str, url: str | None, bus_token: str | None = None
) -> Transport:
    """A transport for ``url`` (default: the settings' broker) presenting ``bus_token``
    (default: what :func:`~agentmesh.security.bus_credentials.agent_token` gives)."""
    url = settings.effective_transport_url() if url is None else url
    if bus_token is None and url.split("://", 1)[0] in TOKEN_SCHEMES:
        bus_token = agent_token(settings, tenant)
    return create_transport(
        url,
        connect_timeout=settings.agentmesh_connect_timeout,
        token=bus_token,
        tls_ca_file=settings.agentmesh_tls_ca_file,
    )
