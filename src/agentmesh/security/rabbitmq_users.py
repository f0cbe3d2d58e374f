"""RabbitMQ users per tenant: resource and topic permissions for the AMQP transport.

The transport publishes every subject as a routing key on the topic exchange
``agentmesh``, consumes durable groups from quorum queues ``am.d.<group>.<subject>``, queue
groups from ``am.q.<group>.<subject>`` and core subscriptions from server-named exclusive
queues (``amq.gen-*``). A tenant's user gets:

* configure / write / read on its own queues, the ``agentmesh`` exchange and exclusive
  queues with generated names (``amq.gen-*`` by the server, ``amq_<uuid hex>`` by
  aio-pika's robust channel): only the connection that declared one may use it;
* topic permissions on ``agentmesh``: it may publish (write) and bind (read) only routing
  keys ``am.<tenant>.*`` and its reply inboxes ``_INBOX.<tenant>.*`` (replies travel on
  the exchange, not the default one, which would reach any queue by name), so it can
  neither send into another tenant's subjects or inboxes nor bind a queue to them.

:func:`grant` and :func:`delete` drive ``rabbitmqctl`` (the management plugin is optional);
an agent then connects with ``amqp://<user>:<password>@host:5672/``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from agentmesh import ids
from agentmesh.errors import ConfigError

EXCHANGE = "agentmesh"


@dataclass(frozen=True)
class TenantPermissions:
    """The regular expressions of ``set_permissions`` and ``set_topic_permissions``."""

    configure: str
    write: str
    read: str
    topic_write: str
    topic_read: str


def tenant_user(tenant: str) -> str:
    """The RabbitMQ user name of a tenant: ``am-<tenant>``."""
    return f"am-{ids.check_tenant_id(tenant)}"


def tenant_permissions(tenant: str) -> TenantPermissions:
    """The permissions confining a user to ``tenant``'s queues and routing keys."""
    t = re.escape(ids.check_tenant_id(tenant))
    queues = rf"am\.[dq]\.[^.]+\.am\.{t}\..*"
    own = rf"^({re.escape(EXCHANGE)}|{queues}|amq\.gen-.*|amq_[0-9a-f]{{32}})$"
    keys = rf"^(am|_INBOX)\.{t}\..*"
    return TenantPermissions(own, own, own, keys, keys)


async def _ctl(*args: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            "rabbitmqctl",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        raise ConfigError(f"rabbitmqctl is not available here: {exc}") from None
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise ConfigError(f"rabbitmqctl {args[0]} failed: {out.decode(errors='replace')[-300:]}")


async def grant(tenant: str, password: str, *, user: str | None = None, vhost: str = "/") -> str:
    """Create ``tenant``'s user (or reset its password) with :func:`tenant_permissions`."""
    name = user or tenant_user(tenant)
    p = tenant_permissions(tenant)
    try:
        await _ctl("add_user", "--", name, password)  # "--": a password may start with "-"
    except ConfigError as exc:
        if "already exists" not in exc.message:
            raise
        await _ctl("change_password", "--", name, password)
    await _ctl("set_permissions", "-p", vhost, "--", name, p.configure, p.write, p.read)
    await _ctl(
        "set_topic_permissions", "-p", vhost, "--", name, EXCHANGE, p.topic_write, p.topic_read
    )
    return name


async def delete(user: str) -> None:
    """Delete the user (RabbitMQ closes its connections)."""
    await _ctl("delete_user", "--", user)
