"""A local HTTP server that speaks the model APIs the official SDKs call, scripted per test.

Endpoints (what ``google-genai`` and ``openai`` really request):

* Gemini: ``POST /v1beta/models/{model}:generateContent`` and
  ``:streamGenerateContent?alt=sse``;
* Vertex AI: ``POST /{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{m}:``
  ``generateContent`` (and the stream form), plus ``POST /token``, an OAuth token endpoint
  for service-account credentials (:meth:`LocalModelServer.write_service_account`);
* OpenAI: ``POST /v1/chat/completions`` with and without ``"stream": true``.

Replies come from the script (:meth:`LocalModelServer.script`, first in first out), else
from the responder (default: echo the last user text)::

    async with LocalModelServer() as server:
        server.script(Reply.call("calculator", {"expression": "6*7"}), Reply.say("42"))
        provider = openai_provider("gpt-4o-mini", api_key="test", base_url=server.openai_url)
        ...
        server.requests[-1].tool_results      # [("calculator", {"value": 42})]

Streams are chunked; ``Reply(cut_after=n)`` drops the connection after ``n`` events
without the final chunk, so clients see a broken stream, not a short one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentmesh.errors import ValidationError
from agentmesh.testing import dialects
from agentmesh.testing.script import ModelRequest, Recorded, Reply, Responder, echo_responder

_GEMINI = re.compile(
    r"^/(v1beta|v1alpha|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$"
)
_VERTEX = re.compile(
    r"^/(v1|v1beta1)/projects/([^/]+)/locations/([^/]+)/publishers/google/models/([^/:]+):"
    r"(generateContent|streamGenerateContent)$"
)
_OPENAI = re.compile(r"^(/v1)?/chat/completions$")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
MAX_BODY = 32 * 1024 * 1024


@functools.cache
def _signing_key() -> str:
    """One RSA key per process for the service-account files (2048-bit keys are slow)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class LocalModelServer:
    """Scripted Gemini / Vertex / OpenAI endpoints on ``host:port`` (0: a free port).

    ``api_key``: when set, Gemini calls must carry it (``x-goog-api-key``) and OpenAI
    calls must send it as the bearer token; Vertex calls must carry the access token
    this server's ``/token`` endpoint issued. A call without it gets a 401.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        responder: Responder = echo_responder,
        api_key: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.access_token = "ya29.local-" + secrets.token_hex(8)
        self._responder = responder
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._recorded = Recorded()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing: asyncio.Event | None = None

    # -- scripting ------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Queue replies; each request takes the next one (then the responder answers)."""
        with self._lock:
            self._script.extend(replies)

    def respond_with(self, responder: Responder) -> None:
        """Answer with ``responder(request)`` once the script is used up."""
        self._responder = responder

    @property
    def requests(self) -> list[ModelRequest]:
        """Every model request received so far, oldest first."""
        with self._lock:
            return list(self._recorded.requests)

    @property
    def token_requests(self) -> int:
        return self._recorded.token_requests

    def pending(self) -> int:
        """Scripted replies not used yet."""
        with self._lock:
            return len(self._script)

    @property
    def url(self) -> str:
        """Base URL for google-genai's ``HttpOptions(base_url=...)``."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for the openai SDK (``.../v1``)."""
        return f"{self.url}/v1"

    def write_service_account(self, path: Path, project_id: str = "local-project") -> Path:
        """A service-account key file (``GOOGLE_APPLICATION_CREDENTIALS``) whose token
        endpoint is this server, so Vertex credentials refresh offline."""
        pem = _signing_key()
        doc = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": f"agentmesh-test@{project_id}.iam.gserviceaccount.com",
            "client_id": "1" * 21,
            "token_uri": f"{self.url}/token",
        }
        path.write_text(json.dumps(doc))
        path.chmod(0o600)
        return path

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> LocalModelServer:
        self._closing = asyncio.Event()
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        if self._closing is not None:
            self._closing.set()  # scripted delays end now
        for w in list(self._writers):
            w.transport.abort()
        if self._handlers:  # aborted connections end their handlers at once
            await asyncio.wait(list(self._handlers), timeout=5)
        await self._server.wait_closed()
        self._server = None

    async def __aenter__(self) -> LocalModelServer:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> LocalModelServer:
        """Serve from a daemon thread with its own event loop (for synchronous callers and
        for agents running in other processes)."""
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="local-model-server", daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise ValidationError("the local model server did not start")
        return self

    def stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = None

    @contextlib.contextmanager
    def running(self) -> Iterator[LocalModelServer]:
        """``with LocalModelServer().running() as server:`` serves from a thread."""
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    # -- HTTP -----------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: nothing to answer
        except ValueError:  # not HTTP: nothing sensible to answer, close the connection
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)
            writer.close()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        size = int(headers.get("content-length", "0") or 0)
        if size > MAX_BODY:
            await self._send_json(writer, 413, {"error": {"message": "body too large"}})
            return False
        body = await reader.readexactly(size) if size else b""
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "POST" and url.path == "/token":
            self._recorded.token_requests += 1
            token = {"access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"}
            await self._send_json(writer, 200, token)
            return True
        try:
            doc = json.loads(body or b"{}")
        except json.JSONDecodeError:
            await self._send_json(writer, 400, {"error": {"message": "body is not JSON"}})
            return True
        try:
            request, error = self._parse(method, url.path, query, doc, headers)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            request, error = None, (400, f"malformed request body: {type(exc).__name__}: {exc}")
        if request is None:
            await self._send_json(writer, error[0], {"error": {"message": error[1]}})
            return True
        with self._lock:
            self._recorded.requests.append(request)
            reply = self._script.popleft() if self._script else None
        if reply is None:
            reply = self._responder(request)
        return await self._answer(writer, request, reply)

    def _parse(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        doc: Any,
        headers: dict[str, str],
    ) -> tuple[ModelRequest | None, tuple[int, str]]:
        if method != "POST" or not isinstance(doc, dict):
            return None, (404, f"no such endpoint: {method} {path}")
        bearer = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if m := _GEMINI.match(path):
            given = headers.get("x-goog-api-key") or query.get("key")
            if self.api_key and given != self.api_key:
                return None, (401, "API key not valid. Please pass a valid API key.")
            stream = m.group(3) == "streamGenerateContent"
            return dialects.parse_gemini("gemini", m.group(2), stream, doc, headers, path), (0, "")
        if m := _VERTEX.match(path):
            if self.api_key and bearer != self.access_token:
                return None, (401, "Request had invalid authentication credentials.")
            stream = m.group(5) == "streamGenerateContent"
            return dialects.parse_gemini("vertex", m.group(4), stream, doc, headers, path), (0, "")
        if _OPENAI.match(path):
            if self.api_key and bearer != self.api_key:
                return None, (401, "Incorrect API key provided.")
            return dialects.parse_openai(doc, headers, path), (0, "")
        return None, (404, f"no such endpoint: {method} {path}")

    async def _answer(
        self, writer: asyncio.StreamWriter, request: ModelRequest, reply: Reply
    ) -> bool:
        openai = request.api == "openai"
        if reply.delay and not request.stream:
            await self._pause(reply.delay)
        if reply.status != 200:
            body = (dialects.openai_error if openai else dialects.gemini_error)(
                reply.status, reply.error
            )
            extra = {"Retry-After": f"{reply.retry_after:g}"} if reply.retry_after else {}
            await self._send_json(writer, reply.status, body, extra)
            return True
        if reply.malformed and not request.stream:
            await self._send(
                writer, 200, b'{"candidates": [{"content": <html>oops', "application/json"
            )
            return True
        if not request.stream:
            render = dialects.openai_body if openai else dialects.gemini_body
            await self._send_json(writer, 200, render(request, reply))
            return True
        events = (dialects.openai_events if openai else dialects.gemini_events)(request, reply)
        if reply.malformed:
            events = [b"data: {not json\n\n"]
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"
        )
        writer.write(head.encode())
        await writer.drain()
        if reply.delay:
            await self._pause(reply.delay)
        for i, event in enumerate(events):
            if reply.cut_after is not None and i >= reply.cut_after:
                await writer.drain()
                writer.transport.abort()  # no final chunk: the client sees a broken stream
                return False
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when the server stops."""
        if self._closing is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
        if self._closing is None or self._closing.is_set():
            raise ConnectionResetError("the server is stopping")

    async def _send_json(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        doc: dict[str, Any],
        extra: dict[str, str] | None = None,
    ) -> None:
        await self._send(writer, status, json.dumps(doc).encode(), "application/json", extra)

    @staticmethod
    async def _send(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in (extra or {}).items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await writer.drain()
