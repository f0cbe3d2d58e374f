"""Security adapters: encryption (:mod:`agentmesh.security.crypto`), tokens and RBAC."""

from agentmesh.security.crypto import DecryptionError, EncryptionService

__all__ = ["DecryptionError", "EncryptionService"]
