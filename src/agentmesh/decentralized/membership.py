"""SWIM membership table (pure: the caller passes the time and the random source).

Each member has a state (``alive``, ``suspect``, ``dead``, ``left``) and an incarnation
number that only the member itself raises. Updates follow SWIM's precedence rules (as in
HashiCorp memberlist):

* ``alive(i)`` replaces what we know when ``i`` is higher (a restarted or refuting node);
* ``suspect(i)`` replaces ``alive(j)`` when ``i >= j`` and ``suspect(j)`` when ``i > j``;
* ``dead(i)`` / ``left(i)`` replace ``alive``/``suspect`` with ``j <= i``;
* news about ourselves that says suspect or dead is refuted: our incarnation goes above
  it and ``alive`` is spread instead.

Every accepted change is news: it rides on the next outgoing messages (infection-style)
until it has been sent ``retransmit_factor x ceil(log2(n + 1))`` times.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

ALIVE, SUSPECT, DEAD, LEFT = "alive", "suspect", "dead", "left"
STATES = (ALIVE, SUSPECT, DEAD, LEFT)


@dataclass(slots=True)
class Member:
    """One member as this node sees it (``since``: when its state last changed;
    ``suspected``: when this node last learned it was suspect)."""

    address: str
    state: str
    incarnation: int
    agent_id: str | None
    since: float
    suspected: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "state": self.state,
            "incarnation": self.incarnation,
            "agent_id": self.agent_id,
            "since": round(self.since, 3),
            "suspected": None if self.suspected is None else round(self.suspected, 3),
        }


class Membership:
    """The member table of one node, its news queue and its probe order."""

    def __init__(
        self,
        me: str,
        *,
        agent_id: str | None,
        incarnation: int,
        now: float,
        seeds: list[str],
        rng: random.Random | None = None,
        retransmit_factor: int = 3,
    ) -> None:
        self.me = me
        self.rng = rng or random.Random()
        self.retransmit_factor = retransmit_factor
        self.members: dict[str, Member] = {me: Member(me, ALIVE, incarnation, agent_id, now)}
        for seed in seeds:
            if seed != me:
                # known by configuration, not heard yet: probed like any member
                self.members[seed] = Member(seed, ALIVE, 0, None, now)
        self._news: dict[str, int] = {me: 0}  # address -> transmissions so far
        self._probe_queue: list[str] = []

    @property
    def incarnation(self) -> int:
        return self.members[self.me].incarnation

    # -- updates ------------------------------------------------------------------------
    def update(self, news: dict[str, Any], now: float) -> bool:
        """Merge one piece of news (``{address, state, incarnation, agent_id}``);
        True when it changed the table (and so is spread further)."""
        addr, state = news.get("address"), news.get("state")
        inc = news.get("incarnation")
        if not isinstance(addr, str) or state not in STATES or not isinstance(inc, int):
            return False
        agent_id = news.get("agent_id") if isinstance(news.get("agent_id"), str) else None
        if addr == self.me:
            return self._about_me(state, inc, now)
        cur = self.members.get(addr)
        if cur is None:
            if state in (DEAD, LEFT) and inc == 0:
                return False
            self.members[addr] = Member(addr, state, inc, agent_id, now)
            self._news[addr] = 0
            return True
        accept = False
        if state == ALIVE:
            accept = inc > cur.incarnation
        elif state == SUSPECT:
            accept = cur.state in (ALIVE, SUSPECT) and (
                inc > cur.incarnation or (inc == cur.incarnation and cur.state == ALIVE)
            )
        else:  # dead / left
            accept = cur.state in (ALIVE, SUSPECT) and inc >= cur.incarnation
            accept = accept or (cur.state == DEAD and state == LEFT and inc >= cur.incarnation)
        if not accept:
            if agent_id and cur.agent_id is None:
                cur.agent_id = agent_id
            return False
        if cur.state != state:
            cur.since = now
            if state == SUSPECT:
                cur.suspected = now
        cur.state, cur.incarnation = state, inc
        cur.agent_id = agent_id or cur.agent_id
        self._news[addr] = 0
        return True

    def _about_me(self, state: str, inc: int, now: float) -> bool:
        me = self.members[self.me]
        if state in (SUSPECT, DEAD) and inc >= me.incarnation and me.state == ALIVE:
            me.incarnation = inc + 1  # refute
            self._news[self.me] = 0
            return True
        return False

    def suspect(self, addr: str, now: float) -> bool:
        """A probe of ``addr`` failed (directly and through others)."""
        cur = self.members.get(addr)
        if cur is None or cur.state != ALIVE or addr == self.me:
            return False
        return self.update({"address": addr, "state": SUSPECT, "incarnation": cur.incarnation}, now)

    def alive_heard(self, addr: str, incarnation: int, agent_id: str | None, now: float) -> bool:
        """A member answered or spoke to us itself: first-hand proof that it is alive."""
        return self.update(
            {"address": addr, "state": ALIVE, "incarnation": incarnation, "agent_id": agent_id},
            now,
        )

    def expire(self, now: float, suspicion: float) -> list[str]:
        """Suspects that did not refute within ``suspicion`` seconds become dead."""
        dead = [
            m.address
            for m in self.members.values()
            if m.state == SUSPECT and now - m.since >= suspicion
        ]
        for addr in dead:
            m = self.members[addr]
            self.update({"address": addr, "state": DEAD, "incarnation": m.incarnation}, now)
        return dead

    def leave(self, now: float) -> None:
        """Announce a graceful departure."""
        me = self.members[self.me]
        me.state, me.since = LEFT, now
        self._news[self.me] = 0

    # -- dissemination ------------------------------------------------------------------
    def news(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` pieces of news for one outgoing message (least sent first)."""
        live = sum(1 for m in self.members.values() if m.state in (ALIVE, SUSPECT))
        budget = self.retransmit_factor * max(1, math.ceil(math.log2(live + 1)))
        picked = sorted(self._news.items(), key=lambda kv: kv[1])[:limit]
        out = []
        for addr, sent in picked:
            out.append(self._record(addr))
            if sent + 1 >= budget and addr != self.me:
                del self._news[addr]
            else:
                self._news[addr] = sent + 1
        if self.me in self._news and self._news[self.me] >= budget:
            del self._news[self.me]
        return out

    def has_news(self) -> bool:
        return bool(self._news)

    def _record(self, addr: str) -> dict[str, Any]:
        m = self.members[addr]
        return {
            "address": m.address,
            "state": m.state,
            "incarnation": m.incarnation,
            "agent_id": m.agent_id,
        }

    def myself(self) -> dict[str, Any]:
        return self._record(self.me)

    # -- choosing peers -----------------------------------------------------------------
    def reachable(self) -> list[str]:
        """Members worth talking to: alive or suspect, not us."""
        return [a for a, m in self.members.items() if a != self.me and m.state in (ALIVE, SUSPECT)]

    def next_probe(self) -> str | None:
        """SWIM's round-robin over a shuffled member list (each member probed once a round)."""
        while self._probe_queue:
            addr = self._probe_queue.pop()
            m = self.members.get(addr)
            if m is not None and m.state in (ALIVE, SUSPECT):
                return addr
        self._probe_queue = self.reachable()
        self.rng.shuffle(self._probe_queue)
        return self._probe_queue.pop() if self._probe_queue else None

    def pick(self, k: int, exclude: tuple[str, ...] = ()) -> list[str]:
        """Up to ``k`` random reachable members (the fan-out)."""
        pool = [a for a in self.reachable() if a not in exclude]
        return self.rng.sample(pool, min(k, len(pool)))

    def view(self) -> list[dict[str, Any]]:
        return [self.members[a].to_dict() for a in sorted(self.members)]

    def state_of(self, addr: str) -> str | None:
        m = self.members.get(addr)
        return m.state if m else None
