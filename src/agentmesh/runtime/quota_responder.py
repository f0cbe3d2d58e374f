"""The control plane's answer to quota requests (see :mod:`agentmesh.runtime.quota`)."""

from __future__ import annotations

from agentmesh import subjects
from agentmesh.commands import CqrsBus, GrantQuota
from agentmesh.errors import AgentMeshError
from agentmesh.transports import Message, SubscribeOptions, Subscription, Transport

QUOTA_GROUP = "controlplane-quota"


class QuotaResponder:
    """The control plane's side: answers ``quota.request`` of every tenant from the
    plane's own :class:`~agentmesh.commands.quota.QuotaWindow` (through ``GrantQuota``),
    so REST submissions and bus submissions draw on one count per plane."""

    def __init__(self, transport: Transport, bus: CqrsBus) -> None:
        self.transport = transport
        self.bus = bus
        self._sub: Subscription | None = None
        self.answered = 0

    async def start(self) -> None:
        opts = SubscribeOptions(max_in_flight=64, dead_letter=False)
        self._sub = await self.transport.subscribe(
            subjects.quota(), self._answer, queue=QUOTA_GROUP, options=opts
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _answer(self, msg: Message) -> None:
        env = msg.envelope
        want = env.payload.get("want", 1)
        try:
            grant = await self.bus.execute(GrantQuota(env.tenant_id, want))
            body: dict[str, object] = {
                "granted": grant.granted,
                "limit": grant.limit,
                "retry_after": grant.retry_after,
            }
        except AgentMeshError as exc:  # a malformed request: say so, grant nothing
            body = {"granted": 0, "error": str(exc), "retry_after": 0.0}
        self.answered += 1
        await msg.respond(env.reply("quota.grant", body))
