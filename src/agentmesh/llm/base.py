"""The one seam to language models: :class:`LLMProvider` and the values it speaks.

A provider turns a conversation (:class:`ChatMessage`), the tools the model may call
(:class:`ToolSpec`: a name, a description and a JSON Schema for the arguments) and
:class:`CompletionOptions` into a :class:`Completion`::

    provider = openai_provider(model="gpt-4o-mini", api_key=..., base_url="http://localhost:8080/v1")
    done = await provider.complete(
        [ChatMessage.user("What is 6 * 7?")],
        tools=[ToolSpec("calculator", "Evaluates arithmetic", {"type": "object", ...})],
    )
    done.text, done.tool_calls, done.usage.input_tokens, done.model, done.finish_reason

    async for delta in provider.stream([ChatMessage.user("Tell me a story")]):
        print(delta.text, end="")          # the last delta carries usage and finish_reason

A tool call the model makes comes back as :class:`ToolCall`; its answer goes into the
next call as ``ChatMessage.tool_result(call, content)``. Providers translate their SDK's
errors at the edge into the ``LLMError`` branch of :mod:`agentmesh.errors`:
:class:`~agentmesh.errors.LLMRateLimited` (429/503, with ``retry_after``),
:class:`~agentmesh.errors.LLMRequestRejected` (any other 4xx, with the provider's message),
:class:`~agentmesh.errors.LLMUnavailable` (5xx, network, timeout) and
:class:`~agentmesh.errors.LLMResponseInvalid` (a body or stream that is not what the API
promises). Providers never retry by themselves: :mod:`agentmesh.llm.resilient` does,
for every provider alike. Every provider passes ``tests/contract/test_llm_provider_contract.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from agentmesh.errors import LLMResponseInvalid, ValidationError

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks to run tool ``name`` with ``arguments`` (``id`` pairs the answer)."""

    id: str
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One turn of a conversation.

    ``tool`` messages answer one :class:`ToolCall` (``tool_call_id`` and ``name``);
    ``assistant`` messages may carry the ``tool_calls`` the model made.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> ChatMessage:
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> ChatMessage:
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: Sequence[ToolCall] = ()) -> ChatMessage:
        return cls("assistant", content, tuple(tool_calls))

    @classmethod
    def tool_result(cls, call: ToolCall, content: Any) -> ChatMessage:
        """The answer to ``call``; non-string content is sent as JSON."""
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        return cls("tool", text, tool_call_id=call.id, name=call.name)

    @classmethod
    def from_dict(cls, raw: Any) -> ChatMessage:
        """``{"role": "user", "content": "..."}`` (a task payload's ``messages`` entry)."""
        if not isinstance(raw, dict):
            raise ValidationError("each message must be an object with 'role' and 'content'")
        role, content = raw.get("role"), raw.get("content", "")
        if role not in ("system", "user", "assistant"):
            raise ValidationError(f"message role must be system, user or assistant, got {role!r}")
        if not isinstance(content, str):
            raise ValidationError("message 'content' must be a string")
        return cls(role, content)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the model may call: ``parameters`` is the JSON Schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})


@dataclass(frozen=True, slots=True)
class CompletionOptions:
    """Per-call options; ``response_schema`` asks for JSON matching that JSON Schema."""

    temperature: float | None = None
    max_tokens: int | None = None
    response_schema: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call consumed."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class Completion:
    """What one model call produced."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = Usage()
    model: str = ""
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class StreamDelta:
    """A piece of a streamed completion: new ``text`` and/or complete ``tool_calls``;
    the last delta carries ``usage`` and ``finish_reason``."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage | None = None
    finish_reason: str | None = None
    model: str | None = None


@runtime_checkable
class LLMProvider(Protocol):
    """A language model behind one API (Vertex AI, Gemini, any OpenAI-compatible server).

    ``name`` is the provider kind (``vertex``, ``gemini``, ``openai``), ``model`` the model
    it calls. Implementations satisfy this structurally; they do not retry (see
    :mod:`agentmesh.llm.resilient`) and map their SDK's errors to ``LLMError``.
    """

    name: str
    model: str

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> Completion:
        """One model call: the text and/or tool calls, usage, model and finish reason."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> AsyncIterator[StreamDelta]:
        """The same call streamed: text deltas as they come, tool calls when complete,
        usage and finish reason on the last delta. A stream that breaks off raises
        :class:`~agentmesh.errors.LLMResponseInvalid` (or ``LLMUnavailable``)."""
        ...

    async def aclose(self) -> None:
        """Release the SDK client's connections."""
        ...


async def collect(stream: AsyncIterator[StreamDelta], model: str = "") -> Completion:
    """Fold a stream into the :class:`Completion` the non-streaming call returns."""
    text: list[str] = []
    calls: list[ToolCall] = []
    usage, finish, seen_model = Usage(), None, model
    async for delta in stream:
        text.append(delta.text)
        calls.extend(delta.tool_calls)
        if delta.usage is not None:
            usage = delta.usage
        if delta.finish_reason is not None:
            finish = delta.finish_reason
        if delta.model:
            seen_model = delta.model
    if finish is None:
        raise LLMResponseInvalid("the stream ended without a finish reason")
    return Completion("".join(text), tuple(calls), usage, seen_model, finish)


def parse_arguments(raw: Any, tool: str) -> dict[str, Any]:
    """Tool-call arguments as a dict (OpenAI sends a JSON string, Gemini an object)."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise LLMResponseInvalid(
                f"the model's arguments for tool {tool!r} are not JSON: {exc.msg}"
            ) from None
    if not isinstance(raw, dict):
        raise LLMResponseInvalid(f"the model's arguments for tool {tool!r} are not an object")
    return dict(raw)
