"""Vertex AI and Gemini through the official ``google-genai`` SDK.

``vertex``: ``genai.Client(vertexai=True, project, location, credentials)`` with the
service-account credentials of ``GOOGLE_APPLICATION_CREDENTIALS``; ``gemini``: the same
client with an API key. ``base_url`` goes to ``HttpOptions(base_url=...)`` (a proxy, a
regional endpoint, or :mod:`agentmesh.testing`). SDK retries are off: the resilient
wrapper retries every provider alike.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

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
)

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}
CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class GoogleGenAIProvider:
    """An :class:`~agentmesh.llm.base.LLMProvider` over ``google-genai`` (Vertex or Gemini)."""

    def __init__(self, name: str, model: str, client: Any, *, timeout: float = 60.0) -> None:
        from google.genai import types

        self.name = name
        self.model = model
        self._client = client
        self._types = types
        self._timeout = timeout

    # -- request ---------------------------------------------------------------------------
    def _request(
        self,
        messages: Sequence[ChatMessage],
        tools: Sequence[ToolSpec],
        options: CompletionOptions | None,
    ) -> tuple[list[Any], Any]:
        t = self._types
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        contents: list[Any] = []
        for m in messages:
            if m.role == "system":
                continue
            if m.role == "tool":
                part = t.Part(
                    function_response=t.FunctionResponse(
                        name=m.name or "tool", response={"result": _json_or_text(m.content)}
                    )
                )
                if contents and contents[-1].role == "user" and _all_responses(contents[-1]):
                    contents[-1].parts.append(part)  # answers to one turn's calls go together
                else:
                    contents.append(t.Content(role="user", parts=[part]))
                continue
            parts = [t.Part(text=m.content)] if m.content else []
            parts += [
                t.Part(function_call=t.FunctionCall(name=c.name, args=c.arguments))
                for c in m.tool_calls
            ]
            contents.append(
                t.Content(role="model" if m.role == "assistant" else "user", parts=parts)
            )
        o = options or CompletionOptions()
        config = t.GenerateContentConfig(
            system_instruction=system or None,
            temperature=o.temperature,
            max_output_tokens=o.max_tokens,
            tools=[
                t.Tool(
                    function_declarations=[
                        t.FunctionDeclaration(
                            name=s.name,
                            description=s.description,
                            parameters_json_schema=s.parameters,
                        )
                        for s in tools
                    ]
                )
            ]
            if tools
            else None,
            automatic_function_calling=t.AutomaticFunctionCallingConfig(disable=True),
            response_mime_type="application/json" if o.response_schema else None,
            response_json_schema=o.response_schema,
            http_options=t.HttpOptions(timeout=int(self._timeout * 1000)),
        )
        return contents, config

    # -- response --------------------------------------------------------------------------
    def _parts(self, response: Any) -> tuple[str, list[ToolCall], str | None]:
        candidates = response.candidates or []
        if not candidates:
            return "", [], None
        cand = candidates[0]
        texts, calls = [], []
        for part in (cand.content.parts if cand.content else None) or []:
            if part.text is not None and not part.thought:
                texts.append(part.text)
            if part.function_call is not None:
                fc = part.function_call
                calls.append(
                    ToolCall(
                        fc.id or f"call_{uuid.uuid4().hex[:12]}", fc.name or "", dict(fc.args or {})
                    )
                )
        finish = None
        if cand.finish_reason is not None:
            raw = getattr(cand.finish_reason, "value", str(cand.finish_reason))
            finish = "tool_calls" if calls else _FINISH.get(raw, raw.lower())
        return "".join(texts), calls, finish

    @staticmethod
    def _usage(response: Any) -> Usage | None:
        meta = response.usage_metadata
        if meta is None:
            return None
        return Usage(meta.prompt_token_count or 0, meta.candidates_token_count or 0)

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> Completion:
        contents, config = self._request(messages, tools, options)
        with _translated(self.name):
            response = await self._client.aio.models.generate_content(
                model=self.model, contents=contents, config=config
            )
        text, calls, finish = self._parts(response)
        if finish is None:
            raise LLMResponseInvalid(f"{self.name}: the response has no candidate")
        return Completion(
            text,
            tuple(calls),
            self._usage(response) or Usage(),
            response.model_version or self.model,
            finish,
        )

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: CompletionOptions | None = None,
    ) -> AsyncIterator[StreamDelta]:
        contents, config = self._request(messages, tools, options)
        with _translated(self.name):
            chunks = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            finished = False
            async for chunk in chunks:
                text, calls, finish = self._parts(chunk)
                finished = finished or finish is not None
                yield StreamDelta(
                    text, tuple(calls), self._usage(chunk), finish, chunk.model_version
                )
        if not finished:
            raise LLMResponseInvalid(f"{self.name}: the stream ended without a finish reason")

    async def aclose(self) -> None:
        with _translated(self.name):
            await self._client.aio.aclose()


def _json_or_text(content: str) -> Any:
    import json

    try:
        return json.loads(content)
    except json.JSONDecodeError:
        return content


def _all_responses(content: Any) -> bool:
    return bool(content.parts) and all(p.function_response is not None for p in content.parts)


class _translated:
    """Map google-genai, aiohttp and httpx errors to the ``LLMError`` branch."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        if exc is None or isinstance(exc, LLMError) or not isinstance(exc, Exception):
            return False
        raise translate_google_error(self.provider, exc) from None


