"""The shared key-value buckets (blackboard, swarm) under tenant credentials, raw nats-py.

Tenant b keeps keys in ``AM_BB``; tenant a's agent credentials must not list, watch, get
or put them by any JetStream API request, while a's own keys work: get, put, list and
watch (a named consumer whose filter is in the API subject).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import nats.errors
import nats.js.errors
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from agentmesh.config import Settings
from agentmesh.mesh import Mesh
from agentmesh.patterns.blackboard import Blackboard
from agentmesh.patterns.swarm import SwarmOrchestrator, SwarmWorker
from agentmesh.security.bus_auth import BusAuthConfig
from agentmesh.security.nats_callout import NatsCalloutService
from agentmesh.security.tokens import TokenService
from tests.helpers import eventually, load_example
from tests.integration.bus_tenancy.conftest import Client

pytestmark = pytest.mark.integration

BUCKET, STREAM = "AM_BB", "KV_AM_BB"


def _bucket(js: Any) -> KeyValue:
    """The shared bucket bound as a tenant can (no stream-info request)."""
    return KeyValue(name=BUCKET, stream=STREAM, pre=f"$KV.{BUCKET}.", js=js, direct=True)


async def _api(nc: Any, subject: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """A raw JetStream API request: its JSON answer, or None when nothing answered (the
    server dropped the request as a permissions violation)."""
    try:
        msg = await nc.request(subject, json.dumps(body).encode(), timeout=1.5)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return None
    answer: dict[str, Any] = json.loads(msg.data)
    return answer


def _consumer(filter_subject: str | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "deliver_policy": "last_per_subject",
        "ack_policy": "none",
        "deliver_subject": "_INBOX.x",
        **extra,
    }
    if filter_subject is not None:
        config["filter_subject"] = filter_subject
    return {"stream_name": STREAM, "config": config}


async def test_one_tenant_cannot_list_watch_get_or_put_another_tenants_keys(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, b = tenants
    agent_a = await Client().connect(url, tokens.create("agent-a", a, ["agent"]), a)
    agent_b = await Client().connect(url, tokens.create("agent-b", b, ["agent"]), b)
    nc_a = agent_a.nc
    try:
        js_a, js_b = nc_a.jetstream(timeout=1.5), agent_b.nc.jetstream(timeout=2)
        with_b = await js_b.create_key_value(bucket=BUCKET, history=1, direct=True)
        await with_b.put(f"{b}.main.clues.secret", b"b's secret")
        kv_a = _bucket(js_a)
        await kv_a.put(f"{a}.main.clues.own", b"a's clue")
        everything, b_keys = f"$KV.{BUCKET}.>", f"$KV.{BUCKET}.{b}.>"
        name = "w" + uuid.uuid4().hex[:8]

        # list: stream info with a subjects filter would name every key of the bucket
        assert await _api(nc_a, f"$JS.API.STREAM.INFO.{STREAM}", {"subjects_filter": ">"}) is None
        with pytest.raises(nats.errors.TimeoutError):
            await js_a.key_value(BUCKET)  # nats-py's own binding asks for the stream info
        # watch / list by consumer: no filter, a filter only in the body, or b's filter
        for subject, body in (
            (f"$JS.API.CONSUMER.CREATE.{STREAM}", _consumer(everything)),
            (f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}", _consumer(everything)),
            (f"$JS.API.CONSUMER.DURABLE.CREATE.{STREAM}.{name}", _consumer(everything)),
            (f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}.{b_keys}", _consumer(b_keys)),
            (f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}.{everything}", _consumer(everything)),
        ):
            assert await _api(nc_a, subject, body) is None, subject
        # a's filter in the subject, a wider one in the body: the server refuses it
        own = f"$KV.{BUCKET}.{a}.>"
        for body in (
            _consumer(everything),
            _consumer(None, filter_subjects=[everything]),
            _consumer(own, filter_subjects=[b_keys]),
        ):
            answer = await _api(nc_a, f"$JS.API.CONSUMER.CREATE.{STREAM}.{name}.{own}", body)
            assert answer is not None, body
            assert "error" in answer, (body, answer)
        with pytest.raises(nats.errors.TimeoutError):  # nats-py's watch: filter in the body
            await kv_a.watch(f"{b}.>")
        # get and put of b's key; a direct get on a's subject whose body asks for more
        with pytest.raises(nats.errors.TimeoutError):
            await kv_a.get(f"{b}.main.clues.secret")
        with pytest.raises(nats.errors.TimeoutError):
            await kv_a.put(f"{b}.main.clues.secret", b"forged")
        direct = f"$JS.API.DIRECT.GET.{STREAM}.$KV.{BUCKET}.{a}.main.clues.own"
        for body in (
            {"seq": 1},
            {"last_by_subj": f"$KV.{BUCKET}.{b}.main.clues.secret"},
            {"multi_last": [everything], "batch": 10},
            {"next_by_subj": everything},
        ):
            try:
                msg = await nc_a.request(direct, json.dumps(body).encode(), timeout=1.5)
            except nats.errors.TimeoutError:
                continue
            headers = msg.headers or {}
            assert b"b's secret" not in msg.data, body
            assert b not in str(headers), (body, headers)
            if "Nats-Subject" in headers:  # an answer names a's key and nothing else
                assert headers["Nats-Subject"].startswith(f"$KV.{BUCKET}.{a}."), headers
        assert agent_a.violation(f"$JS.API.STREAM.INFO.{STREAM}")
        assert agent_a.violation(b_keys)
        # b's key is untouched
        assert (await with_b.get(f"{b}.main.clues.secret")).value == b"b's secret"
    finally:
        await agent_a.nc.close()
        await agent_b.nc.close()


async def test_a_tenant_lists_and_watches_its_own_keys(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
) -> None:
    url, _ = auth_server
    a, b = tenants
    agent_a = await Client().connect(url, tokens.create("agent-a", a, ["agent"]), a)
    agent_b = await Client().connect(url, tokens.create("agent-b", b, ["agent"]), b)
    try:
        js_a, js_b = agent_a.nc.jetstream(timeout=2), agent_b.nc.jetstream(timeout=2)
        await js_b.create_key_value(bucket=BUCKET, history=1, direct=True)
        kv_a, kv_b = _bucket(js_a), _bucket(js_b)
        await kv_a.put(f"{a}.main.clues.k1", b"v1")
        await kv_b.put(f"{b}.main.clues.k1", b"b1")
        assert (await kv_a.get(f"{a}.main.clues.k1")).value == b"v1"
        seen: list[tuple[str, bytes]] = []

        async def on_msg(msg: Any) -> None:
            seen.append((msg.subject, msg.data))

        # a named, ordered consumer with a's filter in the API subject (as nats_bind does)
        sub = await js_a.subscribe(
            f"$KV.{BUCKET}.{a}.main.>",
            stream=STREAM,
            cb=on_msg,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            config=ConsumerConfig(name="w" + uuid.uuid4().hex[:8]),
        )
        await eventually(lambda: (f"$KV.{BUCKET}.{a}.main.clues.k1", b"v1") in seen, 5)
        await kv_a.put(f"{a}.main.clues.k2", b"v2")
        await kv_b.put(f"{b}.main.clues.k2", b"b2")
        await eventually(lambda: (f"$KV.{BUCKET}.{a}.main.clues.k2", b"v2") in seen, 5)
        await sub.unsubscribe()
        assert all(subject.startswith(f"$KV.{BUCKET}.{a}.") for subject, _ in seen)
        assert not agent_a.errors
    finally:
        await agent_a.nc.close()
        await agent_b.nc.close()


async def test_the_blackboard_works_under_tenant_credentials(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
    tmp_path: Any,
) -> None:
    """Our blackboard (keys, entries, watch) on the auth server, each tenant its token."""
    url, _ = auth_server
    a, b = tenants
    settings = Settings(agentmesh_data_dir=tmp_path)  # type: ignore[call-arg]
    mesh_a = Mesh(url, tenant=a, settings=settings, bus_token=tokens.create("a", a, ["agent"]))
    mesh_b = Mesh(url, tenant=b, settings=settings, bus_token=tokens.create("b", b, ["agent"]))
    await mesh_a.start(registry=False)
    await mesh_b.start(registry=False)
    try:
        board_a, board_b = Blackboard(mesh_a, writer="a"), Blackboard(mesh_b, writer="b")
        await board_b.write("clues", "k", "b's")
        await board_a.write("clues", "k", "a's")
        changes: list[Any] = []

        async def on_change(entry: Any) -> None:
            changes.append(entry.value)

        watches = await board_a.watch(["clues"], on_change)
        await board_a.write("clues", "k2", "a's second")
        await board_b.write("clues", "k3", "b's second")
        await eventually(lambda: "a's second" in changes, 10, what=str(changes))
        assert {k: e.value for k, e in (await board_a.entries("clues")).items()} == {
            "k": "a's",
            "k2": "a's second",
        }
        assert (await board_b.read("clues", "k")).value == "b's"  # type: ignore[union-attr]
        await asyncio.gather(*(w.stop() for w in watches))
        assert "b's second" not in changes
        assert "b's" not in changes
    finally:
        await mesh_a.stop()
        await mesh_b.stop()


async def test_the_swarm_example_runs_under_tenant_credentials(
    auth_server: tuple[str, BusAuthConfig],
    callout: NatsCalloutService,
    tokens: TokenService,
    tenants: tuple[str, str],
    tmp_path: Any,
) -> None:
    """The swarm's leader lease, jobs and shared knowledge (AM_SWARM: create, update with
    a revision, key listing, a job watch) with an agent token of one tenant."""
    example = load_example("swarm")
    url, _ = auth_server
    a, _ = tenants
    settings = Settings(agentmesh_data_dir=tmp_path)  # type: ignore[call-arg]
    mesh = Mesh(url, tenant=a, settings=settings, bus_token=tokens.create("s", a, ["agent"]))
    mesh.add(SwarmOrchestrator(mesh, "coord-1", swarm_id="build", capabilities="build"))
    for caps in ("compile", "link", "test"):
        mesh.add(
            SwarmWorker(mesh, f"{caps}-1", example.build_step, swarm_id="build", capabilities=caps)
        )
    async with mesh:
        job = await mesh.submit("build", example.BUILD)
        out = await mesh.wait_result(job, timeout=60)
    assert set(out["results"]) == {"compile-core", "compile-cli", "link", "test"}
    assert out["results"]["link"]["from"] == ["core.o", "cli.o"]
