"""The rule-based router of spec 3.2: authorize before persisting, then rules in order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from agentmesh import Envelope, subjects
from agentmesh.errors import Forbidden, Unauthorized, ValidationError
from agentmesh.runtime.message_router import MessageRouter
from agentmesh.security.tokens import TokenConfig, TokenService
from agentmesh.transports import Transport, create_transport
from tests.helpers import Collector

TOKENS = TokenService(TokenConfig(secret="s" * 32))


@pytest.fixture
async def brokers() -> AsyncIterator[dict[str, Transport]]:
    name = uuid.uuid4().hex
    nats_like, kafka_like = (
        create_transport(f"memory://{name}-a"),
        create_transport(f"memory://{name}-b"),
    )
    await nats_like.connect()
    await kafka_like.connect()
    yield {"nats": nats_like, "kafka": kafka_like}
    await nats_like.close()
    await kafka_like.close()


def message(
    mtype: str,
    *,
    tenant: str = "acme",
    roles: tuple[str, ...] = ("agent",),
    token: bool = True,
    **metadata: object,
) -> Envelope:
    env = Envelope.create(
        mtype,
        {"x": 1},
        tenant_id=tenant,
        routing={"targets": ["kafka:am.acme.evt.out"]},
        **metadata,
    )
    if token:
        env.metadata["token"] = TOKENS.create("sender", tenant, roles)
    return env


async def test_refused_messages_are_never_persisted(brokers: dict[str, Transport]) -> None:
    recorded: list[str] = []

    async def record(env: Envelope) -> None:
        recorded.append(env.id)

    router = MessageRouter(brokers, TOKENS, tenant="acme", record=record)
    with pytest.raises(Unauthorized, match=r"no metadata\.token"):
        await router.route(message("event", token=False))
    with pytest.raises(Forbidden, match="serves tenant 'acme'"):
        await router.route(message("event", tenant="other"))
    forged = message("event")
    forged.metadata["token"] = TOKENS.create("sender", "other", ["admin"])
    with pytest.raises(Forbidden, match="token of tenant 'other'"):
        await router.route(forged)
    with pytest.raises(Forbidden, match="need one of the roles"):
        await router.route(message("TaskAssigned", roles=("agent",)))
    tampered = message("event")
    tampered.metadata["token"] = str(tampered.metadata["token"])[:-2] + "xx"
    with pytest.raises(Unauthorized):
        await router.route(tampered)
    assert recorded == []
    ok = message("TaskAssigned", roles=("orchestrator",))
    await router.route(ok)
    assert recorded == [ok.id]


async def test_rules_apply_in_the_seed_order_and_the_token_does_not_travel(
    brokers: dict[str, Transport],
) -> None:
    got_nats, got_kafka = Collector(), Collector()
    await brokers["nats"].subscribe("am.acme.>", got_nats)
    await brokers["kafka"].subscribe("am.acme.>", got_kafka)
    chosen: dict[str, str | None] = {"agent": None}
    router = MessageRouter(
        brokers,
        TOKENS,
        rules={
            "priority_high": "nats:am.acme.evt.urgent",
            "invoice.created": "kafka:am.acme.evt.billing",
        },
        selector=lambda env: chosen["agent"],
    )
    high = await router.route(message("invoice.created", priority="high"))
    assert (high.rule, high.targets) == ("priority_high", ["nats:am.acme.evt.urgent"])
    typed = await router.route(message("invoice.created"))
    assert (typed.rule, typed.targets) == ("type_rule", ["kafka:am.acme.evt.billing"])
    plain = await router.route(message("something.else"))
    assert (plain.rule, plain.targets) == ("targets", ["kafka:am.acme.evt.out"])
    chosen["agent"] = "agent-7"
    routed = await router.route(message("invoice.created", priority="high"))
    assert (routed.rule, routed.agent_id) == ("advanced", "agent-7")
    assert routed.targets == [f"nats:{subjects.inbox('acme', 'agent-7')}"]
    await got_nats.wait_for(2)
    await got_kafka.wait_for(2)
    for msg in [*got_nats.messages, *got_kafka.messages]:
        assert "token" not in msg.envelope.metadata
    assert {m.subject for m in got_nats.messages} == {"am.acme.evt.urgent", "am.acme.inbox.agent-7"}
    chosen["agent"] = None
    lonely = message("lonely")
    lonely.routing = {}
    with pytest.raises(ValidationError, match="matches no rule"):
        await router.route(lonely)
