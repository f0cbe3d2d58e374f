"""Pure pieces of the LLM layer: payload parsing, capability specs, redaction, prices,
backoff, credential checks, the scripted replies of agentmesh.testing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agentmesh.agents.llm import LLMAgentConfig, LLMTask
from agentmesh.agents.llm_tools import redact, schema_error, schema_problem
from agentmesh.config import Settings
from agentmesh.envelope import Envelope
from agentmesh.errors import (
    ConfigError,
    LLMRateLimited,
    LLMRequestRejected,
    LLMResponseInvalid,
    ValidationError,
)
from agentmesh.llm import (
    ChatMessage,
    Completion,
    Price,
    ResilientProvider,
    Usage,
    check_credentials,
)
from agentmesh.llm.base import StreamDelta, collect, parse_arguments
from agentmesh.llm.factory import prices_from
from agentmesh.llm.resilient import price_of
from agentmesh.runtime.capability_specs import parse_specs, specs_from_heartbeat
from agentmesh.runtime.registry import Registry
from agentmesh.testing import ModelRequest, Reply, Turn
from agentmesh.transports import create_transport


def test_task_payload_parsing() -> None:
    t = LLMTask.parse({"prompt": "hi", "system": "be brief", "temperature": 0.5, "max_tokens": 9})
    assert [m.role for m in t.messages] == ["system", "user"]
    assert (t.options.temperature, t.options.max_tokens) == (0.5, 9)
    m = LLMTask.parse(
        {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}
    )
    assert [x.content for x in m.messages] == ["a", "b"]
    for bad, needle in [
        ({}, "'prompt' or 'messages'"),
        ({"prompt": ""}, "'prompt'"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
        ({"messages": "hi"}, "'messages'"),
        ({"prompt": "x", "temperature": "hot"}, "'temperature'"),
        ({"prompt": "x", "max_tokens": 0}, "'max_tokens'"),
        ({"prompt": "x", "response_schema": {"type": "no-such-type"}}, "not a valid JSON Schema"),
        ({"prompt": "x", "system": 3}, "'system'"),
    ]:
        with pytest.raises(ValidationError, match=needle):
            LLMTask.parse(bad)


def test_agent_config_bounds() -> None:
    with pytest.raises(ValidationError):
        LLMAgentConfig(max_tool_rounds=-1)
    with pytest.raises(ValidationError):
        LLMAgentConfig(token_budget=0)
    with pytest.raises(ValidationError):
        LLMAgentConfig(cost_ceiling_usd=-1)


def test_capability_specs() -> None:
    caps = {"calculator": 3}
    spec = {"description": "adds", "input_schema": {"type": "object", "properties": {}}}
    assert parse_specs(caps, {"calculator": spec})["calculator"].description == "adds"
    with pytest.raises(ValidationError, match="not one of the agent's capabilities"):
        parse_specs(caps, {"other": spec})
    with pytest.raises(ValidationError, match="type 'object'"):
        parse_specs(caps, {"calculator": {"input_schema": {"type": "string"}}})
    with pytest.raises(ValidationError, match="unknown spec keys"):
        parse_specs(caps, {"calculator": {"descr": "typo"}})
    with pytest.raises(ValidationError, match="description"):
        parse_specs(caps, {"calculator": {"description": "x" * 1001}})
    # heartbeats are untrusted: malformed specs are dropped, good ones kept
    assert specs_from_heartbeat({"a": spec, "b": {"input_schema": 3}, "c": "x"}) == {"a": spec}
    assert specs_from_heartbeat(["not", "a", "dict"]) == {}


async def test_registry_keeps_the_specs_of_a_heartbeat() -> None:
    registry = Registry(create_transport("memory://unit-specs"), tenant="acme")
    spec = {"description": "adds", "input_schema": {"type": "object"}}
    env = Envelope.create(
        "agent.heartbeat",
        {"agent_id": "calc-1", "status": "AVAILABLE", "capabilities": {"calculator": 3},
         "capability_specs": {"calculator": spec}},
        tenant_id="acme", source="calc-1",
    )  # fmt: skip
    await registry.observe(env)
    record = registry.get("acme", "calc-1")
    assert record is not None
    assert record.capability_specs == {"calculator": spec}
    assert record.to_dict()["capability_specs"] == {"calculator": spec}


def test_redaction_reaches_nested_values() -> None:
    secret = "sk-123456789"
    value = {"a": [f"x {secret} y", {"k": secret}], secret: 1, "n": 3}
    assert redact(value, [secret]) == {
        "a": ["x [redacted] y", {"k": "[redacted]"}],
        "[redacted]": 1,
        "n": 3,
    }
    assert redact("nothing", []) == "nothing"


def test_schema_checks() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert schema_problem(schema, {"n": 1}) is None
    assert "n" in (schema_problem(schema, {"n": "x"}) or "")
    assert "required" in (schema_problem(schema, {}) or "")
    assert schema_error({"type": 12}) is not None
    assert schema_error(schema) is None


def test_prices_and_cost() -> None:
    assert price_of("gpt-4o-mini-2024-07-18").input_per_million == 0.15  # longest prefix
    assert price_of("llama3:8b") == Price(0.0, 0.0)
    assert price_of("llama3:8b", {"llama3": Price(1, 2)}).cost(Usage(1_000_000, 500_000)) == 2.0
    settings = Settings(agentmesh_llm_prices='{"m": [1, 2]}')  # type: ignore[call-arg]
    assert prices_from(settings) == {"m": Price(1.0, 2.0)}
    with pytest.raises(ConfigError, match="AGENTMESH_LLM_PRICES"):
        prices_from(Settings(agentmesh_llm_prices="[1]"))  # type: ignore[call-arg]


class Scripted:
    """An in-memory LLMProvider: raises or answers from a list (for the retry logic)."""

    name = "scripted"
    model = "m"

    def __init__(self, steps: list[Any]) -> None:
        self.steps = steps
        self.calls = 0

    async def complete(self, messages: Any, *, tools: Any = (), options: Any = None) -> Completion:
        self.calls += 1
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return Completion(step, usage=Usage(1, 1), model="m")

    async def stream(self, messages: Any, *, tools: Any = (), options: Any = None) -> Any:
        yield StreamDelta((await self.complete(messages)).text, finish_reason="stop")

    async def aclose(self) -> None:
        return None


async def test_backoff_honors_retry_after_and_caps() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    inner = Scripted([LLMRateLimited("x", retry_after=120), LLMResponseInvalid("cut"), "ok"])
    p = ResilientProvider(inner, retries=3, max_delay=10, base_delay=0.1, sleep=sleep)
    assert (await p.complete([ChatMessage.user("hi")])).text == "ok"
    assert waits[0] == 10  # Retry-After capped at max_delay
    assert 0 <= waits[1] <= 0.2  # exponential backoff with jitter
    inner.steps = [LLMRequestRejected("no")]
    with pytest.raises(LLMRequestRejected):
        await p.complete([ChatMessage.user("hi")])
    assert inner.calls == 4
    inner.steps = [LLMRateLimited("x")] * 3
    with pytest.raises(LLMRateLimited):
        await ResilientProvider(inner, retries=2, sleep=sleep).complete([ChatMessage.user("x")])


def test_credentials_are_named(tmp_path: Path) -> None:
    empty = Settings(agentmesh_data_dir=tmp_path, openai_api_key=None, gemini_api_key=None,
                     google_api_key=None, gcp_project_id=None,
                     google_application_credentials=None)  # fmt: skip
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        check_credentials("openai", empty)
    with pytest.raises(ConfigError, match="GEMINI_API_KEY"):
        check_credentials("gemini", empty)
    with pytest.raises(ConfigError, match="GCP_PROJECT_ID"):
        check_credentials("vertex", empty)
    with pytest.raises(ConfigError, match="GOOGLE_APPLICATION_CREDENTIALS: no such file"):
        check_credentials(
            "vertex", empty.model_copy(update={"google_application_credentials": "/nope.json"}),
            project="p",
        )  # fmt: skip
    check_credentials("gemini", empty.model_copy(update={"google_api_key": "k"}))
    with pytest.raises(ValidationError, match="unknown provider"):
        check_credentials("anthropic", empty)


async def test_collect_and_arguments() -> None:
    async def stream() -> Any:
        yield StreamDelta("a")
        yield StreamDelta("b", usage=Usage(2, 3), finish_reason="stop", model="m1")

    done = await collect(stream())
    assert (done.text, done.usage.total_tokens, done.model) == ("ab", 5, "m1")

    async def unfinished() -> Any:
        yield StreamDelta("a")

    with pytest.raises(LLMResponseInvalid, match="finish reason"):
        await collect(unfinished())
    assert parse_arguments('{"a": 1}', "t") == {"a": 1}
    assert parse_arguments("", "t") == {}
    with pytest.raises(LLMResponseInvalid, match="not JSON"):
        parse_arguments("{nope", "t")
    with pytest.raises(LLMResponseInvalid, match="not an object"):
        parse_arguments("[1]", "t")


def test_scripted_replies() -> None:
    req = ModelRequest("openai", "m", True, (Turn("user", "one two three"),), {}, {}, {}, "/")
    assert Reply.say("a b c d e", chunks=2).text_chunks() == ["a b c ", "d e"]
    assert Reply.say("x").tokens(req) == (3, 1)
    assert Reply.call("t", {"a": 1}).finish_reason == "tool_calls"
    assert Reply.fail(429, retry_after=1).status == 429
    assert req.last_user_text == "one two three"


def test_tool_call_events_become_audit_entries() -> None:
    from agentmesh.agents.llm_audit import entry_of
    from agentmesh.security.audit import AuditAction, AuditStatus

    refused = entry_of(
        "acme",
        {"task_id": "t1", "agent_id": "r-1", "tool": "admin_shell", "status": "refused",
         "arguments": {"cmd": "x"}, "ms": 0.1, "error": "tool 'admin_shell' is not available"},
    )  # fmt: skip
    assert refused.action is AuditAction.TOOL_CALLED
    assert refused.status is AuditStatus.DENIED
    assert (refused.actor, refused.resource_type, refused.resource_id) == (
        "r-1",
        "tool",
        "admin_shell",
    )
    assert refused.details["task_id"] == "t1"
    assert entry_of("acme", {"status": "ok"}).status is AuditStatus.SUCCESS
    assert entry_of("acme", {"status": "weird"}).status is AuditStatus.UNKNOWN


async def test_breaker_opens_after_repeated_outages() -> None:
    from agentmesh.errors import CircuitBreakerOpenException, LLMUnavailable

    async def sleep(s: float) -> None:
        return None

    inner = Scripted([LLMUnavailable("down")] * 5)
    p = ResilientProvider(inner, retries=0, sleep=sleep)
    for _ in range(5):
        with pytest.raises(LLMUnavailable):
            await p.complete([ChatMessage.user("hi")])
    with pytest.raises(CircuitBreakerOpenException):
        await p.complete([ChatMessage.user("hi")])
    assert inner.calls == 5  # the open circuit did not call the provider


def test_the_server_process_responder() -> None:
    from agentmesh.testing.__main__ import tool_responder

    respond = tool_responder("inc", {"n": 1})
    ask = ModelRequest("openai", "m", False, (Turn("user", "hi"),), {"inc": {}}, {}, {}, "/")
    assert respond(ask).tool_calls == (("inc", {"n": 1}),)
    answered = ModelRequest(
        "openai", "m", False, (Turn("tool", tool_results=(("inc", {"n": 2}),)),), {}, {}, {}, "/"
    )
    assert respond(answered).text == 'inc answered {"n": 2}'
    plain = ModelRequest("openai", "m", False, (Turn("user", "hi"),), {}, {}, {}, "/")
    assert respond(plain).text == "echo: hi"
