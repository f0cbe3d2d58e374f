"""The seam between the control plane and whoever enforces tenancy on the broker."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class BusGuard(Protocol):
    """Refuses and disconnects bus clients (the NATS auth callout implements it).

    Each method returns how many live connections it closed.
    """

    async def deactivate_tenant(self, tenant: str) -> int:
        """Refuse ``tenant``'s tokens from now on and disconnect its clients."""
        ...

    def reactivate_tenant(self, tenant: str) -> None:
        """Accept ``tenant``'s tokens again."""
        ...

    async def revoke_token(self, tenant: str, token_id: str) -> int:
        """Refuse ``tenant``'s token ``token_id`` (its ``jti``) and disconnect its clients."""
        ...
