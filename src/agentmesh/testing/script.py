"""What the local model server answers: scripted :class:`Reply` values, and the
provider-neutral :class:`ModelRequest` a responder sees."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a request, whatever the API dialect: ``tool_calls`` are
    ``(name, arguments)`` the model made, ``tool_results`` ``(name, content)`` answers."""

    role: str  # system, user, assistant, tool
    text: str = ""
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    tool_results: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """A request the server received, normalized across Gemini, Vertex and OpenAI."""

    api: str  # gemini, vertex or openai
    model: str
    stream: bool
    turns: tuple[Turn, ...]
    tools: dict[str, dict[str, Any]]  # name -> {"description", "parameters"}
    body: dict[str, Any]
    headers: dict[str, str]
    path: str

    @property
    def system(self) -> str:
        return "\n".join(t.text for t in self.turns if t.role == "system")

    @property
    def last_user_text(self) -> str:
        return next((t.text for t in reversed(self.turns) if t.role == "user" and t.text), "")

    @property
    def tool_results(self) -> list[tuple[str, Any]]:
        """Every tool answer in the conversation so far, oldest first."""
        return [r for t in self.turns for r in t.tool_results]

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the caller asked the answer to follow, if any."""
        if self.api == "openai":
            fmt = self.body.get("response_format") or {}
            schema = (fmt.get("json_schema") or {}).get("schema")
        else:
            cfg = self.body.get("generationConfig") or {}
            schema = cfg.get("responseJsonSchema") or cfg.get("responseSchema")
        return schema if isinstance(schema, dict) else None

    def word_count(self) -> int:
        """A deterministic stand-in for the prompt's token count."""
        words = 0
        for t in self.turns:
            words += len(t.text.split())
            words += sum(len(json.dumps(a).split()) for _, a in t.tool_calls)
            words += sum(len(json.dumps(r, default=str).split()) for _, r in t.tool_results)
        return max(words, 1)


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer. Build with :meth:`say`, :meth:`call`, :meth:`fail`,
    :meth:`garbage`; ``chunks`` splits streamed text, ``cut_after`` closes a stream after
    that many chunks (no proper end), ``delay`` holds the first byte back (seconds)."""

    text: str = ""
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    status: int = 200
    error: str = ""
    retry_after: float | None = None
    malformed: bool = False
    usage: tuple[int, int] | None = None  # (input, output); None: counted from the words
    finish_reason: str = "stop"
    chunks: int = 3
    cut_after: int | None = None
    delay: float = 0.0

    @classmethod
    def say(cls, text: str, **kw: Any) -> Reply:
        """Answer with ``text``."""
        return cls(text=text, **kw)

    @classmethod
    def call(cls, name: str, arguments: dict[str, Any] | None = None, **kw: Any) -> Reply:
        """Ask for one tool call; more with ``Reply.calls([(name, args), ...])``."""
        return cls(tool_calls=((name, dict(arguments or {})),), finish_reason="tool_calls", **kw)

    @classmethod
    def calls(cls, calls: list[tuple[str, dict[str, Any]]], **kw: Any) -> Reply:
        return cls(
            tool_calls=tuple((n, dict(a)) for n, a in calls), finish_reason="tool_calls", **kw
        )

    @classmethod
    def fail(cls, status: int, error: str = "", *, retry_after: float | None = None) -> Reply:
        """An HTTP error in the API's own error shape (``Retry-After`` when given)."""
        return cls(
            status=status, error=error or f"scripted error {status}", retry_after=retry_after
        )

    @classmethod
    def garbage(cls) -> Reply:
        """A 200 whose body is not JSON."""
        return cls(malformed=True)

    def tokens(self, request: ModelRequest) -> tuple[int, int]:
        if self.usage is not None:
            return self.usage
        out = len(self.text.split()) + sum(
            1 + len(json.dumps(a).split()) for _, a in self.tool_calls
        )
        return request.word_count(), max(out, 1)

    def text_chunks(self) -> list[str]:
        """The text split into about ``chunks`` pieces on word boundaries."""
        if not self.text:
            return []
        words = self.text.split(" ")
        n = max(1, min(self.chunks, len(words)))
        size = -(-len(words) // n)
        parts = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
        return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


Responder = Callable[[ModelRequest], Reply]


def echo_responder(request: ModelRequest) -> Reply:
    """The default model: answers ``echo: <last user text>``."""
    return Reply.say(f"echo: {request.last_user_text}")


@dataclass
class Recorded:
    """Requests seen (``requests``) and token endpoint hits (``token_requests``)."""

    requests: list[ModelRequest] = field(default_factory=list)
    token_requests: int = 0
