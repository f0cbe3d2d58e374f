"""The seed's rule-based message router, with its order fixed.

For each envelope, in this order:

1. tenant filter: a router bound to a tenant refuses other tenants' envelopes;
2. authentication: ``metadata.token`` must be a valid JWT of the envelope's tenant
   (the seed silently dropped messages without one; here they are refused with a reason);
3. authorization: the message type's required roles (``TaskAssigned`` needs
   ``orchestrator``; ``admin`` may do everything);
4. persistence, only now that the message is authorized (the seed persisted first);
5. advanced routing: a selector may name an agent -> ``nats:am.<t>.inbox.<agent>``;
6. ``metadata.priority == "high"`` -> the ``priority_high`` rule;
7. a rule for ``metadata.type``;
8. otherwise ``routing.targets``.

The token is removed from the copies that are forwarded: credentials do not travel on.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import AgentMeshError, Forbidden, NotFound, Unauthorized, ValidationError
from agentmesh.observability import metrics
from agentmesh.security.rbac import has_role
from agentmesh.security.tokens import TokenService
from agentmesh.transports import Transport
from agentmesh.transports.bridge import parse_target

MESSAGE_ROLES: dict[str, frozenset[str]] = {"TaskAssigned": frozenset({"orchestrator", "admin"})}
"""Roles a message type requires (any of them); types not listed need none."""

Recorder = Callable[[Envelope], Awaitable[None]]
Selector = Callable[[Envelope], str | None]


@dataclass(frozen=True)
class RouteResult:
    """Where one envelope went and why."""

    message_id: str
    targets: list[str]
    rule: str
    agent_id: str | None = None


@dataclass
class MessageRouter:
    """Authorizes, records and forwards envelopes (see the module docstring).

    ``transports`` maps platform names (``nats``, ``kafka`` ...) to connected transports;
    ``rules`` maps a message type (or ``priority_high``) to ``"<platform>:<subject>"``.
    """

    transports: Mapping[str, Transport]
    tokens: TokenService
    tenant: str | None = None
    rules: dict[str, str] = field(default_factory=dict)
    record: Recorder | None = None
    selector: Selector | None = None
    message_roles: Mapping[str, frozenset[str]] = field(default_factory=lambda: dict(MESSAGE_ROLES))

    async def route(self, envelope: Envelope, *, durable: bool = True) -> RouteResult:
        """Route one envelope; raises Unauthorized / Forbidden / ValidationError before any
        side effect when it may not be routed."""
        started = time.perf_counter()
        mtype = envelope.type or "message"
        try:
            self._authorize(envelope, mtype)
            if self.record is not None:
                await self.record(envelope)
            rule, agent_id, targets = self._targets(envelope, mtype)
            forwarded = Envelope.from_dict(envelope.to_dict())
            forwarded.metadata = {k: v for k, v in envelope.metadata.items() if k != "token"}
            for platform, subject in targets:
                transport = self.transports.get(platform)
                if transport is None:
                    known = ", ".join(sorted(self.transports))
                    raise NotFound(
                        f"no transport for platform {platform!r} (known: {known})",
                        code="UNKNOWN_PLATFORM",
                    )
                await transport.publish(subject, forwarded, durable=durable)
        except AgentMeshError as exc:
            metrics.routing_errors.labels(envelope.tenant_id, exc.code.lower()).inc()
            raise
        metrics.messages_routed.labels(envelope.tenant_id, mtype, rule).inc()
        metrics.message_routing_latency.labels(rule, envelope.tenant_id).observe(
            time.perf_counter() - started
        )
        return RouteResult(envelope.id, [f"{p}:{s}" for p, s in targets], rule, agent_id)

    def _authorize(self, envelope: Envelope, mtype: str) -> None:
        if self.tenant is not None and envelope.tenant_id != self.tenant:
            raise Forbidden(
                f"this router serves tenant {self.tenant!r}, not {envelope.tenant_id!r}",
                code="TENANT_MISMATCH",
            )
        token = envelope.metadata.get("token")
        if not isinstance(token, str) or not token:
            raise Unauthorized(
                "message has no metadata.token (a JWT of its tenant)", code="AUTH_REQUIRED"
            )
        claims = self.tokens.verify(token)
        if claims.tenant_id != envelope.tenant_id:
            raise Forbidden(
                f"token of tenant {claims.tenant_id!r} cannot send for {envelope.tenant_id!r}",
                code="TENANT_MISMATCH",
            )
        required = self.message_roles.get(mtype, frozenset())
        if not has_role(claims.roles, required):
            raise Forbidden(
                f"{mtype} messages need one of the roles {sorted(required)}", code="FORBIDDEN"
            )

    def _targets(
        self, envelope: Envelope, mtype: str
    ) -> tuple[str, str | None, list[tuple[str, str]]]:
        tenant = envelope.tenant_id
        if self.selector is not None:
            agent_id = self.selector(envelope)
            if agent_id is not None:
                return "advanced", agent_id, [("nats", subjects.inbox(tenant, agent_id))]
        if envelope.metadata.get("priority") == "high" and "priority_high" in self.rules:
            return "priority_high", None, [parse_target(self.rules["priority_high"], tenant)]
        if mtype in self.rules:
            return "type_rule", None, [parse_target(self.rules[mtype], tenant)]
        targets = envelope.routing.get("targets")
        if not isinstance(targets, list) or not targets:
            raise ValidationError(
                f"message {envelope.id} matches no rule and has no routing.targets", code="NO_ROUTE"
            )
        return "targets", None, [parse_target(str(t), tenant) for t in targets]
