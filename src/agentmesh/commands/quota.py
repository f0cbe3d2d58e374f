"""Tenant message quotas: ``max_messages_per_hour`` over a sliding hour.

Each control-plane process keeps, per tenant, the tasks submitted in the last hour in
one-minute buckets, seeded once from the task read model; a submission beyond the
tenant's limit raises :class:`~agentmesh.errors.QuotaExceeded` (REST: 429 with
``Retry-After``) before anything is written.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from agentmesh.commands.messages import GrantQuota, QuotaGrant
from agentmesh.domain.events import parse_datetime
from agentmesh.errors import QuotaExceeded, ValidationError
from agentmesh.store.queries import ReadModels

HOUR = 3600.0
BUCKET = 60.0


class QuotaWindow:
    """Sliding-hour counts of submissions per tenant (see the module doc)."""

    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models
        self._buckets: dict[str, OrderedDict[int, int]] = {}

    async def _window(self, tenant_id: str, now: float) -> OrderedDict[int, int]:
        buckets = self._buckets.get(tenant_id)
        if buckets is None:
            buckets = OrderedDict()
            for at in await self.read_models.submitted_since(tenant_id, now - HOUR):
                minute = int(parse_datetime(at, "submitted_at").timestamp() // BUCKET)
                buckets[minute] = buckets.get(minute, 0) + 1
            buckets = OrderedDict(sorted(buckets.items()))
            self._buckets[tenant_id] = buckets
        oldest = int((now - HOUR) // BUCKET)
        while buckets and next(iter(buckets)) <= oldest:
            buckets.popitem(last=False)
        return buckets

    async def take_for(self, tenant_id: str) -> None:
        """Count one submission against the tenant's ``max_messages_per_hour``."""
        doc = await self.read_models.get_tenant(tenant_id)
        if doc is not None:
            await self.take(tenant_id, int(doc["max_messages_per_hour"]))

    async def take_many(self, tenant_id: str, n: int, *, now: float | None = None) -> None:
        """Count ``n`` submissions at once, or none (``QuotaExceeded``) when they do not
        all fit in the tenant's ``max_messages_per_hour``."""
        doc = await self.read_models.get_tenant(tenant_id)
        if doc is None:
            return
        limit = int(doc["max_messages_per_hour"])
        now = time.time() if now is None else now
        buckets = await self._window(tenant_id, now)
        used = sum(buckets.values())
        if used + n > limit:
            first = next(iter(buckets), int(now // BUCKET))
            retry_after = max(1.0, (first + 1) * BUCKET + HOUR - now)
            raise QuotaExceeded(
                f"tenant {tenant_id} has {max(limit - used, 0)} of its {limit} messages of "
                f"the last hour left, a batch of {n} does not fit; retry in {retry_after:.0f} s",
                retry_after=retry_after,
            )
        minute = int(now // BUCKET)
        buckets[minute] = buckets.get(minute, 0) + n

    def give_back(self, tenant_id: str, n: int, *, now: float | None = None) -> None:
        """Undo :meth:`take_many` of a batch that was not written."""
        buckets = self._buckets.get(tenant_id)
        minute = int((time.time() if now is None else now) // BUCKET)
        if buckets is not None and minute in buckets:
            buckets[minute] = max(buckets[minute] - n, 0)

    async def grant(self, cmd: GrantQuota, *, now: float | None = None) -> QuotaGrant:
        """Take up to ``cmd.want`` (1-1000) submissions at once for a bus submitter."""
        if isinstance(cmd.want, bool) or not isinstance(cmd.want, int) or not 1 <= cmd.want <= 1000:
            raise ValidationError(f"a quota request wants 1-1000 messages, got {cmd.want!r}")
        doc = await self.read_models.get_tenant(cmd.tenant_id)
        if doc is None:
            return QuotaGrant(cmd.want)
        limit = int(doc["max_messages_per_hour"])
        granted = 0
        try:
            while granted < cmd.want:
                await self.take(cmd.tenant_id, limit, now=now)
                granted += 1
        except QuotaExceeded as exc:
            return QuotaGrant(granted, limit, 0.0 if granted else exc.retry_after)
        return QuotaGrant(granted, limit)

    async def take(self, tenant_id: str, limit: int, *, now: float | None = None) -> None:
        """Count one submission, or raise :class:`QuotaExceeded` when ``limit`` is used."""
        now = time.time() if now is None else now
        buckets = await self._window(tenant_id, now)
        used = sum(buckets.values())
        if used >= limit:
            first = next(iter(buckets))
            retry_after = max(1.0, (first + 1) * BUCKET + HOUR - now)
            raise QuotaExceeded(
                f"tenant {tenant_id} used its {limit} messages of the last hour; "
                f"retry in {retry_after:.0f} s",
                retry_after=retry_after,
            )
        minute = int(now // BUCKET)
        buckets[minute] = buckets.get(minute, 0) + 1
