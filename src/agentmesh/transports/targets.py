"""The brokers that ``routing.targets`` may name, for ``POST /v1/tenants/{t}/messages``.

``AGENTMESH_ROUTE_TARGETS`` lists them as ``<platform>=<transport URL>`` pairs::

    AGENTMESH_ROUTE_TARGETS="redis=redis://127.0.0.1:6379/0,kafka=kafka://127.0.0.1:9092"

and the control plane's own broker is always there under its scheme (``nats``,
``memory`` ...). :class:`RouteTargets` checks a message's targets before anything is
written (an unknown platform is a :class:`~agentmesh.errors.ValidationError` naming it
and the configured ones: a 422) and delivers the envelope to every target through
:class:`~agentmesh.transports.bridge.TargetRouter` (durably, the same envelope and id on
each broker). A target broker is connected on first use and kept until :meth:`close`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import ConfigError, ValidationError
from agentmesh.transports.base import Transport
from agentmesh.transports.bridge import TargetRouter, parse_target


def parse_route_brokers(spec: str | None) -> dict[str, str]:
    """``"redis=redis://h:6379,kafka=kafka://h:9092"`` -> ``{"redis": ..., "kafka": ...}``;
    a malformed entry is a :class:`ConfigError` naming it."""
    brokers: dict[str, str] = {}
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, url = item.partition("=")
        name, url = name.strip(), url.strip()
        if not sep or not name or "://" not in url:
            raise ConfigError(
                f"AGENTMESH_ROUTE_TARGETS entry {item!r} must look like '<platform>=<url>'"
            )
        brokers[name] = url
    return brokers


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower()


class RouteTargets:
    """Configured target brokers plus the home transport (see the module doc)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        home: Transport | None = None,
        *,
        connect_timeout: float = 5.0,
    ) -> None:
        self.urls = dict(urls)
        self.home = home
        self.connect_timeout = connect_timeout
        self._connected: dict[str, Transport] = {}
        self._lock = asyncio.Lock()
        if home is not None:
            self._connected.setdefault(_scheme(home.url), home)

    @classmethod
    def from_settings(cls, settings: Any, home: Transport | None = None) -> RouteTargets:
        """From ``settings.agentmesh_route_targets`` (see :func:`parse_route_brokers`)."""
        return cls(
            parse_route_brokers(settings.agentmesh_route_targets),
            home,
            connect_timeout=settings.agentmesh_connect_timeout,
        )

    @property
    def platforms(self) -> list[str]:
        return sorted({*self.urls, *self._connected})

    def check(self, envelope: Envelope) -> list[tuple[str, str]]:
        """``(platform, subject)`` of every target; bad targets raise ValidationError."""
        targets = envelope.routing.get("targets")
        if not isinstance(targets, list) or not targets or len(targets) > 32:
            raise ValidationError("routing.targets must be a list of 1-32 '<platform>:<topic>'")
        out = []
        for target in targets:
            if not isinstance(target, str):
                raise ValidationError(f"routing target {target!r} must be a string")
            try:
                platform, subject = parse_target(target, envelope.tenant_id)
            except (ConfigError, ValidationError) as exc:
                raise ValidationError(str(exc), code="BAD_ROUTE_TARGET") from None
            if not subjects.is_valid(subject) or subjects.tenant_of(subject) != envelope.tenant_id:
                raise ValidationError(
                    f"routing target {target!r} must name a subject of tenant "
                    f"{envelope.tenant_id} (am.{envelope.tenant_id}.<kind>...) or a capability",
                    code="BAD_ROUTE_TARGET",
                )
            if platform not in self.urls and platform not in self._connected:
                known = ", ".join(self.platforms) or "none"
                raise ValidationError(
                    f"routing target {target!r}: broker {platform!r} is not configured "
                    f"(configured: {known}; see AGENTMESH_ROUTE_TARGETS)",
                    code="UNKNOWN_ROUTE_TARGET",
                )
            out.append((platform, subject))
        return out

    async def _transport(self, platform: str) -> Transport:
        async with self._lock:
            found = self._connected.get(platform)
            if found is None:
                from agentmesh.transports import create_transport

                found = create_transport(self.urls[platform], connect_timeout=self.connect_timeout)
                await found.connect()
                self._connected[platform] = found
            return found

    async def deliver(self, envelope: Envelope) -> list[str]:
        """Publish ``envelope`` durably to every target; the ``platform:subject`` list."""
        wanted = {platform for platform, _ in self.check(envelope)}
        transports = {p: await self._transport(p) for p in sorted(wanted)}
        return await TargetRouter(transports).publish(envelope, durable=True)

    async def close(self) -> None:
        """Close the target brokers this object connected (never the home transport)."""
        async with self._lock:
            owned = [t for t in self._connected.values() if t is not self.home]
            self._connected = {} if self.home is None else {_scheme(self.home.url): self.home}
        for transport in owned:
            await transport.close()