def translate_google_error(provider: str, exc: Exception) -> LLMError:
    """One ``LLMError`` for an exception raised by the google-genai stack."""
    from google.genai import errors as gerr

    if isinstance(exc, gerr.APIError):
        status = int(exc.code or 0)
        message = f"{provider} {status}: {exc.message or exc.status or 'error'}"
        retry_after = _retry_after(getattr(exc, "response", None))
        if status in (429, 503):
            return LLMRateLimited(message, status=status, retry_after=retry_after)
        if 400 <= status < 500:
            return LLMRequestRejected(message, status=status)
        return LLMUnavailable(message, status=status, retry_after=retry_after)
    if isinstance(exc, gerr.UnknownApiResponseError | ValueError):
        return LLMResponseInvalid(f"{provider}: malformed response: {str(exc)[:200]}")
    if isinstance(exc, TimeoutError):
        return LLMUnavailable(f"{provider}: the call timed out")
    name = type(exc).__name__
    if "Payload" in name or "RemoteProtocol" in name or "Incomplete" in name:
        return LLMResponseInvalid(f"{provider}: the response broke off ({name})")
    if isinstance(exc, OSError) or "Timeout" in name or "Connect" in name or "Disconnect" in name:
        return LLMUnavailable(f"{provider}: cannot reach the model ({name}: {str(exc)[:200]})")
    return LLMResponseInvalid(f"{provider}: {name}: {str(exc)[:200]}")


def _retry_after(response: Any) -> float | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _http_options(base_url: str | None, api_version: str | None) -> Any:
    from google.genai import types

    return types.HttpOptions(
        base_url=base_url,
        api_version=api_version,
        retry_options=types.HttpRetryOptions(attempts=1),
    )


def gemini_provider(
    model: str, *, api_key: str, base_url: str | None = None, timeout: float = 60.0
) -> GoogleGenAIProvider:
    """Gemini (Google AI) with an API key."""
    from google import genai

    if not api_key:
        raise ConfigError("GEMINI_API_KEY (or GOOGLE_API_KEY) is not set")
    client = genai.Client(api_key=api_key, http_options=_http_options(base_url, "v1beta"))
    return GoogleGenAIProvider("gemini", model, client, timeout=timeout)


def vertex_provider(
    model: str,
    *,
    project: str,
    location: str = "us-central1",
    credentials_file: str | None = None,
    base_url: str | None = None,
    timeout: float = 60.0,
) -> GoogleGenAIProvider:
    """Vertex AI: ``project``/``location`` and the service-account key file
    ``credentials_file`` (``GOOGLE_APPLICATION_CREDENTIALS``; None: application default
    credentials)."""
    import google.auth
    from google import genai

    if not project:
        raise ConfigError("GCP_PROJECT_ID is not set")
    credentials = None
    if credentials_file:
        try:
            credentials, _ = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                credentials_file, scopes=[CLOUD_SCOPE]
            )
        except (google.auth.exceptions.GoogleAuthError, OSError, ValueError) as exc:
            raise ConfigError(
                f"GOOGLE_APPLICATION_CREDENTIALS: cannot load {credentials_file}: "
                f"{type(exc).__name__}"
            ) from None
    client = genai.Client(
        vertexai=True,
        project=project,
        location=location,
        credentials=credentials,
        http_options=_http_options(base_url, "v1"),
    )
    return GoogleGenAIProvider("vertex", model, client, timeout=timeout)
