"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp server, LM Studio)
through the official ``openai`` SDK: ``base_url`` picks the server. SDK retries are off
(``max_retries=0``): the resilient wrapper retries every provider alike.

Calls go through the SDK's own request method (``client.post`` with the SDK's
``ChatCompletion`` / ``AsyncStream`` types: auth, headers, timeouts, errors and response
parsing are the SDK's) with a body this module builds in wire form. That skips the
type-driven re-walk ``chat.completions.create`` makes of every message (a no-op for the
plain strings and dicts sent here), which costs more CPU than the rest of the call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

from agentmesh.errors import (
    ConfigError,
    LLMError,
    LLMRateLimited,
    LLMRequestRejected,
    LLMResponseInvalid,
    LLMUnavailable,
)
from agentmesh.llm.base import (
    ChatMessage,
    Completion,
    CompletionOptions,
    StreamDelta,
    ToolCall,
    ToolSpec,
    Usage,
    parse_arguments,
)


def _message(m: ChatMessage) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id or "", "content": m.content}
    out: dict[str, Any] = {"role": m.role, "content": m.content or None}
    if m.tool_calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for c in m.tool_calls
        ]
    elif out["content"] is None:
        out["content"] = ""
    return out


class _SdkTypes:
    """The SDK's response types (imported with the provider, not with this module)."""

    def __init__(self) -> None:
        import openai
        from openai.types.chat import ChatCompletion, ChatCompletionChunk

        self.ChatCompletion = ChatCompletion
        self.ChatCompletionChunk = ChatCompletionChunk
        self.AsyncStream = openai.AsyncStream


class OpenAIProvider:
    """An :class:`~agentmesh.llm.base.LLMProvider` over ``openai.AsyncOpenAI``."""

    name = "openai"

    def __init__(self, model: str, client: Any, *, timeout: float = 60.0) -> None:
        self.model = model
        self._client = client
        self._timeout = timeout
        # what chat.completions.create passes the SDK's request method
        self._options = {"timeout": timeout, "security": {"bearer_auth": True}}
        self._types = _SdkTypes()

    def _kwargs(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        options: CompletionOptions | None,
    ) -> dict[str, Any]:
        o = options or CompletionOptions()
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": [_message(m) for m in messages],
        }
        if tools:
            kw["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": s.name,
                        "description": s.description,
                        "parameters": s.parameters,
                    },
                }
                for s in tools
            ]
        if o.temperature is not None:
            kw["temperature"] = o.temperature
        if o.max_tokens is not None:
            kw["max_tokens"] = o.max_tokens
        if o.response_schema is not None:
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "result", "schema": o.response_schema},
            }
        return kw

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> Completion:
        try:
            response = await self._client.post(
                "/chat/completions",
                body=self._kwargs(messages, tools, options),
                cast_to=self._types.ChatCompletion,
                options=self._options,
            )
        except Exception as exc:  # noqa: BLE001 - the SDK's errors are translated at this boundary
            raise translate_openai_error(exc) from None
        if not response.choices:
            raise LLMResponseInvalid("openai: the response has no choice")
        choice = response.choices[0]
        calls = tuple(
            ToolCall(c.id, c.function.name, parse_arguments(c.function.arguments, c.function.name))
            for c in choice.message.tool_calls or []
        )
        usage = response.usage
        return Completion(
            choice.message.content or "",
            calls,
            Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            response.model or self.model,
            choice.finish_reason or "stop",
        )

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> AsyncIterator[StreamDelta]:
        kw = self._kwargs(messages, tools, options)
        pending: dict[int, dict[str, str]] = {}  # tool calls arrive in pieces, by index
        finish: str | None = None
        usage: Usage | None = None
        model: str | None = None
        done = False
        try:
            chunks = await self._client.post(
                "/chat/completions",
                body={**kw, "stream": True, "stream_options": {"include_usage": True}},
                cast_to=self._types.ChatCompletion,
                options=self._options,
                stream=True,
                stream_cls=self._types.AsyncStream[self._types.ChatCompletionChunk],
            )
            async for chunk in chunks:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    for piece in choice.delta.tool_calls or []:
                        slot = pending.setdefault(piece.index, {"id": "", "name": "", "args": ""})
                        slot["id"] = piece.id or slot["id"]
                        if piece.function is not None:
                            slot["name"] = piece.function.name or slot["name"]
                            slot["args"] += piece.function.arguments or ""
                    if choice.delta.content:
                        yield StreamDelta(choice.delta.content, model=model)
                    finish = choice.finish_reason or finish
            done = True
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK's errors are translated at this boundary
            raise translate_openai_error(exc) from None
        if not done or finish is None:
            raise LLMResponseInvalid("openai: the stream ended without a finish reason")
        calls = tuple(
            ToolCall(s["id"], s["name"], parse_arguments(s["args"], s["name"]))
            for _, s in sorted(pending.items())
        )
        yield StreamDelta("", calls, usage or Usage(), finish, model)

    async def aclose(self) -> None:
        await self._client.close()


def translate_openai_error(exc: Exception) -> LLMError:
    """One ``LLMError`` for an exception raised by the openai SDK (or its transport)."""
    import openai

    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = exc.body.get("message") if isinstance(exc.body, dict) else None
        message = f"openai {status}: {detail or exc.message}"
        raw = exc.response.headers.get("retry-after")
        try:
            retry_after = float(raw) if raw is not None else None
        except ValueError:
            retry_after = None
        if status in (429, 503):
            return LLMRateLimited(message, status=status, retry_after=retry_after)
        if 400 <= status < 500:
            return LLMRequestRejected(message, status=status)
        return LLMUnavailable(message, status=status, retry_after=retry_after)
    if isinstance(exc, openai.APITimeoutError):
        return LLMUnavailable("openai: the call timed out")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        name = type(cause).__name__ if cause else ""
        if "RemoteProtocol" in name or "ReadError" in name or "Incomplete" in name:
            return LLMResponseInvalid(f"openai: the response broke off ({name})")
        return LLMUnavailable(f"openai: cannot reach the server ({name or exc.message})")
    if isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError | ValueError):
        return LLMResponseInvalid(f"openai: malformed response: {str(exc)[:200]}")
    name = type(exc).__name__
    if "RemoteProtocol" in name or "ReadError" in name:
        return LLMResponseInvalid(f"openai: the response broke off ({name})")
    if isinstance(exc, OSError):
        return LLMUnavailable(f"openai: cannot reach the server ({name})")
    return LLMResponseInvalid(f"openai: {name}: {str(exc)[:200]}")


def openai_provider(
    model: str, *, api_key: str, base_url: str | None = None, timeout: float = 60.0
) -> OpenAIProvider:
    """An OpenAI(-compatible) model; ``base_url`` like ``http://localhost:11434/v1``."""
    import openai

    if not api_key:
        raise ConfigError("OPENAI_API_KEY is not set")
    client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)
    return OpenAIProvider(model, client, timeout=timeout)
