"""The wire shapes of the Gemini (and Vertex) and OpenAI chat APIs: requests parsed into
a :class:`ModelRequest`, replies rendered as the JSON bodies and SSE events the SDKs read."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from agentmesh.testing.script import ModelRequest, Reply, Turn


def _get(d: Any, *names: str) -> Any:
    """A field by its camelCase or snake_case name (the SDKs send camelCase)."""
    if not isinstance(d, dict):
        return None
    for n in names:
        if n in d:
            return d[n]
    return None


# -- Gemini / Vertex ----------------------------------------------------------------------
def parse_gemini(
    api: str, model: str, stream: bool, body: dict[str, Any], headers: dict[str, str], path: str
) -> ModelRequest:
    turns: list[Turn] = []
    system = _get(body, "systemInstruction", "system_instruction")
    if system:
        text = "".join(str(_get(p, "text") or "") for p in _get(system, "parts") or [])
        turns.append(Turn("system", text))
    for content in _get(body, "contents") or []:
        role = "assistant" if _get(content, "role") == "model" else "user"
        texts, calls, results = [], [], []
        for part in _get(content, "parts") or []:
            if _get(part, "text") is not None and not _get(part, "thought"):
                texts.append(str(_get(part, "text")))
            call = _get(part, "functionCall", "function_call")
            if call:
                calls.append((str(_get(call, "name")), dict(_get(call, "args") or {})))
            answer = _get(part, "functionResponse", "function_response")
            if answer:
                response = _get(answer, "response") or {}
                value = response.get("result", response) if isinstance(response, dict) else response
                results.append((str(_get(answer, "name")), value))
        if results:
            role = "tool"
        turns.append(Turn(role, "".join(texts), tuple(calls), tuple(results)))
    tools: dict[str, dict[str, Any]] = {}
    for tool in _get(body, "tools") or []:
        for decl in _get(tool, "functionDeclarations", "function_declarations") or []:
            params = _get(decl, "parametersJsonSchema", "parameters_json_schema", "parameters")
            tools[str(_get(decl, "name"))] = {
                "description": _get(decl, "description") or "",
                "parameters": params or {},
            }
    return ModelRequest(api, model, stream, tuple(turns), tools, body, headers, path)


_GEMINI_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
_GEMINI_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def _gemini_chunk(
    request: ModelRequest,
    reply: Reply,
    text: str | None,
    calls: bool,
    final: bool,
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if text:
        parts.append({"text": text})
    if calls:
        parts.extend(
            {"functionCall": {"id": f"fc_{uuid.uuid4().hex[:12]}", "name": n, "args": a}}
            for n, a in reply.tool_calls
        )
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict[str, Any] = {"candidates": [candidate], "modelVersion": request.model}
    if final:
        candidate["finishReason"] = _GEMINI_FINISH.get(reply.finish_reason, "STOP")
        tokens_in, tokens_out = reply.tokens(request)
        out["usageMetadata"] = {
            "promptTokenCount": tokens_in,
            "candidatesTokenCount": tokens_out,
            "totalTokenCount": tokens_in + tokens_out,
        }
    return out


def gemini_body(request: ModelRequest, reply: Reply) -> dict[str, Any]:
    return _gemini_chunk(request, reply, reply.text, True, True)


def gemini_events(request: ModelRequest, reply: Reply) -> list[bytes]:
    """SSE events: the text in pieces, tool calls and usage on the last one."""
    pieces = reply.text_chunks() or [""]
    events = []
    for i, piece in enumerate(pieces):
        final = i == len(pieces) - 1
        chunk = _gemini_chunk(request, reply, piece, final, final)
        events.append(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
    return events


def gemini_error(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": status,
            "message": message,
            "status": _GEMINI_STATUS.get(status, "UNKNOWN"),
        }
    }


# -- OpenAI chat completions --------------------------------------------------------------
def parse_openai(body: dict[str, Any], headers: dict[str, str], path: str) -> ModelRequest:
    turns: list[Turn] = []
    names: dict[str, str] = {}  # tool_call_id -> tool name
    for m in body.get("messages") or []:
        role = str(m.get("role", "user"))
        content = m.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = str(content or "")
        if role == "developer":
            role = "system"
        if role == "tool":
            name = names.get(str(m.get("tool_call_id")), "unknown")
            try:
                value: Any = json.loads(text)
            except json.JSONDecodeError:
                value = text
            turns.append(Turn("tool", "", (), ((name, value),)))
            continue
        calls = []
        for call in m.get("tool_calls") or []:
            fn = call.get("function") or {}
            names[str(call.get("id"))] = str(fn.get("name"))
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                args = {}
            calls.append((str(fn.get("name")), args if isinstance(args, dict) else {}))
        turns.append(Turn(role, text, tuple(calls)))
    tools = {
        str(t["function"]["name"]): {
            "description": t["function"].get("description", ""),
            "parameters": t["function"].get("parameters") or {},
        }
        for t in body.get("tools") or []
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    }
    return ModelRequest(
        "openai",
        str(body.get("model", "")),
        bool(body.get("stream")),
        tuple(turns),
        tools,
        body,
        headers,
        path,
    )


def _openai_usage(request: ModelRequest, reply: Reply) -> dict[str, int]:
    tokens_in, tokens_out = reply.tokens(request)
    return {
        "prompt_tokens": tokens_in,
        "completion_tokens": tokens_out,
        "total_tokens": tokens_in + tokens_out,
    }


def _openai_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": n, "arguments": json.dumps(a)},
        }
        for n, a in reply.tool_calls
    ]


def openai_body(request: ModelRequest, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
    if reply.tool_calls:
        message["tool_calls"] = _openai_calls(reply)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}
        ],
        "usage": _openai_usage(request, reply),
    }


def openai_events(request: ModelRequest, reply: Reply) -> list[bytes]:
    """SSE chunks: role, text pieces, tool calls (arguments split in two), the finish
    reason, usage (when ``stream_options.include_usage``), ``[DONE]``."""
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:16]}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        doc = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return b"data: " + json.dumps(doc).encode() + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in reply.text_chunks()]
    for i, call in enumerate(_openai_calls(reply)):
        args = call["function"]["arguments"]
        half = len(args) // 2
        head = {**call, "index": i, "function": {**call["function"], "arguments": args[:half]}}
        events.append(chunk({"tool_calls": [head]}))
        events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]}))
    events.append(chunk({}, reply.finish_reason))
    if (request.body.get("stream_options") or {}).get("include_usage"):
        doc = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": request.model,
            "choices": [],
            "usage": _openai_usage(request, reply),
        }
        events.append(b"data: " + json.dumps(doc).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def openai_error(status: int, message: str) -> dict[str, Any]:
    kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
