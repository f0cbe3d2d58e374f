"""Redis ACL users per tenant: what the Redis transport of one tenant may touch.

The Redis transport names everything after the subject, so a tenant's names are patterns:
streams ``am:s:<t>.<kind>``, dedupe keys ``am:dd:am:s:<t>.*``, queue-group keys
``am:qg:<queue>:am.<t>.*`` / ``am:qc:...``, channels ``am.<t>.*`` and
``am:qg-changed:<queue>:am.<t>.*``, reply inboxes ``_INBOX.<t>.*``
(:mod:`agentmesh.transports.redis_inbox`), and its task ledger hashes
``am:ledger:<t>:*`` (the ledger of the Redis transport, or ``TASK_LEDGER_URL=redis://``).
:func:`tenant_rules` is the ``ACL SETUSER`` rule list; an agent then connects with
``redis://<user>:<password>@host:6379/0``.

>>> "~am:s:acme.*" in tenant_rules("acme", "pw")
True
"""

from __future__ import annotations

from typing import Any

from agentmesh import ids

COMMANDS = ("+@all", "-@admin", "-@dangerous", "-@keyspace", "+del", "+exists", "+expire")
"""Data commands only: no CONFIG, ACL, FLUSH*, KEYS, SCAN over the keyspace ..."""


def tenant_user(tenant: str) -> str:
    """The ACL user name of a tenant: ``am-<tenant>``."""
    return f"am-{ids.check_tenant_id(tenant)}"


def tenant_rules(tenant: str, password: str) -> list[str]:
    """``ACL SETUSER`` rules confining a user to ``tenant``'s keys and channels."""
    t = ids.check_tenant_id(tenant)
    return [
        "reset",
        "on",
        f">{password}",
        f"~am:s:{t}.*",
        f"~am:dd:am:s:{t}.*",
        f"~am:qg:*:am.{t}.*",
        f"~am:qc:*:am.{t}.*",
        f"~am:ledger:{t}:*",
        f"&am.{t}.*",
        f"&am:qg-changed:*:am.{t}.*",
        f"&_INBOX.{t}.*",
        *COMMANDS,
    ]


async def grant(r: Any, tenant: str, password: str, *, user: str | None = None) -> str:
    """Create (or reset) the ACL user of ``tenant`` on the Redis client ``r`` (an admin
    connection); returns the user name."""
    name = user or tenant_user(tenant)
    await r.execute_command("ACL", "SETUSER", name, *tenant_rules(tenant, password))
    return name


async def revoke(r: Any, user: str) -> None:
    """Delete the ACL user and close its connections (``ACL DELUSER`` does both)."""
    await r.execute_command("ACL", "DELUSER", user)
