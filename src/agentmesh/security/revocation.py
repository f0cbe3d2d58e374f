"""The token deny list: revoked tokens (by ``jti``) and revoked signing keys (by ``kid``).

Every verifier of a :class:`~agentmesh.security.tokens.TokenService` holding the list
refuses a revoked token with 401: REST, the WebSocket handshake (and its live sessions,
which re-check while open) and the message router of the bus.

The list is durable through the audit trail: a revocation is appended as a
``secret_revoked`` entry (``resource_type`` ``token`` or ``signing_key``), and
:meth:`DenyList.load` rebuilds the list from those entries, so every control-plane
replica converges on the same list (the API reloads it every few seconds).

>>> deny = DenyList()
>>> deny.revoke_token("abc")
>>> deny.token_revoked("abc"), deny.key_revoked("k1")
(True, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TOKEN_RESOURCE = "token"
KEY_RESOURCE = "signing_key"


@dataclass
class DenyList:
    """In-memory sets of revoked token ids and key ids (thread-safe enough: set ops)."""

    tokens: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)

    def revoke_token(self, jti: str) -> None:
        """Refuse the token whose ``jti`` is ``jti`` from now on."""
        self.tokens.add(jti)

    def revoke_key(self, kid: str) -> None:
        """Refuse every token signed by the key ``kid`` from now on."""
        self.keys.add(kid)

    def token_revoked(self, jti: str | None) -> bool:
        return jti is not None and jti in self.tokens

    def key_revoked(self, kid: str | None) -> bool:
        return kid is not None and kid in self.keys

    async def load(self, audit: Any) -> int:
        """Add every revocation recorded in the audit store ``audit``; returns their number."""
        from agentmesh.security.audit import AuditAction, AuditFilter

        flt = AuditFilter(action=AuditAction.SECRET_REVOKED.value, status="success")
        entries: list[Any] = []
        while True:
            page, total = await audit.query(flt, limit=500, offset=len(entries))
            entries.extend(page)
            if not page or len(entries) >= total:
                break
        count = 0
        for entry in entries:
            if entry.resource_type == TOKEN_RESOURCE and entry.resource_id:
                self.tokens.add(entry.resource_id)
                count += 1
            elif entry.resource_type == KEY_RESOURCE and entry.resource_id:
                self.keys.add(entry.resource_id)
                count += 1
        return count


async def record_revocation(
    audit: Any, *, jti: str | None = None, kid: str | None = None, actor: str = "cli"
) -> None:
    """Append the durable ``secret_revoked`` entry of a token (``jti``) or key (``kid``)."""
    from agentmesh.security.audit import AuditAction, AuditEntry, AuditStatus
    from agentmesh.security.rbac import PLATFORM_TENANT

    for resource, ident in ((TOKEN_RESOURCE, jti), (KEY_RESOURCE, kid)):
        if ident:
            await audit.append(
                AuditEntry.new(
                    AuditAction.SECRET_REVOKED,
                    AuditStatus.SUCCESS,
                    tenant_id=PLATFORM_TENANT,
                    actor=actor,
                    resource_type=resource,
                    resource_id=ident,
                )
            )
