"""The LLMProvider contract: every provider (vertex, gemini, openai), its official SDK
unmodified, against the local model server on a free port (agentmesh.testing)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentmesh.config import Settings
from agentmesh.errors import (
    LLMError,
    LLMRateLimited,
    LLMRequestRejected,
    LLMResponseInvalid,
    LLMUnavailable,
)
from agentmesh.llm import (
    PROVIDERS,
    ChatMessage,
    CompletionOptions,
    LLMProvider,
    ResilientProvider,
    ToolSpec,
    build_provider,
    collect,
)
from agentmesh.testing import LocalModelServer, ModelRequest, Reply

KEY = "sk-contract-" + "k" * 20
CALC = ToolSpec(
    "calculator",
    "Evaluates an arithmetic expression",
    {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
    },
)


@pytest.fixture
async def server() -> AsyncIterator[LocalModelServer]:
    async with LocalModelServer(api_key=KEY) as s:
        yield s


def settings_for(server: LocalModelServer, tmp: Path, **kw: Any) -> Settings:
    creds = server.write_service_account(tmp / "sa.json", project_id="proj-1")
    base: dict[str, Any] = {
        "agentmesh_data_dir": tmp,
        "gcp_project_id": "proj-1",
        "google_application_credentials": str(creds),
        "gemini_api_key": KEY,
        "openai_api_key": KEY,
        "agentmesh_llm_timeout": 10.0,
    }
    return Settings(**{**base, **kw})


@pytest.fixture(params=PROVIDERS)
async def provider(
    request: pytest.FixtureRequest, server: LocalModelServer, tmp_path: Path
) -> AsyncIterator[LLMProvider]:
    kind = str(request.param)
    base = server.openai_url if kind == "openai" else server.url
    model = "gpt-4o-mini" if kind == "openai" else "gemini-1.5-pro"
    p = build_provider(kind, settings_for(server, tmp_path), model=model, base_url=base)
    yield p
    await p.aclose()


def wire_options(req: ModelRequest) -> dict[str, Any]:
    """Temperature and max tokens as the request carried them, whatever the dialect."""
    if req.api == "openai":
        return {
            "temperature": req.body.get("temperature"),
            "max_tokens": req.body.get("max_tokens"),
        }
    cfg = req.body.get("generationConfig", {})
    return {"temperature": cfg.get("temperature"), "max_tokens": cfg.get("maxOutputTokens")}


async def test_text_completion(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(Reply.say("Agents cooperate through events.", usage=(11, 5)))
    done = await provider.complete(
        [ChatMessage.system("Be brief."), ChatMessage.user("What do agents do?")]
    )
    assert done.text == "Agents cooperate through events."
    assert done.tool_calls == ()
    assert (done.usage.input_tokens, done.usage.output_tokens) == (11, 5)
    assert done.model == provider.model
    assert done.finish_reason == "stop"
    req = server.requests[-1]
    assert req.api == provider.name
    assert req.model == provider.model
    assert req.system == "Be brief."
    assert req.last_user_text == "What do agents do?"
    assert not req.stream
    if provider.name == "vertex":
        assert req.path == (
            "/v1/projects/proj-1/locations/us-central1/publishers/google/models/"
            "gemini-1.5-pro:generateContent"
        )
        assert server.token_requests >= 1  # the key file's credentials were refreshed here
    elif provider.name == "gemini":
        assert req.path == "/v1beta/models/gemini-1.5-pro:generateContent"


async def test_tool_call_round_trip(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(Reply.call("calculator", {"expression": "6*7"}), Reply.say("It is 42."))
    first = await provider.complete([ChatMessage.user("What is 6*7?")], tools=[CALC])
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("calculator", {"expression": "6*7"})
    assert call.id
    sent = server.requests[-1].tools
    assert sent == {"calculator": {"description": CALC.description, "parameters": CALC.parameters}}
    history = [
        ChatMessage.user("What is 6*7?"),
        ChatMessage.assistant("", first.tool_calls),
        ChatMessage.tool_result(call, {"value": 42}),
    ]
    second = await provider.complete(history, tools=[CALC])
    assert second.text == "It is 42."
    req = server.requests[-1]
    assert req.tool_results == [("calculator", {"value": 42})]
    assert [t.role for t in req.turns] == ["user", "assistant", "tool"]
    assert req.turns[1].tool_calls == (("calculator", {"expression": "6*7"}),)


async def test_two_tool_calls_in_one_turn(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(
        Reply.calls([("calculator", {"expression": "1+1"}), ("calculator", {"expression": "2+2"})]),
        Reply.say("2 and 4"),
    )
    first = await provider.complete([ChatMessage.user("two sums")], tools=[CALC])
    assert [c.arguments["expression"] for c in first.tool_calls] == ["1+1", "2+2"]
    answers = [ChatMessage.tool_result(c, {"value": i}) for i, c in enumerate(first.tool_calls)]
    history = [ChatMessage.user("two sums"), ChatMessage.assistant("", first.tool_calls), *answers]
    assert (await provider.complete(history, tools=[CALC])).text == "2 and 4"
    assert server.requests[-1].tool_results == [
        ("calculator", {"value": 0}),
        ("calculator", {"value": 1}),
    ]


async def test_stream_yields_text_deltas(provider: LLMProvider, server: LocalModelServer) -> None:
    text = "one two three four five six"
    server.script(Reply.say(text, chunks=3, usage=(7, 6)))
    deltas = [d async for d in provider.stream([ChatMessage.user("count")])]
    pieces = [d.text for d in deltas if d.text]
    assert len(pieces) >= 3
    assert "".join(pieces) == text
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.total_tokens == 13
    assert deltas[-1].finish_reason == "stop"
    assert server.requests[-1].stream


async def test_stream_tool_call(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(Reply.call("calculator", {"expression": "2**10"}))
    done = await collect(provider.stream([ChatMessage.user("2^10?")], tools=[CALC]))
    assert [(c.name, c.arguments) for c in done.tool_calls] == [
        ("calculator", {"expression": "2**10"})
    ]
    assert done.finish_reason == "tool_calls"


async def test_options_reach_the_wire(provider: LLMProvider, server: LocalModelServer) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    server.script(Reply.say('{"answer": 42}'))
    opts = CompletionOptions(temperature=0.25, max_tokens=64, response_schema=schema)
    done = await provider.complete([ChatMessage.user("json please")], options=opts)
    assert done.text == '{"answer": 42}'
    req = server.requests[-1]
    assert wire_options(req) == {"temperature": 0.25, "max_tokens": 64}
    assert req.response_schema == schema


async def test_rate_limit_carries_retry_after(
    provider: LLMProvider, server: LocalModelServer
) -> None:
    server.script(Reply.fail(429, "quota exhausted", retry_after=2))
    with pytest.raises(LLMRateLimited) as caught:
        await provider.complete([ChatMessage.user("hi")])
    assert caught.value.status == 429
    assert caught.value.retry_after == 2
    assert "quota exhausted" in caught.value.message


@pytest.mark.parametrize(
    ("status", "error"), [(500, LLMUnavailable), (503, LLMRateLimited), (400, LLMRequestRejected)]
)
async def test_http_errors_map_to_the_tree(
    provider: LLMProvider, server: LocalModelServer, status: int, error: type[LLMError]
) -> None:
    server.script(Reply.fail(status, "the provider says no"))
    with pytest.raises(error) as caught:
        await provider.complete([ChatMessage.user("hi")])
    assert "the provider says no" in caught.value.message
    assert caught.value.retryable is (status != 400)


async def test_malformed_body(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(Reply.garbage())
    with pytest.raises(LLMResponseInvalid):
        await provider.complete([ChatMessage.user("hi")])


async def test_stream_cut_in_the_middle(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(Reply.say("a b c d e f g h", chunks=4, cut_after=2))
    seen: list[str] = []

    async def read() -> None:
        async for delta in provider.stream([ChatMessage.user("hi")]):
            seen.append(delta.text)

    with pytest.raises(LLMError):
        await read()
    assert "".join(seen) in ("", "a b ", "a b c d ")  # what came before the cut, no more


async def test_slow_first_token_times_out(provider: LLMProvider, server: LocalModelServer) -> None:
    server.script(Reply.say("late", delay=3.0))
    wrapped = ResilientProvider(provider, retries=0, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(LLMUnavailable, match="no answer within"):
        await wrapped.complete([ChatMessage.user("hi")])
    assert time.monotonic() - started < 2.5


async def test_wrong_key_is_rejected_without_echoing_it(
    server: LocalModelServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    for kind in ("gemini", "openai"):
        wrong = "sk-wrong-" + "w" * 20
        settings = settings_for(server, tmp_path, gemini_api_key=wrong, openai_api_key=wrong)
        base = server.openai_url if kind == "openai" else server.url
        p = build_provider(kind, settings, base_url=base)
        try:
            with pytest.raises(LLMRequestRejected) as caught:
                await p.complete([ChatMessage.user("hi")])
        finally:
            await p.aclose()
        assert caught.value.status == 401
        assert wrong not in str(caught.value)


async def test_resilient_retries_honor_retry_after(
    provider: LLMProvider, server: LocalModelServer
) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    wrapped = ResilientProvider(provider, retries=3, sleep=sleep)
    server.script(Reply.fail(429, "slow down", retry_after=1.5), Reply.fail(500), Reply.say("ok"))
    assert (await wrapped.complete([ChatMessage.user("hi")])).text == "ok"
    assert waits[0] == 1.5
    assert len(waits) == 2
    assert wrapped.attempts == 3
    server.script(Reply.fail(400, "bad request"))
    with pytest.raises(LLMRequestRejected, match="bad request"):
        await wrapped.complete([ChatMessage.user("hi")])
    assert wrapped.attempts == 4  # a 4xx is not retried


async def test_resilient_stream_retries_before_the_first_delta(
    provider: LLMProvider, server: LocalModelServer
) -> None:
    async def sleep(seconds: float) -> None:
        return None

    wrapped = ResilientProvider(provider, retries=2, sleep=sleep)
    server.script(Reply.fail(503, "overloaded"), Reply.say("fine now"))
    done = await collect(wrapped.stream([ChatMessage.user("hi")]))
    assert done.text == "fine now"
    assert wrapped.attempts == 2


async def test_the_server_answers_bad_requests_with_4xx(server: LocalModelServer) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=server.url) as http:
        bad_tools = {"model": "m", "messages": [], "tools": [{"function": {"nameless": 1}}]}
        r = await http.post(
            "/v1/chat/completions", json=bad_tools, headers={"Authorization": f"Bearer {KEY}"}
        )
        assert r.status_code == 400
        assert (await http.post("/v1/nowhere", json={})).status_code == 404
        assert (await http.post("/v1/chat/completions", content=b"{nope")).status_code == 400
        unauthorized = await http.post("/v1/chat/completions", json={"messages": []})
        assert unauthorized.status_code == 401
    assert server.requests == []
