"""An AsyncAPI 3.0 document of the mesh: every subject family, the envelope, the payloads.

The channel addresses are built by the helpers of :mod:`agentmesh.subjects` themselves
(called with placeholder values that become ``{parameters}``), so the document cannot
drift from the subjects the code publishes to. Every message is the six-key envelope;
a capability whose agents declared an ``input_schema`` (see
:mod:`agentmesh.runtime.capability_specs`) gets channels of its own whose offer and
request messages carry that schema as their ``payload``::

    doc = asyncapi_document(tenant="acme", capability_specs={"calculator": {...}})
    channel_of("am.acme.task.calculator", doc)   # -> "task_calculator"

Served at ``/asyncapi.json`` (the generic document) and
``/v1/tenants/{tenant_id}/asyncapi.json`` (with the tenant's live capabilities), and
printed by ``agentmesh asyncapi``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agentmesh import subjects
from agentmesh.envelope import KEYS

ASYNCAPI_VERSION = "3.0.0"
DOC_VERSION = "1.0.0"
_ONE = r"[^.]+"
_MANY = r"[^.]+(?:\.[^.]+)*"

#: placeholder value -> (parameter name, description, matches several dot-separated tokens)
_PARAMS: dict[str, tuple[str, str, bool]] = {
    "ptenant": ("tenant", "Tenant id (1-64 letters, digits, '-' or '_').", False),
    "pcapability": ("capability", "Capability name.", False),
    "pagent": ("agent_id", "Agent id.", False),
    "ptaskid": ("task_id", "Task id.", False),
    "pdomain": ("domain", "Blackboard domain.", False),
    "pname": ("name", "Control subject name (cancel, safety, quota, registry ...).", False),
    "pevent": ("event_type", "Event type; may hold dots (task.completed, llm.progress).", True),
    "pmarket": ("path", "Market subject parts (auction id, bid, award ...), dot-separated.", True),
    "pdead": ("subject", "The rest of the dead-lettered subject, dot-separated.", True),
}
_ENUMS: dict[str, list[str]] = {
    "outcome": [o.split(".", 1)[1] for o in subjects.TASK_OUTCOMES],
    "progress": list(subjects.TASK_PROGRESS),
}


@dataclass(frozen=True, slots=True)
class _Channel:
    key: str
    build: Callable[[], str]
    title: str
    description: str
    messages: tuple[str, ...]
    send: bool = True
    receive: bool = True


def _dead_letter() -> str:
    return subjects.dead_letter(subjects.task("ptenant", "pdead")).replace(".task.pdead", ".pdead")


# Order matters for :func:`channel_of`: specific addresses before general ones.
CHANNELS: tuple[_Channel, ...] = (
    _Channel(
        "taskOutcome",
        lambda: subjects.task_outcome("ptenant", "task.completed", "ptaskid").replace(
            ".task.completed.", ".task.{outcome}."
        ),
        "Task outcome",
        "The durable outcome of one task (completed, failed, cancelled, rejected).",
        ("taskOutcome",),
    ),
    _Channel(
        "taskOffer",
        lambda: subjects.task("ptenant", "pcapability"),
        "Capability work queue",
        "Durable work queue of a capability: the agents with it compete for each offer.",
        ("taskOffered",),
    ),
    _Channel(
        "agentInbox",
        lambda: subjects.inbox("ptenant", "pagent"),
        "Agent inbox",
        "Durable inbox of one agent (routed dispatch, to_agent).",
        ("taskOffered",),
    ),
    _Channel(
        "capabilityRequest",
        lambda: subjects.rpc("ptenant", "pcapability"),
        "Capability request/reply",
        "Request/reply endpoint of a capability (not durable); answered by task.result or "
        "task.error on the requester's reply subject.",
        ("taskRequest",),
    ),
    _Channel(
        "agentDirect",
        lambda: subjects.agent("ptenant", "pagent"),
        "Agent direct",
        "Direct request/reply subject of one agent (messages, pause/resume/stop).",
        ("agentMessage",),
    ),
    _Channel(
        "taskProgress",
        lambda: subjects.task_progress("ptenant", "started", "ptaskid").replace(
            ".run.started.", ".run.{progress}."
        ),
        "Task progress",
        "An agent started a task or will retry it (not stored).",
        ("taskProgress",),
    ),
    _Channel(
        "event",
        lambda: subjects.event("ptenant", "pevent"),
        "Events",
        "Domain and integration events (llm.progress, llm.tool_call, safety.*, swarm.* ...).",
        ("event",),
    ),
    _Channel(
        "heartbeat",
        lambda: subjects.heartbeat("ptenant", "pagent"),
        "Heartbeats",
        "Periodic agent heartbeat: status, load, capabilities and their specs.",
        ("heartbeat",),
    ),
    _Channel(
        "blackboard",
        lambda: subjects.blackboard("ptenant", "pdomain"),
        "Blackboard",
        "Blackboard pattern: entries of one knowledge domain.",
        ("event",),
    ),
    _Channel(
        "market",
        lambda: subjects.market("ptenant", "pmarket"),
        "Market",
        "Contract-net market: announcements, bids, awards.",
        ("event",),
    ),
    _Channel(
        "system",
        lambda: subjects.system("ptenant", "pname"),
        "Control",
        "Control subjects of a tenant: cancel, safety, quota, safety-policy, registry ... "
        f"(tenant {subjects.SYSTEM_TENANT!r}: mesh-wide admin subjects).",
        ("event",),
    ),
    _Channel(
        "decentralized",
        lambda: subjects.decentralized("ptenant", "pname"),
        "Decentralized agents",
        "Requests to every decentralized agent of a tenant and their scatter-gather replies.",
        ("event",),
    ),
    _Channel(
        "deadLetter",
        _dead_letter,
        "Dead letters",
        "Messages no agent could process (malformed, or out of attempts), with the error.",
        ("event",),
    ),
)


def _address(raw: str) -> str:
    for value, (name, _, _) in _PARAMS.items():
        raw = raw.replace(value, "{" + name + "}")
    return raw


def _parameters(address: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in re.findall(r"\{(\w+)\}", address):
        if name in _ENUMS:
            out[name] = {"description": f"One of {', '.join(_ENUMS[name])}.", "enum": _ENUMS[name]}
            continue
        desc = next(d for (n, d, _) in _PARAMS.values() if n == name)
        out[name] = {"description": desc}
    return out


def envelope_schema(payload: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of the wire envelope (``payload``: the schema of its payload)."""
    obj: dict[str, Any] = {"type": "object"}
    return {
        "type": "object",
        "description": "AgentMesh envelope: UTF-8 JSON with exactly six keys.",
        "required": list(KEYS),
        "additionalProperties": False,
        "properties": {
            "metadata": {
                "type": "object",
                "required": ["id", "timestamp"],
                "properties": {
                    "id": {"type": "string", "description": "uuid; the dedupe key"},
                    "timestamp": {"type": "string", "format": "date-time"},
                    "type": {"type": "string", "description": "message type (task.offered ...)"},
                    "source": {"type": "string"},
                    "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                    "timeout_seconds": {"type": "number"},
                    "max_attempts": {"type": "integer"},
                    "parent_task_id": {"type": "string"},
                },
            },
            "routing": {
                "type": "object",
                "properties": {
                    "required_capabilities": {"type": "array", "items": {"type": "string"}},
                    "destination": {"type": "string"},
                    "reply_to": {"type": "string"},
                },
            },
            "payload": dict(payload) if payload is not None else obj,
            "context": {
                "type": "object",
                "properties": {
                    "correlation_id": {"type": "string"},
                    "causation_id": {"type": "string"},
                    "traceparent": {"type": "string"},
                },
            },
            "security": {
                "type": "object",
                "properties": {
                    "encrypted": {"type": "boolean"},
                    "signature": {"type": "string"},
                },
            },
            "tenant_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        },
    }


_MESSAGES: dict[str, tuple[str, str]] = {
    "taskOffered": ("task.offered", "A durable task offered to the agents of a capability."),
    "taskRequest": ("task.request", "A request to any agent of a capability."),
    "taskOutcome": ("task.completed", "A task's outcome (task.completed/failed/cancelled/...)."),
    "taskProgress": ("task.started", "A task started, or will be retried."),
    "agentMessage": ("agent.message", "A direct message or control request to one agent."),
    "heartbeat": ("agent.heartbeat", "An agent's heartbeat."),
    "event": ("event", "Any event; metadata.type names it."),
}


def _server(transport_url: str) -> dict[str, Any] | None:
    parts = urlsplit(transport_url)
    scheme = parts.scheme.split("+")[0]
    if not scheme or scheme == "memory" or not parts.netloc:
        return None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return {
        "host": host,
        "protocol": scheme,
        "description": "The broker of this mesh (every transport maps the same subjects).",
    }


def asyncapi_document(
    *,
    tenant: str | None = None,
    capability_specs: Mapping[str, Mapping[str, Any]] | None = None,
    transport_url: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the mesh.

    ``tenant``: fill the ``{tenant}`` parameter of the capability channels with it;
    ``capability_specs``: ``{capability: {"description", "input_schema"}}`` (as agents
    declare them) adds a channel pair per capability with its payload schema;
    ``transport_url``: describe the broker as the document's server.
    """
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Envelope": envelope_schema()}
    for name, (mtype, summary) in _MESSAGES.items():
        messages[name] = {
            "name": mtype,
            "summary": summary,
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/Envelope"},
        }
    for ch in CHANNELS:
        address = _address(ch.build())
        channels[ch.key] = {
            "address": address,
            "title": ch.title,
            "description": ch.description,
            "parameters": _parameters(address),
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in ch.messages},
        }
        _operations(operations, ch.key, ch.messages, ch.send, ch.receive)
    for cap, spec in sorted((capability_specs or {}).items()):
        _capability_channels(channels, operations, messages, schemas, tenant, cap, spec)
    doc: dict[str, Any] = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "AgentMesh" + (f" - tenant {tenant}" if tenant else ""),
            "version": DOC_VERSION,
            "description": (
                "Subjects and messages of an AgentMesh mesh. Every transport (NATS, Kafka, "
                "Pub/Sub, Pulsar, SNS/SQS, Redis, RabbitMQ) carries the same subjects, "
                "mapped onto its own topics or queues, and the same envelope."
            ),
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
        },
    }
    server = _server(transport_url) if transport_url else None
    if server is not None:
        doc["servers"] = {"broker": server}
    return doc


def _operations(
    operations: dict[str, Any], key: str, msgs: tuple[str, ...], send: bool, receive: bool
) -> None:
    refs = [{"$ref": f"#/channels/{key}/messages/{m}"} for m in msgs]
    for action, on in (("send", send), ("receive", receive)):
        if on:
            operations[f"{action}{key[0].upper()}{key[1:]}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{key}"},
                "messages": refs,
            }


def _capability_channels(
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
    schemas: dict[str, Any],
    tenant: str | None,
    cap: str,
    spec: Mapping[str, Any],
) -> None:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", cap)
    payload = dict(spec.get("input_schema") or {"type": "object"})
    description = str(spec.get("description") or f"The capability {cap!r}.")
    schema_name = f"{safe}_input"
    doc_tenant = tenant or "ptenant"
    for kind, build, mtype in (
        ("task", subjects.task, "task.offered"),
        ("rpc", subjects.rpc, "task.request"),
    ):
        key = f"{kind}_{safe}"
        message = f"{key}_message"
        messages[message] = {
            "name": mtype,
            "summary": description,
            "contentType": "application/json",
            "payload": envelope_schema({"$ref": f"#/components/schemas/{schema_name}"}),
        }
        address = _address(build(doc_tenant, cap))
        channels[key] = {
            "address": address,
            "title": f"{cap} ({'durable tasks' if kind == 'task' else 'request/reply'})",
            "description": description,
            "parameters": _parameters(address),
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
        }
        _operations(operations, key, (message,), True, True)
    schemas[schema_name] = payload


def _pattern(address: str) -> re.Pattern[str]:
    many = {n for (n, _, m) in _PARAMS.values() if m}
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)\}", address):
        out.append(re.escape(address[pos : m.start()]))
        name = m.group(1)
        if name in _ENUMS:
            out.append("(?:" + "|".join(re.escape(v) for v in _ENUMS[name]) + ")")
        else:
            out.append(_MANY if name in many else _ONE)
        pos = m.end()
    out.append(re.escape(address[pos:]))
    return re.compile("^" + "".join(out) + "$")


def channel_of(subject: str, doc: Mapping[str, Any]) -> str | None:
    """The key of the channel of ``doc`` whose address ``subject`` is (capability channels
    first, then the families in document order), or None."""
    channels: Mapping[str, Any] = doc.get("channels", {})
    generic = {c.key for c in CHANNELS}
    ordered = [k for k in channels if k not in generic] + [k for k in channels if k in generic]
    for key in ordered:
        address = channels[key].get("address")
        if isinstance(address, str) and _pattern(address).match(subject):
            return key
    return None
