"""``CqrsBus``: one handler per command type and one per query type.

>>> bus = CqrsBus()
>>> bus.register_command(CreateTenant, handlers.create_tenant)   # doctest: +SKIP
>>> await bus.execute(CreateTenant(name="acme"))                  # doctest: +SKIP

An unknown command or query raises :class:`~agentmesh.errors.NotSupported` (the seed
silently ignored unknown commands). Every dispatch counts ``commands_dispatched_total``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from agentmesh.commands.messages import Command, Query
from agentmesh.errors import NotSupported
from agentmesh.observability import metrics

Handler = Callable[[Any], Awaitable[Any]]
C = TypeVar("C", bound=Command[Any])
Q = TypeVar("Q", bound=Query[Any])
R = TypeVar("R")


class CqrsBus:
    """Routes command and query objects to their registered async handlers."""

    def __init__(self) -> None:
        self._commands: dict[type, Handler] = {}
        self._queries: dict[type, Handler] = {}

    def register_command(
        self, command_type: type[C], handler: Callable[[C], Awaitable[Any]]
    ) -> None:
        """Register ``handler`` for ``command_type`` (one handler per type)."""
        if command_type in self._commands:
            raise ValueError(f"a handler for command {command_type.__name__} is already registered")
        self._commands[command_type] = handler

    def register_query(self, query_type: type[Q], handler: Callable[[Q], Awaitable[Any]]) -> None:
        if query_type in self._queries:
            raise ValueError(f"a handler for query {query_type.__name__} is already registered")
        self._queries[query_type] = handler

    async def execute(self, command: Command[R]) -> R:
        """Run the handler of ``command``'s type; unknown types raise NotSupported."""
        handler = self._commands.get(type(command))
        if handler is None:
            raise NotSupported(
                f"No handler registered for command type: {type(command).__name__}",
                code="UNKNOWN_COMMAND",
            )
        metrics.commands_dispatched.labels(type(command).__name__).inc()
        return cast(R, await handler(command))

    async def query(self, query: Query[R]) -> R:
        """Run the handler of ``query``'s type; unknown types raise NotSupported."""
        handler = self._queries.get(type(query))
        if handler is None:
            raise NotSupported(
                f"No handler registered for query type: {type(query).__name__}",
                code="UNKNOWN_QUERY",
            )
        return cast(R, await handler(query))

    @property
    def command_types(self) -> list[type]:
        return list(self._commands)

    @property
    def query_types(self) -> list[type]:
        return list(self._queries)
