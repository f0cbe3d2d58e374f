"""A TCP proxy the test controls: forwards 127.0.0.1:<port> to a target, and can cut the
link (a partition: open connections go silent, new ones hang) and heal it."""

from __future__ import annotations

import asyncio
import contextlib

from agentmesh.runtime.embedded import free_port


class PartitionProxy:
    """``await start()``, point a client at :attr:`url`, then ``partition()`` / ``heal()``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.cut = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self._drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def partition(self) -> None:
        """From now on nothing passes either way (connections stay open, silent)."""
        self.cut = True

    def heal(self) -> None:
        """Let traffic pass again; the silenced connections are closed so clients reconnect."""
        self.cut = False
        self._drop_all()

    def _drop_all(self) -> None:
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.cut:
                    continue  # dropped on the floor: the link is down
                writer.write(data)
                await writer.drain()
        writer.close()
