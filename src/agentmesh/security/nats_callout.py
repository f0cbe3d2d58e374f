"""The NATS auth callout service: AgentMesh tokens in, tenant-scoped NATS users out.

The server sends every connection attempt (its ``auth_token``) to ``$SYS.REQ.USER.AUTH``;
:class:`NatsCalloutService` verifies the token (signature, expiry, revocation, active
tenant), and answers with a user JWT signed by the issuer key: account ``MESH``,
permissions from :func:`~agentmesh.security.bus_permissions.permissions_for`, expiring
with the token (the server disconnects the client then). A refused connection gets an
error answer and the server closes it. The service remembers which connection
(server id, client id) each token opened, so :meth:`revoke_token` and
:meth:`deactivate_tenant` disconnect them at once through the system account's ``KICK``.

Tokens are never logged: a refusal logs the client's address and the reason only.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
from loguru import logger
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from agentmesh.errors import AgentMeshError, BrokerUnavailable, Unauthorized
from agentmesh.security.bus_auth import BusAuthConfig
from agentmesh.security.bus_permissions import permissions_for
from agentmesh.security.nkeys import KeyPair, decode_jwt, encode_jwt
from agentmesh.security.tokens import Claims, TokenService

AUTH_SUBJECT = "$SYS.REQ.USER.AUTH"
REFUSAL_LOG_INTERVAL = 60.0


@dataclass(frozen=True)
class _Connection:
    server_id: str
    client_id: int
    tenant: str
    token_id: str | None


def _revoked_key(tenant: str, token_id: str) -> str:
    return f"{tenant}/{token_id}"


class NatsCalloutService:
    """Answers the server's auth callout for one :class:`BusAuthConfig`."""

    def __init__(
        self,
        url: str,
        config: BusAuthConfig,
        tokens: TokenService,
        *,
        revoked_file: Path | None = None,
    ) -> None:
        self.url = url
        self.revoked_file = revoked_file
        """Where revoked token ids are kept (one a line) across restarts."""
        self.config = config
        self.tokens = tokens
        self._issuer: KeyPair = config.issuer
        self._auth: NatsClient | None = None
        self._system: NatsClient | None = None
        self._revoked: set[str] = set()
        if revoked_file is not None and revoked_file.exists():
            self._revoked = set(revoked_file.read_text().split())
        self._inactive: set[str] = set()
        self._connections: dict[tuple[str, int], _Connection] = {}
        self._logged: dict[str, float] = {}

    async def start(self) -> None:
        """Connect the callout user and the system user and serve requests."""
        try:
            self._auth = await nats.connect(
                self.url,
                user=self.config.auth_user,
                password=self.config.auth_password,
                name="agentmesh-auth",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            )
            await self._auth.subscribe(AUTH_SUBJECT, cb=self._handle)
            self._system = await nats.connect(
                self.url,
                user=self.config.system_user,
                password=self.config.system_password,
                name="agentmesh-auth-sys",
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            await self.stop()
            raise BrokerUnavailable(
                f"auth callout cannot reach NATS at {self.url}: {exc}"
            ) from None

    async def stop(self) -> None:
        for nc in (self._auth, self._system):
            if nc is not None:
                with contextlib.suppress(Exception):  # closing: the server may be gone already
                    await nc.close()
        self._auth = self._system = None

    # -- decisions ----------------------------------------------------------------------
    def check(self, token: str) -> Claims:
        """The claims of ``token`` if it may connect, else :class:`Unauthorized`."""
        claims = self.tokens.verify(token)
        if claims.token_id is not None and _revoked_key(claims.tenant_id, claims.token_id) in (
            self._revoked
        ):
            raise Unauthorized("token revoked", code="AUTH_REVOKED")
        if claims.tenant_id in self._inactive:
            raise Unauthorized(f"tenant {claims.tenant_id} is deactivated", code="TENANT_INACTIVE")
        return claims

    async def _handle(self, msg: Msg) -> None:
        try:
            request = decode_jwt(msg.data.decode())["nats"]
            server_id = str(request["server_id"]["id"])
            user_nkey = str(request["user_nkey"])
            client = request.get("client_info") or {}
            opts = request.get("connect_opts") or {}
        except (AgentMeshError, KeyError, TypeError, UnicodeDecodeError):
            logger.warning("auth callout: malformed request ignored")
            return
        token = str(opts.get("auth_token") or "")
        try:
            if not token:
                raise Unauthorized("no token", code="AUTH_REQUIRED")
            claims = self.check(token)
        except Unauthorized as exc:
            self._log_refusal(
                f"bus connection from {client.get('host', '?')} refused: {exc.message}"
            )
            await self._respond(msg, user_nkey, server_id, error=exc.message)
            return
        cid = int(client.get("id") or 0)
        self._connections[(server_id, cid)] = _Connection(
            server_id, cid, claims.tenant_id, claims.token_id
        )
        user = {
            "sub": user_nkey,
            "aud": self.config.account,
            "name": claims.subject,
            "exp": int(claims.expires_at.timestamp()),
            "nats": {
                **permissions_for(claims.tenant_id, claims.roles).to_nats(),
                "subs": -1,
                "data": -1,
                "payload": -1,
                "type": "user",
                "version": 2,
            },
        }
        await self._respond(msg, user_nkey, server_id, user_jwt=encode_jwt(user, self._issuer))

    def _log_refusal(self, line: str) -> None:
        """Warn once a minute per distinct refusal: a refused client retries every 0.5 s."""
        now = time.monotonic()
        if now - self._logged.get(line, -REFUSAL_LOG_INTERVAL) >= REFUSAL_LOG_INTERVAL:
            self._logged[line] = now
            logger.warning("{}", line)
        else:
            logger.debug("{}", line)

    async def _respond(
        self, msg: Msg, user_nkey: str, server_id: str, *, user_jwt: str = "", error: str = ""
    ) -> None:
        body: dict[str, Any] = {"type": "authorization_response", "version": 2}
        if user_jwt:
            body["jwt"] = user_jwt
        if error:
            body["error"] = error
        answer = encode_jwt({"sub": user_nkey, "aud": server_id, "nats": body}, self._issuer)
        if self._auth is not None and msg.reply:
            await self._auth.publish(msg.reply, answer.encode())

    # -- revocation ---------------------------------------------------------------------
    async def revoke_token(self, tenant: str, token_id: str) -> int:
        """Refuse ``tenant``'s token ``token_id`` from now on and disconnect its connections
        (their count); a token id of another tenant is left alone."""
        key = _revoked_key(tenant, token_id)
        if key not in self._revoked and self.revoked_file is not None:
            with self.revoked_file.open("a") as fh:
                fh.write(key + "\n")
        self._revoked.add(key)
        return await self._kick(lambda c: c.token_id == token_id and c.tenant == tenant)

    def refuse_tenants(self, tenants: Iterable[str]) -> None:
        """Refuse the tokens of ``tenants`` (deactivated in the store) from now on."""
        self._inactive.update(tenants)

    async def deactivate_tenant(self, tenant: str) -> int:
        """Refuse ``tenant``'s tokens and disconnect its connections (their count)."""
        self._inactive.add(tenant)
        return await self._kick(lambda c: c.tenant == tenant)

    def reactivate_tenant(self, tenant: str) -> None:
        self._inactive.discard(tenant)

    async def _kick(self, match: Any) -> int:
        gone = [c for c in self._connections.values() if match(c)]
        for conn in gone:
            self._connections.pop((conn.server_id, conn.client_id), None)
            if self._system is None:
                continue
            subject = f"$SYS.REQ.SERVER.{conn.server_id}.KICK"
            try:
                await self._system.request(
                    subject, json.dumps({"cid": conn.client_id}).encode(), timeout=2.0
                )
            except (nats.errors.Error, TimeoutError) as exc:
                logger.warning("could not disconnect client {}: {}", conn.client_id, exc)
        logger.info("disconnected {} bus connection(s) at {}", len(gone), datetime.now(UTC))
        return len(gone)
