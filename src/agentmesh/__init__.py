"""AgentMesh: event-driven multi-agent systems over any broker.

Public API (everything else may change)::

    from agentmesh import Mesh, Envelope, TaskContext, Settings
"""

from agentmesh.config import Settings, get_settings
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, RemoteError
from agentmesh.mesh import Mesh
from agentmesh.runtime.agent import AgentRuntime
from agentmesh.runtime.context import TaskContext
from agentmesh.runtime.registry import AgentRecord, Registry
from agentmesh.transports import Message, SubscribeOptions, Transport, create_transport

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
