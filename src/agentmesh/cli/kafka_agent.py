"""``agentmesh agent start-kafka-agent``: the seed's KafkaAgent, an agent bound to Kafka.

The agent serves its capabilities on the Kafka brokers of ``KAFKA_BROKERS`` (whatever
``NATS_URL`` says), with the built-in echo handler or ``--handler module:function``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from agentmesh.cli.agent_kinds import CapabilitiesOpt, TenantOpt, _prepare
from agentmesh.cli.output import fail
from agentmesh.cli.serving import run_or_fail, serve_until_signalled


def kafka_url(brokers: str) -> str:
    """The transport URL of a ``KAFKA_BROKERS`` value (``host:port[,host:port]``)."""
    first = brokers.split(",")[0].strip()
    if first.startswith("kafka://"):
        return first
    if not first:
        fail("KAFKA_BROKERS is empty: set host:port of a Kafka broker")
    return f"kafka://{first}"


def register(agent_app: typer.Typer) -> None:
    """Add ``start-kafka-agent`` to ``agentmesh agent``."""

    @agent_app.command("start-kafka-agent")
    def start_kafka_agent(
        agent_id: Annotated[str, typer.Argument(help="Agent id.")],
        capabilities: CapabilitiesOpt,
        tenant: TenantOpt = None,
        handler: Annotated[
            str | None,
            typer.Option(help="Async handler 'module:function' (default: the echo agent)."),
        ] = None,
        max_concurrent: Annotated[int, typer.Option(min=1, max=1000)] = 8,
    ) -> None:
        """Start an agent on the Kafka brokers of KAFKA_BROKERS."""
        from agentmesh.cli.main import _load_handler
        from agentmesh.mesh import Mesh
        from agentmesh.runtime.agent import AgentRuntime

        settings, caps = _prepare(agent_id, capabilities)
        fn = _load_handler(handler)
        if not asyncio.iscoroutinefunction(fn):
            fail(f"handler {handler!r} must be an async function")
        url = kafka_url(settings.kafka_brokers)

        async def main() -> None:
            mesh = Mesh(url, settings=settings, tenant=tenant)
            mesh.add(
                AgentRuntime(mesh, agent_id, fn, capabilities=caps, max_concurrent=max_concurrent)
            )
            await serve_until_signalled(
                mesh, "kafka agent {} serving {} on {}", agent_id, ", ".join(caps), url
            )

        run_or_fail(main())
