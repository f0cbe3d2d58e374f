"""The AsyncAPI 3.0 document: valid against the official schema, every $ref resolves, and
its channels cover every subject a running mesh really publishes to."""

from __future__ import annotations

import asyncio
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentmesh import subjects
from agentmesh.envelope import Envelope
from agentmesh.errors import NonRetryableError
from agentmesh.interop.asyncapi import CHANNELS, asyncapi_document, channel_of
from agentmesh.mesh import Mesh
from agentmesh.transports.memory import MemoryTransport
from tests.helpers import eventually, fast_settings, registry_knows, unique_tenant

SCHEMA = Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json"
CALC = {
    "description": "Evaluates an arithmetic expression",
    "input_schema": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
}


@functools.cache
def _validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(doc)
    ]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"transport_url": "nats://user:secret@127.0.0.1:4222"},
        {"tenant": "acme", "capability_specs": {"calculator": CALC, "odd-name": {}}},
    ],
)
def test_the_document_validates_against_asyncapi_3(kw: dict[str, Any]) -> None:
    doc = asyncapi_document(**kw)
    assert doc["asyncapi"] == "3.0.0"
    assert _errors(doc) == []
    for ref in _refs(doc):
        _resolve(doc, ref)  # KeyError: a dangling reference
    assert "secret" not in json.dumps(doc)  # broker credentials never leak into the document


def test_the_validation_catches_a_broken_document() -> None:
    doc = asyncapi_document()
    doc["channels"]["taskOffer"]["address"] = 42
    doc["operations"]["sendTaskOffer"]["action"] = "publish"
    assert len(_errors(doc)) >= 2


def test_capability_channels_carry_the_declared_payload_schema() -> None:
    doc = asyncapi_document(tenant="acme", capability_specs={"calculator": CALC})
    channel = doc["channels"]["task_calculator"]
    assert channel["address"] == "am.acme.task.calculator"
    (ref,) = (m["$ref"] for m in channel["messages"].values())
    envelope = _resolve(doc, ref)["payload"]
    assert envelope["required"] == [
        "metadata",
        "routing",
        "payload",
        "context",
        "security",
        "tenant_id",
    ]
    assert _resolve(doc, envelope["properties"]["payload"]["$ref"]) == CALC["input_schema"]
    assert channel_of("am.acme.task.calculator", doc) == "task_calculator"
    assert channel_of("am.acme.rpc.calculator", doc) == "rpc_calculator"
    assert channel_of("am.acme.task.other", doc) == "taskOffer"
    # an offer as the mesh really builds it validates against the channel's message schema
    offer = Envelope.create("task.offered", {"expression": "6*7"}, tenant_id="acme")
    resolved = dict(envelope)
    resolved["properties"] = {**envelope["properties"], "payload": CALC["input_schema"]}
    jsonschema.validate(offer.to_dict(), resolved)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(Envelope.create("task.offered", {"x": 1}).to_dict(), resolved)


def test_every_family_has_a_channel_and_addresses_come_from_subjects() -> None:
    doc = asyncapi_document()
    addresses = {doc["channels"][c.key]["address"] for c in CHANNELS}
    assert "am.{tenant}.task.{capability}" in addresses
    assert "am.{tenant}.evt.task.{outcome}.{task_id}" in addresses
    examples = {
        subjects.task("t1", "cap"): "taskOffer",
        subjects.inbox("t1", "agent-1"): "agentInbox",
        subjects.rpc("t1", "cap"): "capabilityRequest",
        subjects.agent("t1", "agent-1"): "agentDirect",
        subjects.heartbeat("t1", "agent-1"): "heartbeat",
        subjects.task_outcome("t1", "task.failed", "x1"): "taskOutcome",
        subjects.task_progress("t1", "retrying", "x1"): "taskProgress",
        subjects.event("t1", "llm.tool_call"): "event",
        subjects.blackboard("t1", "facts"): "blackboard",
        subjects.market("t1", "a1", "bid"): "market",
        subjects.system("t1", "cancel"): "system",
        subjects.quota("t1"): "system",
        subjects.registry_snapshot(): "system",
        subjects.decentralized("t1", "status"): "decentralized",
        subjects.dead_letter(subjects.task("t1", "cap")): "deadLetter",
    }
    for subject, key in examples.items():
        assert channel_of(subject, doc) == key, subject
    assert channel_of("foreign.subject", doc) is None
    assert channel_of("am.t1.nosuchkind.x", doc) is None


class _Recording(MemoryTransport):
    """A memory transport that remembers every subject published or requested to."""

    def __init__(self, url: str, seen: set[str]) -> None:
        super().__init__(url)
        self.seen = seen

    async def publish(self, subject: str, envelope: Envelope, *, durable: bool = False) -> None:
        self.seen.add(subject)
        await super().publish(subject, envelope, durable=durable)

    async def request(self, subject: str, envelope: Envelope, *, timeout: float = 5.0) -> Envelope:
        self.seen.add(subject)
        return await super().request(subject, envelope, timeout=timeout)


async def test_channels_match_the_subjects_a_running_mesh_publishes_to(tmp_path: Path) -> None:
    tenant = unique_tenant()
    seen: set[str] = set()
    url = f"memory://asyncapi-{tenant}"
    settings = fast_settings(tmp_path)
    mesh = Mesh(_Recording(url, seen), tenant=tenant, settings=settings)

    @mesh.agent("calc-1", capabilities=["calculator"], capability_specs={"calculator": CALC})
    async def calc(task: Any) -> dict[str, Any]:
        return {"value": len(task.payload.get("expression", ""))}

    @mesh.agent("broken-1", capabilities=["broken"])
    async def broken(task: Any) -> dict[str, Any]:
        raise NonRetryableError("always fails")

    async with mesh:
        await registry_knows(mesh, "calc-1", "broken-1")
        await mesh.request("calculator", {"expression": "1+1"})
        await mesh.run("calculator", {"expression": "2+2"}, timeout=10)
        inbox_task = await mesh.submit("calculator", {"expression": "3"}, to_agent="calc-1")
        await mesh.wait_result(inbox_task, timeout=10)
        with pytest.raises(Exception, match="always fails"):
            await mesh.run("broken", {}, timeout=10, max_attempts=1)
        await mesh.send("calc-1", {"hello": 1})
        await mesh.control("calc-1", "pause")
        await mesh.control("calc-1", "resume")
        await mesh.cancel("no-such-task")
        await eventually(lambda: any(".hb." in s for s in seen), what="a heartbeat")
        await asyncio.sleep(0)
    specs = {"calculator": CALC}
    doc = asyncapi_document(tenant=tenant, capability_specs=specs)
    assert seen, "nothing was published"
    unmatched = sorted(s for s in seen if subjects.tenant_of(s) and channel_of(s, doc) is None)
    assert unmatched == []
    used = {channel_of(s, doc) for s in seen}
    assert {"task_calculator", "rpc_calculator", "agentInbox", "taskOutcome", "heartbeat"} <= used
    assert {"agentDirect", "system", "taskOffer"} <= used
