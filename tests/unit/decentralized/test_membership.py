"""SWIM membership: precedence rules, refutation, suspicion timeout, dissemination."""

from __future__ import annotations

import random

from agentmesh.decentralized.membership import ALIVE, DEAD, LEFT, SUSPECT, Membership

A, B, C = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"


def table(now: float = 0.0) -> Membership:
    return Membership(A, agent_id="a", incarnation=10, now=now, seeds=[B, C], rng=random.Random(1))


def news(addr: str, state: str, inc: int) -> dict[str, object]:
    return {"address": addr, "state": state, "incarnation": inc, "agent_id": None}


def test_precedence_of_alive_suspect_and_dead() -> None:
    t = table()
    assert t.alive_heard(B, 5, "b", 1.0)  # first word from a seed: incarnation 0 -> 5
    assert not t.update(news(B, ALIVE, 5), 1.1)  # same incarnation: no news
    assert t.update(news(B, SUSPECT, 5), 1.2)  # suspect(i) beats alive(i)
    assert not t.update(news(B, SUSPECT, 5), 1.3)
    assert t.update(news(B, ALIVE, 6), 1.4)  # the member refuted with a higher incarnation
    assert t.state_of(B) == ALIVE
    assert not t.update(news(B, DEAD, 5), 1.5)  # stale death
    assert t.update(news(B, DEAD, 6), 1.6)
    assert not t.update(news(B, ALIVE, 6), 1.7)  # dead is not undone at the same incarnation
    assert t.update(news(B, ALIVE, 7), 1.8)  # a restarted member comes back
    assert t.members[B].since == 1.8


def test_news_about_ourselves_is_refuted_with_a_higher_incarnation() -> None:
    t = table()
    assert t.update(news(A, SUSPECT, 10), 1.0)
    assert t.incarnation == 11
    assert t.state_of(A) == ALIVE
    assert t.myself()["incarnation"] == 11
    assert any(n["address"] == A and n["incarnation"] == 11 for n in t.news(16))
    assert not t.update(news(A, SUSPECT, 3), 2.0)  # older news: nothing to refute


def test_a_suspect_becomes_dead_after_the_suspicion_timeout_unless_it_refutes() -> None:
    t = table()
    t.alive_heard(B, 1, "b", 0.0)
    t.alive_heard(C, 1, "c", 0.0)
    assert t.suspect(B, 10.0)
    assert t.suspect(C, 10.0)
    assert t.expire(11.0, suspicion=1.5) == []
    t.update(news(C, ALIVE, 2), 11.2)  # C refutes in time
    assert t.expire(11.5, suspicion=1.5) == [B]
    assert t.state_of(B) == DEAD
    assert t.state_of(C) == ALIVE


def test_news_spreads_a_bounded_number_of_times() -> None:
    t = table()
    t.alive_heard(B, 1, "b", 0.0)
    sent = 0
    while t.has_news() and sent < 100:
        assert len(t.news(2)) <= 2
        sent += 1
    assert not t.has_news()
    assert sent < 100


def test_probe_order_visits_every_reachable_member_each_round_and_skips_the_dead() -> None:
    t = table()
    first_round = {t.next_probe(), t.next_probe()}
    assert first_round == {B, C}
    t.update(news(C, DEAD, 0), 1.0)
    assert {t.next_probe() for _ in range(4)} == {B}
    assert t.pick(3) == [B]
    assert t.pick(3, exclude=(B,)) == []


def test_a_graceful_leave_is_news_and_final() -> None:
    t = table()
    t.leave(5.0)
    assert t.state_of(A) == LEFT
    other = Membership(B, agent_id="b", incarnation=1, now=0, seeds=[A])
    other.update(t.myself(), 5.1)
    assert other.state_of(A) == LEFT
    assert A not in other.reachable()


def test_garbage_news_is_ignored() -> None:
    t = table()
    assert not t.update({"address": B, "state": "zombie", "incarnation": 1}, 1.0)
    assert not t.update({"address": 5, "state": ALIVE, "incarnation": 1}, 1.0)
    assert not t.update(news("127.0.0.1:9", DEAD, 0), 1.0)  # death of a stranger
