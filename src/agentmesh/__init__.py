"""AgentMesh: event-driven multi-agent systems over any broker.

Public API (everything else may change)::

    from agentmesh import Mesh, Envelope, TaskContext, Settings
"""

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from agentmesh.config import Settings, get_settings
    from agentmesh.envelope import Envelope
    from agentmesh.errors import AgentMeshError, RemoteError
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.agent import AgentRuntime
    from agentmesh.runtime.context import TaskContext
    from agentmesh.runtime.registry import AgentRecord, Registry
    from agentmesh.transports import Message, SubscribeOptions, Transport, create_transport

# the public names, loaded on first use: ``import agentmesh.cli.main`` (every CLI
# command) then pays only for what the command needs
_WHERE = {
    "Settings": "agentmesh.config",
    "get_settings": "agentmesh.config",
    "Envelope": "agentmesh.envelope",
    "AgentMeshError": "agentmesh.errors",
    "RemoteError": "agentmesh.errors",
    "Mesh": "agentmesh.mesh",
    "AgentRuntime": "agentmesh.runtime.agent",
    "TaskContext": "agentmesh.runtime.context",
    "AgentRecord": "agentmesh.runtime.registry",
    "Registry": "agentmesh.runtime.registry",
    "Message": "agentmesh.transports",
    "SubscribeOptions": "agentmesh.transports",
    "Transport": "agentmesh.transports",
    "create_transport": "agentmesh.transports",
}


def __getattr__(name: str) -> object:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'agentmesh' has no attribute {name!r}")
    value = getattr(_importlib.import_module(where), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__version__ = "0.1.0"

__all__ = [
    "AgentMeshError",
    "AgentRecord",
    "AgentRuntime",
    "Envelope",
    "Mesh",
    "Message",
    "Registry",
    "RemoteError",
    "Settings",
    "SubscribeOptions",
    "TaskContext",
    "Transport",
    "__version__",
    "create_transport",
    "get_settings",
]
