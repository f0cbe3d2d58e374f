"""The deny list round-trips through the audit trail (what every API replica reloads)."""

from __future__ import annotations

from agentmesh.security.audit import AuditAction, AuditEntry, AuditStatus
from agentmesh.security.revocation import DenyList, record_revocation
from agentmesh.store.audit_log import MemoryAuditStore


async def test_revocations_recorded_in_the_audit_trail_are_reloaded() -> None:
    audit = MemoryAuditStore()
    await audit.connect()
    await record_revocation(audit, jti="j1", actor="ops")
    await record_revocation(audit, kid="k1")
    # a failed revocation attempt is not a revocation
    await audit.append(
        AuditEntry.new(
            AuditAction.SECRET_REVOKED,
            AuditStatus.FAILURE,
            tenant_id="_system",
            resource_type="token",
            resource_id="j2",
        )
    )
    deny = DenyList()
    assert await deny.load(audit) == 2
    assert deny.token_revoked("j1")
    assert not deny.token_revoked("j2")
    assert deny.key_revoked("k1")
    assert not deny.token_revoked(None)
