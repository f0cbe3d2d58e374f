"""How :class:`~agentmesh.transports.nats.NatsTransport` connects: credentials, TLS and the
connection callbacks (kept apart from the transport's message handling)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from agentmesh.errors import ConfigError
from agentmesh.security.bus_permissions import client_inbox_prefix

AUTH_HINT = "set AGENTMESH_TOKEN to a token of the tenant, see `agentmesh token create`"


def tls_options(url: str, ca_file: str | None) -> dict[str, Any]:
    """``tls://`` (or a CA file): verify the server against ``ca_file``, else the system's
    trust store."""
    if ca_file is None and not url.startswith("tls://"):
        return {}
    try:
        return {"tls": ssl.create_default_context(cafile=ca_file)}
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the broker CA file {ca_file}: {exc}") from None


class ConnectionEvents:
    """The nats-py callbacks of one transport; remembers a refused token."""

    def __init__(self, url: str, closing: Callable[[], bool]) -> None:
        self.url = url
        self.closing = closing
        self.refused = False
        self.last: Exception | None = None

    async def error(self, exc: Exception) -> None:
        self.last = exc
        if "Authorization Violation" in str(exc):
            if not self.refused:  # once: a revoked or deactivated client keeps retrying
                logger.warning("NATS at {} refused this process's credentials", self.url)
            self.refused = True
            return
        self.refused = False
        logger.debug("nats: {}", exc)

    async def disconnected(self) -> None:
        if not self.closing():
            logger.warning("disconnected from NATS at {}; reconnecting", self.url)

    async def reconnected(self) -> None:
        logger.info("reconnected to NATS at {}", self.url)

    def refusal(self, exc: BaseException, token: str | None) -> str | None:
        """The reason to report when ``exc`` ended a connect because of credentials."""
        if not (self.refused or "Authorization" in str(exc)):
            return None
        hint = "no token" if token is None else "the token was refused"
        return f"authorization violation ({hint}; {AUTH_HINT})"

    def reason(self, exc: BaseException, token: str | None, window: float) -> str:
        """Why a connect failed: refused credentials, or no connection within the connect
        window (with the last error of its attempts, e.g. "Connect call failed")."""
        refused = self.refusal(exc, token)
        if refused is not None:
            return refused
        if isinstance(exc, TimeoutError):
            last = f" (last attempt: {self.last})" if self.last is not None else ""
            return f"no connection within {window:g} s{last}"
        return str(exc) or type(exc).__name__


def connect_options(
    url: str, token: str | None, ca_file: str | None, events: ConnectionEvents
) -> dict[str, Any]:
    """Keyword arguments of ``nats.connect`` for credentials, TLS and callbacks."""
    callbacks: dict[str, Callable[..., Awaitable[None]]] = {
        "error_cb": events.error,
        "disconnected_cb": events.disconnected,
        "reconnected_cb": events.reconnected,
    }
    return {
        **callbacks,
        "token": token,
        "inbox_prefix": client_inbox_prefix(token),
        **tls_options(url, ca_file),
    }
