"""What an agent handler receives for one task."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from agentmesh.envelope import Envelope
from agentmesh.transports import Message

if TYPE_CHECKING:
    from agentmesh.runtime.agent import AgentRuntime


CURRENT_TASK: ContextVar[str | None] = ContextVar("agentmesh_current_task", default=None)
"""The id of the durable task whose handler runs in this context (set by the runtime)."""


def current_task_id() -> str | None:
    """The durable task being handled here, if any: ``Mesh.submit`` and the patterns
    record it as the ``parent_task_id`` of what they submit from inside a handler."""
    return CURRENT_TASK.get()


class TaskContext:
    """One task (or request, or direct message) handed to an agent handler.

    ``payload`` is the task input; return a dict (or any JSON value) as the result.
    Long handlers call ``await ctx.progress()`` so a durable task is not redelivered.
    """

    __slots__ = ("_attempt", "_message", "agent", "capability", "kind")

    def __init__(
        self, agent: AgentRuntime, message: Message, capability: str | None, kind: str
    ) -> None:
        self.agent = agent
        self._message = message
        self.capability = capability
        self.kind = kind  # "task" (durable), "request" (reply expected) or "direct"
        self._attempt: int | None = None

    @property
    def envelope(self) -> Envelope:
        return self._message.envelope

    @property
    def payload(self) -> dict[str, Any]:
        return self._message.envelope.payload

    @property
    def task_id(self) -> str:
        return str(self.envelope.payload.get("task_id") or self.envelope.id)

    @property
    def tenant_id(self) -> str:
        return self.envelope.tenant_id

    @property
    def attempt(self) -> int:
        """1 on the first try; for durable tasks, 1 + the handler failures so far."""
        return self._attempt if self._attempt is not None else self._message.attempt

    @attempt.setter
    def attempt(self, value: int) -> None:
        self._attempt = value

    async def progress(self) -> None:
        """Tell the broker the task is still being worked on (resets the ack deadline)."""
        await self._message.in_progress()

    def __repr__(self) -> str:
        return (
            f"TaskContext(kind={self.kind!r}, capability={self.capability!r}, id={self.task_id!r})"
        )
