"""Tenant message quotas for submitters that have only the broker.

``Mesh.submit`` in a notebook or an agent process has no store, so it cannot count the
tenant's ``max_messages_per_hour`` itself. It asks the control plane over the bus
instead (request/reply on :func:`agentmesh.subjects.quota`, ``am.<tenant>.sys.quota``)::

    submitter (QuotaLease)                    control plane (quota_responder.QuotaResponder)
    quota.request {"want": 20}   ------>      GrantQuota -> the plane's QuotaWindow
                                 <------      quota.grant {"granted": n, "limit": L,
                                                           "retry_after": s}

The answer is a *lease*: up to :attr:`QuotaLease.block` messages (more while a submitter
spends them quickly, up to :attr:`QuotaLease.max_block`) taken from the tenant's hour at
once and spent locally, so the hot path asks once per lease, not per task.
Permits a submitter does not spend within :attr:`QuotaLease.ttl` seconds lapse and stay
counted (a submitter may over-count by less than one block). A denial (``granted`` 0)
is remembered until ``retry_after`` (at most :attr:`QuotaLease.deny_ttl` seconds), and
every submit meanwhile raises :class:`~agentmesh.errors.QuotaExceeded` before anything is
published.

With no control plane reachable (no responder, a timeout, a broker without
request/reply) the submit proceeds unmetered, and the lease remembers that for
:attr:`QuotaLease.open_ttl` seconds so the hot path does not pay the timeout again.
"""

from __future__ import annotations

import asyncio
import time

from loguru import logger

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    NoResponders,
    NotSupported,
    QuotaExceeded,
    RequestTimeout,
)
from agentmesh.transports import Transport


class QuotaLease:
    """The submitter's side (one per :class:`~agentmesh.mesh.Mesh`): see the module doc."""

    block = 20
    """Messages asked for at once; doubled (up to :attr:`max_block`) while each lease is
    spent within a second, back to ``block`` when the pace drops."""
    max_block = 200
    ttl = 10.0
    """Seconds a granted lease may be spent."""
    deny_ttl = 5.0
    """At most this long a denial is remembered before asking again."""
    open_ttl = 15.0
    """Seconds submits go unmetered after the control plane was not reachable."""
    timeout = 1.0
    """Seconds to wait for the control plane's answer."""

    def __init__(self, transport: Transport, tenant: str) -> None:
        self.transport = transport
        self.tenant = tenant
        self._permits = 0
        self._expires = 0.0
        self._denied_until = 0.0
        self._retry_at = 0.0
        self._limit: int | None = None
        self._open_until = 0.0
        self._want = self.block
        self._leased_at = 0.0
        self._lock = asyncio.Lock()
        self.asked = 0

    def _spend(self, now: float) -> bool:
        """Use one local permit if the lease allows; raise while a denial holds."""
        if self._permits > 0 and now < self._expires:
            self._permits -= 1
            return True
        if now < self._denied_until:
            raise QuotaExceeded(
                f"tenant {self.tenant} used its {self._limit} messages of the last hour; "
                f"retry in {max(self._retry_at - now, 1.0):.0f} s",
                retry_after=max(self._retry_at - now, 1.0),
            )
        return now < self._open_until

    async def take(self) -> None:
        """Count one submission, or raise :class:`QuotaExceeded` (nothing published)."""
        if self._spend(time.monotonic()):
            return
        async with self._lock:
            if self._spend(time.monotonic()):  # another submit renewed the lease meanwhile
                return
            await self._ask()
            self._spend(time.monotonic())

    async def _ask(self) -> None:
        quick = time.monotonic() - self._leased_at < 1.0  # the last lease went in a second
        self._want = min(self._want * 2, self.max_block) if quick else self.block
        request = Envelope.create(
            "quota.request", {"want": self._want}, tenant_id=self.tenant, source="mesh"
        )
        self.asked += 1
        try:
            reply = await self.transport.request(
                subjects.quota(self.tenant), request, timeout=self.timeout
            )
        except (NoResponders, RequestTimeout, NotSupported) as exc:
            logger.debug("quota: no control plane answers ({}); submitting unmetered", exc)
            self._open_until = time.monotonic() + self.open_ttl
            return
        now = time.monotonic()
        body = reply.payload
        granted = body.get("granted")
        if not isinstance(granted, int) or isinstance(granted, bool):
            logger.warning("quota: malformed answer {!r}; submitting unmetered", body)
            self._open_until = now + self.open_ttl
            return
        limit = body.get("limit")
        if limit is None:  # a tenant the store does not know: not metered
            self._open_until = now + self.open_ttl
            return
        self._limit = int(limit)
        if granted > 0:
            self._permits, self._expires, self._leased_at = granted, now + self.ttl, now
            return
        retry_after = body.get("retry_after")
        wait = float(retry_after) if isinstance(retry_after, int | float) else self.deny_ttl
        self._retry_at = now + max(wait, 1.0)
        self._denied_until = now + min(max(wait, 1.0), self.deny_ttl)
