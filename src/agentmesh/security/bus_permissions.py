"""What a token may do on the NATS bus: subject permissions from tenant and roles.

Every tenant's names carry the tenant: subjects ``am.<t>.>``, JetStream streams
``AM_<t>_<kind>``, key-value keys ``<t>.<...>`` in the shared buckets, and reply inboxes
``_INBOX.<t>.>`` (:func:`inbox_prefix`). The JetStream API puts the stream name (and for a
direct get, the key) in the request subject, so a permission list can scope it too:

* ``agent``, ``orchestrator``, ``task_executor`` and a tenant's ``admin`` publish and
  subscribe on ``am.<t>.>``, use the JetStream API of their own streams, read and write
  their keys, and answer requests (the reply subject of a message they received).
* ``observer`` subscribes to ``am.<t>.>`` and reads streams (consumers, info, direct
  gets), but publishes nothing on ``am.<t>.>`` and may not create, change or delete a
  stream or a key.
* ``admin`` of the platform tenant ``_system`` (the control plane) may do everything.

>>> p = permissions_for("acme", ["agent"])
>>> "am.acme.>" in p.publish_allow and "_INBOX.acme.>" in p.subscribe_allow
True
>>> permissions_for("acme", ["observer"]).publish_allow.count("am.acme.>")
0
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt

from agentmesh import subjects
from agentmesh.security.rbac import PLATFORM_TENANT, Role

STREAM_KINDS = (
    "task",
    "rpc",
    "agent",
    "inbox",
    "evt",
    "hb",
    "bb",
    "mkt",
    "sys",
    "dlq",
    "run",
    "dc",
)
"""Subject kinds that may own a JetStream stream ``AM_<tenant>_<kind>``."""
KV_BUCKETS = ("AM_TASKS", "AM_BB", "AM_SWARM")
"""The key-value buckets the mesh keeps; keys start with the tenant."""
WATCHED_BUCKETS = ("AM_BB", "AM_SWARM")
"""Buckets whose keys are listed or watched (a named consumer, filter in the subject)."""
WRITERS = frozenset({Role.AGENT, Role.ORCHESTRATOR, Role.TASK_EXECUTOR, Role.ADMIN})


def inbox_prefix(tenant: str) -> str:
    """The reply inbox prefix of a tenant's connections: ``_INBOX.<tenant>``."""
    return f"_INBOX.{tenant}"


def token_tenant(token: str) -> str | None:
    """The ``tenant_id`` a token claims, read WITHOUT verifying it (the server verifies):
    a client picks its reply inbox prefix with it."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    tenant = claims.get("tenant_id")
    return tenant if isinstance(tenant, str) else None


def client_inbox_prefix(token: str | None) -> str:
    """The inbox prefix a client with ``token`` subscribes its replies under."""
    tenant = token_tenant(token) if token else None
    if tenant is None or tenant == PLATFORM_TENANT:
        return "_INBOX"
    return inbox_prefix(tenant)


@dataclass(frozen=True)
class BusPermissions:
    """NATS publish/subscribe allow lists (everything else is denied)."""

    publish_allow: list[str] = field(default_factory=list)
    subscribe_allow: list[str] = field(default_factory=list)
    responses: bool = False

    def to_nats(self) -> dict[str, Any]:
        """The ``pub``/``sub``/``resp`` part of a NATS user JWT (an empty allow list
        means "everything" to NATS, so nothing allowed is written as deny ``>``)."""

        def rule(allow: list[str]) -> dict[str, list[str]]:
            return {"allow": allow} if allow else {"deny": [">"]}

        out: dict[str, Any] = {"pub": rule(self.publish_allow), "sub": rule(self.subscribe_allow)}
        if self.responses:
            out["resp"] = {"max": 1, "ttl": 0}
        return out


def _stream_api(stream: str, *, write: bool) -> list[str]:
    if write:
        return [
            f"$JS.API.*.*.{stream}",
            f"$JS.API.*.*.{stream}.>",
            f"$JS.API.*.*.*.{stream}",
            f"$JS.API.*.*.*.{stream}.>",
            f"$JS.ACK.{stream}.>",
        ]
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.*.{stream}",
        f"$JS.API.CONSUMER.*.{stream}.>",
        f"$JS.API.CONSUMER.*.*.{stream}.>",
        f"$JS.ACK.{stream}.>",
    ]


def _kv_api(tenant: str, bucket: str, *, write: bool) -> list[str]:
    """A tenant's rights on a shared bucket: only subjects that name its own keys.

    No stream info (its ``subjects_filter`` lists every key of the bucket) and no consumer
    created by ``$JS.API.CONSUMER.CREATE.<stream>`` (its filter is in the body): watches
    and key listings name their filter in the subject (see :mod:`agentmesh.kv.nats_bind`),
    and the server refuses a body whose filter differs from it.
    """
    stream = f"KV_{bucket}"
    own = f"$KV.{bucket}.{tenant}.>"
    allow = [f"$JS.API.DIRECT.GET.{stream}.{own}"]
    if write:
        allow += [f"$JS.API.STREAM.CREATE.{stream}", own]
    if bucket in WATCHED_BUCKETS:
        allow += [
            f"$JS.API.CONSUMER.CREATE.{stream}.*.{own}",
            f"$JS.API.CONSUMER.DELETE.{stream}.*",
            f"$JS.API.CONSUMER.INFO.{stream}.*",
        ]
    return allow


def permissions_for(tenant: str, roles: Iterable[str]) -> BusPermissions:
    """The bus permissions of a token of ``tenant`` with ``roles``."""
    held = {Role(r) for r in roles}
    if tenant == PLATFORM_TENANT and Role.ADMIN in held:
        return BusPermissions([">"], [">"], responses=True)
    write = bool(held & WRITERS)
    if not write and Role.OBSERVER not in held:
        return BusPermissions()
    own = f"{subjects.PREFIX}.{tenant}.>"
    publish: list[str] = [own] if write else []
    for kind in STREAM_KINDS:
        publish += _stream_api(subjects.stream_name(tenant, kind), write=write)
    for bucket in KV_BUCKETS:
        publish += _kv_api(tenant, bucket, write=write)
    return BusPermissions(publish, [own, f"{inbox_prefix(tenant)}.>"], responses=write)
