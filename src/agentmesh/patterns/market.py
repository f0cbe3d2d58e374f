"""Market-based coordination: the contract net protocol over the broker.

1. The :class:`Auctioneer` publishes a call for proposals on ``am.<t>.mkt.cfp.<capability>``.
2. Every :class:`MarketParticipant` with that capability that wants the task (autonomy
   score, spec 3.4) answers on ``am.<t>.mkt.bid.<auction>`` with a price and an estimated
   time. Prices are dynamic: ``base_price * (1 + load) * (1.5 - reputation)``, where load is
   the share of its slots in use and reputation its success history (settlements it won
   and delivered, Laplace-smoothed). Estimated time grows with load the same way.
3. After the bid window the auctioneer ranks the bids by its award rule (``lowest_price``,
   ``fastest``, ``best_value`` = price x time / reputation, or any callable) and awards the
   best by request on ``am.<t>.mkt.award.<bidder>``; the winner runs the task and the
   reply is its result.
4. A winner that stays silent past ``award_timeout + 2 x its estimate``, or fails, is
   replaced by the next bid. Every award ends in a settlement on
   ``am.<t>.mkt.settle.<auction>`` (price, outcome) that all participants see, so
   reputations (and therefore prices) move with success history.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from loguru import logger

from agentmesh.domain.autonomy import AgentAutonomyService, TaskOffering
from agentmesh.domain.values import AgentStatus
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    AuctionFailed,
    NoResponders,
    RequestTimeout,
    ValidationError,
)
from agentmesh.patterns import names
from agentmesh.runtime.autonomy import AutonomyPolicy
from agentmesh.runtime.context import TaskContext
from agentmesh.transports import Message, Subscription

if TYPE_CHECKING:
    from agentmesh.mesh import Mesh
    from agentmesh.runtime.agent import AgentRuntime


@dataclass(frozen=True, slots=True)
class Bid:
    auction_id: str
    bidder: str
    price: float
    eta_seconds: float
    reputation: float = 0.5
    confidence: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class AuctionResult:
    auction_id: str
    winner: str
    price: float
    result: Any
    bids: list[Bid]
    failed_awards: list[tuple[str, str]] = field(default_factory=list)  # (bidder, why)
    elapsed: float = 0.0


AwardRule = Callable[[Bid], float]
RULES: dict[str, AwardRule] = {
    "lowest_price": lambda b: b.price,
    "fastest": lambda b: b.eta_seconds,
    "best_value": lambda b: b.price * max(b.eta_seconds, 1e-3) / max(b.reputation, 0.05),
}


def rank(bids: Sequence[Bid], rule: str | AwardRule = "best_value") -> list[Bid]:
    """Bids best first under an award rule (ties: bidder id)."""
    key = RULES.get(rule) if isinstance(rule, str) else rule
    if key is None:
        raise ValidationError(f"unknown award rule {rule!r}: use one of {', '.join(RULES)}")
    return sorted(bids, key=lambda b: (key(b), b.bidder))


class Auctioneer:
    """Runs auctions for a mesh's tenant (the manager role of contract net)."""

    def __init__(
        self,
        mesh: Mesh,
        *,
        bid_window: float = 0.5,
        award_rule: str | AwardRule = "best_value",
        award_timeout: float = 2.0,
        max_awards: int = 3,
        name: str = "auctioneer",
    ) -> None:
        rank([], award_rule)  # validates the rule
        self.mesh = mesh
        self.bid_window = bid_window
        self.award_rule = award_rule
        self.award_timeout = award_timeout
        self.max_awards = max_awards
        self.name = name

    async def auction(
        self,
        capability: str,
        payload: dict[str, Any],
        *,
        auction_id: str | None = None,
        max_price: float | None = None,
    ) -> AuctionResult:
        """Call for proposals, award, and settle; raises :class:`AuctionFailed`."""
        t, tenant = self.mesh.transport, self.mesh.tenant
        auction_id = auction_id or uuid.uuid4().hex[:16]
        started = time.monotonic()
        bids: list[Bid] = []

        async def on_bid(msg: Message) -> None:
            p = msg.envelope.payload
            try:
                bids.append(Bid(**{k: p[k] for k in Bid.__dataclass_fields__ if k in p}))
            except (TypeError, ValueError):
                logger.warning("auction {}: malformed bid {}", auction_id, p)

        sub = await t.subscribe(names.bids(tenant, auction_id), on_bid)
        try:
            cfp = Envelope.create(
                "market.cfp",
                {
                    "auction_id": auction_id,
                    "capability": capability,
                    "task": payload,
                    "max_price": max_price,
                },
                tenant_id=tenant,
                source=self.name,
            )
            await t.publish(names.cfp(tenant, capability), cfp)
            await asyncio.sleep(self.bid_window)
        finally:
            await sub.unsubscribe()
        offers = [b for b in bids if b.auction_id == auction_id]
        if max_price is not None:
            offers = [b for b in offers if b.price <= max_price]
        ranked = rank(offers, self.award_rule)
        if not ranked:
            raise AuctionFailed(f"auction {auction_id}: no bid for {capability!r}")
        failed: list[tuple[str, str]] = []
        for bid in ranked[: self.max_awards]:
            ok, value = await self._award(cfp, bid, capability, payload)
            await self._settle(bid, ok, value if not ok else None)
            if ok:
                return AuctionResult(
                    auction_id,
                    bid.bidder,
                    bid.price,
                    value,
                    ranked,
                    failed,
                    time.monotonic() - started,
                )
            failed.append((bid.bidder, str(value)))
            logger.warning(
                "auction {}: {} did not deliver ({}); next bid", auction_id, bid.bidder, value
            )
        raise AuctionFailed(
            f"auction {auction_id}: {len(failed)} awarded bidder(s) failed: "
            + "; ".join(f"{b}: {why}" for b, why in failed),
            ranked,
            failed,
        )

    async def _award(
        self, cfp: Envelope, bid: Bid, capability: str, payload: dict[str, Any]
    ) -> tuple[bool, Any]:
        env = cfp.reply("market.award", dict(payload), source=self.name)
        env.context["auction"] = {
            "auction_id": bid.auction_id,
            "capability": capability,
            "price": bid.price,
        }
        timeout = self.award_timeout + 2 * bid.eta_seconds
        try:
            reply = await self.mesh.transport.request(
                names.award(self.mesh.tenant, bid.bidder), env, timeout=timeout
            )
        except (RequestTimeout, NoResponders) as exc:
            return False, f"silent: {exc}"
        if reply.type != "market.delivered":
            return False, reply.payload.get("error", reply.type)
        return True, reply.payload.get("result")

    async def _settle(self, bid: Bid, ok: bool, error: Any) -> None:
        env = Envelope.create(
            "market.settlement",
            {
                "auction_id": bid.auction_id,
                "bidder": bid.bidder,
                "price": bid.price if ok else 0.0,
                "outcome": "delivered" if ok else "defaulted",
                "error": None if ok else str(error),
            },
            tenant_id=self.mesh.tenant,
            source=self.name,
        )
        with contextlib.suppress(
            Exception
        ):  # the settlement notice is advisory; the award already happened
            await self.mesh.transport.publish(
                names.settlement(self.mesh.tenant, bid.auction_id), env
            )


