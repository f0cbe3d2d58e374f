"""Multi-target routing and broker-to-broker bridges.

``routing.targets`` of an envelope is a list of ``"<platform>:<subject>"`` strings (split on
the first colon). :class:`TargetRouter` publishes the envelope to each target on
the transport registered under that platform name::

    router = TargetRouter({"nats": nats_transport, "kafka": kafka_transport})
    env.routing["targets"] = ["nats:am.acme.task.summarize", "kafka:am.acme.evt.audit"]
    await router.publish(env, durable=True)

A target that is not a full ``am.`` subject names a capability of the envelope's tenant
(``"kafka:summarize"`` -> ``am.<tenant>.task.summarize``).

:class:`Bridge` forwards one subject (pattern) from a source transport to a target
transport, re-publishing the very same envelope (same id), so consumer-side dedupe and the
brokers' dedupe windows hold across the bridge; a delivery is acked only after the target
accepted it, so a failed forward is retried by the source broker (durable bridges)::

    bridge = Bridge(kafka, nats, "am.acme.task.>", durable="kafka-to-nats")
    await bridge.start()
    ...
    await bridge.stop()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import ConfigError
from agentmesh.transports.base import SubscribeOptions, Subscription, Transport
from agentmesh.transports.message import Message


def parse_target(target: str, tenant: str) -> tuple[str, str]:
    """``"kafka:am.t.evt.x"`` -> ``("kafka", "am.t.evt.x")``; short names are task subjects."""
    platform, sep, name = target.partition(":")
    if not sep or not platform or not name:
        raise ConfigError(f"routing target {target!r} must look like '<platform>:<subject>'")
    subject = name if name.startswith(f"{subjects.PREFIX}.") else subjects.task(tenant, name)
    return platform, subject


class TargetRouter:
    """Publishes an envelope to every ``routing.targets`` entry (see module docstring)."""

    def __init__(self, transports: Mapping[str, Transport]) -> None:
        self.transports = dict(transports)

    def resolve(self, envelope: Envelope) -> list[tuple[Transport, str]]:
        targets = envelope.routing.get("targets") or []
        if not isinstance(targets, list) or not targets:
            raise ConfigError(f"envelope {envelope.id} has no routing.targets")
        resolved = []
        for target in targets:
            platform, subject = parse_target(str(target), envelope.tenant_id)
            transport = self.transports.get(platform)
            if transport is None:
                known = ", ".join(sorted(self.transports))
                raise ConfigError(f"no transport for platform {platform!r} (known: {known})")
            resolved.append((transport, subject))
        return resolved

    async def publish(self, envelope: Envelope, *, durable: bool = False) -> list[str]:
        """Publish to every target at once; returns the ``platform:subject`` list delivered."""
        resolved = self.resolve(envelope)
        await asyncio.gather(*(t.publish(s, envelope, durable=durable) for t, s in resolved))
        names = [parse_target(str(x), envelope.tenant_id) for x in envelope.routing["targets"]]
        return [f"{platform}:{subject}" for platform, subject in names]


@dataclass
class BridgeStats:
    forwarded: int = 0
    failed: int = 0


class Bridge:
    """Forwards ``subject`` from ``source`` to ``target`` (see module docstring)."""

    def __init__(
        self,
        source: Transport,
        target: Transport,
        subject: str,
        *,
        durable: str | None = None,
        rename: Callable[[str], str] | None = None,
        options: SubscribeOptions | None = None,
    ) -> None:
        self.source = source
        self.target = target
        self.subject = subject
        self.durable = durable
        self.rename = rename or (lambda s: s)
        self.options = options or SubscribeOptions(max_in_flight=16)
        self.stats = BridgeStats()
        self._sub: Subscription | None = None

    async def start(self) -> None:
        """Subscribe on the source; idempotent."""
        if self._sub is None:
            self._sub = await self.source.subscribe(
                self.subject, self._forward, durable=self.durable, options=self.options
            )

    async def stop(self) -> None:
        """Stop forwarding after the in-flight forwards finished."""
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _forward(self, msg: Message) -> None:
        try:
            await self.target.publish(
                self.rename(msg.subject), msg.envelope, durable=self.durable is not None
            )
        except Exception:
            self.stats.failed += 1
            raise  # the source retries (durable) or dead-letters it
        self.stats.forwarded += 1