class MarketParticipant:
    """Makes an agent bid in auctions for its capabilities and deliver what it wins."""

    def __init__(
        self,
        runtime: AgentRuntime,
        *,
        base_price: float = 1.0,
        base_eta: float = 0.5,
        autonomy: AgentAutonomyService | None = None,
    ) -> None:
        self.runtime = runtime
        self.base_price = base_price
        self.base_eta = base_eta
        self.policy = AutonomyPolicy(
            autonomy or AgentAutonomyService(max_concurrent_tasks=runtime.max_concurrent)
        )
        self.delivered = 0
        self.defaulted = 0
        self.earned = 0.0
        self.won = 0
        self._subs: list[Subscription] = []

    @property
    def reputation(self) -> float:
        """Success history in (0, 1): (delivered + 1) / (settled + 2)."""
        return (self.delivered + 1) / (self.delivered + self.defaulted + 2)

    @property
    def load(self) -> float:
        return min(self.runtime.in_flight / max(self.runtime.max_concurrent, 1), 1.0)

    def quote(self, capability: str) -> tuple[float, float]:
        """(price, estimated seconds) from load and reputation."""
        level = self.runtime.capabilities.get(capability, 1)
        factor = (1 + self.load) * (1.5 - self.reputation)
        return (
            round(self.base_price * factor, 4),
            round(self.base_eta * (1 + self.load) * (6 - level) / 3, 4),
        )

    async def start(self) -> None:
        t, r = self.runtime.mesh.transport, self.runtime
        for cap in r.capabilities:
            self._subs.append(await t.subscribe(names.cfp(r.tenant_id, cap), self._on_cfp))
        self._subs.append(await t.subscribe(names.award(r.tenant_id, r.agent_id), self._on_award))
        self._subs.append(await t.subscribe(names.settlements(r.tenant_id), self._on_settlement))

    async def stop(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    async def _on_cfp(self, msg: Message) -> None:
        r, p = self.runtime, msg.envelope.payload
        capability = str(p.get("capability"))
        if (
            r.status not in (AgentStatus.AVAILABLE, AgentStatus.BUSY)
            or capability not in r.capabilities
        ):
            return
        raw_task = p.get("task")
        task: dict[str, Any] = raw_task if isinstance(raw_task, dict) else {}
        try:
            offering = TaskOffering.from_payload(
                str(p.get("auction_id")), {**task, "required_capabilities": [capability]}
            )
        except (TypeError, ValueError):
            offering = TaskOffering(str(p.get("auction_id")), (capability,))
        if not self.policy.evaluate(r, offering).accept:
            return
        price, eta = self.quote(capability)
        max_price = p.get("max_price")
        if isinstance(max_price, int | float) and price > max_price:
            return
        bid = Bid(str(p["auction_id"]), r.agent_id, price, eta, round(self.reputation, 4))
        env = msg.envelope.reply("market.bid", bid.to_dict(), source=r.agent_id)
        await r.mesh.transport.publish(names.bids(r.tenant_id, bid.auction_id), env)

    async def _on_award(self, msg: Message) -> None:
        r, env = self.runtime, msg.envelope
        auction = env.context.get("auction") or {}
        ctx = TaskContext(r, msg, str(auction.get("capability") or ""), "request")
        self.won += 1
        try:
            result = await r.bulkhead.execute(r.invoke, ctx)
        except Exception as exc:  # noqa: BLE001 - a user handler's error is answered as market.failed
            await msg.respond(env.reply("market.failed", {"error": f"{type(exc).__name__}: {exc}"}))
            return
        await msg.respond(env.reply("market.delivered", {"result": result, "bidder": r.agent_id}))

    async def _on_settlement(self, msg: Message) -> None:
        p = msg.envelope.payload
        if p.get("bidder") != self.runtime.agent_id:
            return
        if p.get("outcome") == "delivered":
            self.delivered += 1
            self.earned += float(p.get("price") or 0.0)
        else:
            self.defaulted += 1
